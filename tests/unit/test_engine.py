"""The engine parameter on a real Dask LocalCluster of worker processes (no mocks): the streaming
stages give the same results on it as in the task's process, a scheduler given by address is
used as it is, and a bad engine value or an unreachable scheduler fails in one line."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from drift_tables import WINDOW_TYPES, population, windows
from mixed_table import mixed_table
from palmerpenguins import load_penguins
from serving_helpers import export_penguins_classifier

from mlstages.components.batch_predict import batch_predict as bp
from mlstages.components.batch_predict.batch_predict import BatchPredictConfig, open_dataset
from mlstages.components.common import storage
from mlstages.components.common.dataset_files import write_dataset
from mlstages.components.common.engine import check_engine, open_engine
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.reference import build_reference
from mlstages.components.ingest.ingest import IngestConfig, read_source
from mlstages.components.monitor_drift.config import DriftConfig
from mlstages.components.monitor_drift.monitor_drift import detect_drift_dataset
from mlstages.components.serving.model_dir import load_model_dir
from mlstages.components.validate_data.config import ValidationConfig
from mlstages.components.validate_data.validate_data import validate_dataset

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def engine(cluster):
    with open_engine(cluster.scheduler_address) as running:
        yield running


def _close(a, b, path="") -> None:
    """Equal documents, numbers to 1e-9 relative."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


def test_a_pass_on_the_cluster_says_how_many_parts_are_back(engine, progress_lines, monkeypatch):
    # A worker's progress lines go nowhere; the task counts the parts that came back.
    from mlstages.components.common import progress

    monkeypatch.setattr(progress, "_STREAM_THROTTLE", progress.Throttle(0.0))
    # A builtin: a worker imports it by name (it cannot import this test module).
    assert engine.map(abs, [-1, -2, -3]) == [1, 2, 3]
    assert progress_lines == [f"parts done on the cluster: {n} of 3 parts ({n / 3:.0%})" for n in (1, 2, 3)]


def test_workers_dying_on_a_part_fail_the_pass_in_one_line_naming_the_part():
    # The kernel ends a worker that runs out of memory; the scheduler gives up after a few, and the
    # stage says which part and what to do rather than Dask's task key.
    from dask_helpers import end_the_worker

    from mlstages.components.common.engine import WorkerError

    with open_engine("dask", workers=1, say=lambda line: None) as running:
        with pytest.raises(WorkerError, match=r"ran end_the_worker on /data/part-00003\.parquet died"):
            running.map(end_the_worker, ["/data/part-00003.parquet"])


def test_workers_that_cannot_import_the_work_are_refused_rather_than_waited_for(engine):
    # A worker that cannot unpickle a task's function fails reading the message, and the task
    # would wait for its result forever (a worker image without the task's code).
    import sys
    import types

    from mlstages.components.common.engine import WorkerError

    module = types.ModuleType("only_in_the_task")
    exec("def double(x):\n    return 2 * x\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(WorkerError, match="the Dask workers cannot import only_in_the_task"):
            engine.map(module.double, [1, 2])
    finally:
        del sys.modules[module.__name__]
    assert engine.map(abs, [-4]) == [4]  # the cluster still works


def test_statistics_on_the_cluster_are_those_of_the_task(engine, tmp_path):
    df = mixed_table(3_000)
    write_dataset(df, tmp_path / "data", part_rows=700)
    config = ValidationConfig(policy="warn", label_column="city")

    local = validate_dataset(tmp_path / "data", config, batch_rows=256)
    spread = validate_dataset(tmp_path / "data", config, batch_rows=256, engine=engine)

    assert local.statistics["exact"] and spread.statistics["exact"]
    _close(local.statistics, spread.statistics)
    assert spread.schema == local.schema
    assert spread.anomalies == local.anomalies
    assert spread.value_check_rows == local.value_check_rows


def test_the_value_check_sample_is_the_same_rows_when_it_samples(engine, tmp_path):
    df = mixed_table(2_000, seed=9)
    write_dataset(df, tmp_path / "data", part_rows=300)
    config = ValidationConfig(policy="warn")

    local = validate_dataset(tmp_path / "data", config, value_check_rows=150)
    spread = validate_dataset(tmp_path / "data", config, value_check_rows=150, engine=engine)

    assert local.value_check_rows == spread.value_check_rows == 150
    assert spread.anomalies == local.anomalies


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return export_penguins_classifier(tmp_path_factory)


def test_batch_scoring_on_the_cluster_writes_the_same_predictions(engine, classifier, tmp_path):
    data = load_penguins()
    data.insert(0, "order_id", np.arange(len(data), dtype="int64"))
    write_dataset(data, tmp_path / "data", part_rows=100)
    model, card = load_model_dir(str(classifier))

    def score(out: str, **kwargs) -> bp.BatchResult:
        return bp.batch_predict(
            open_dataset(tmp_path / "data"),
            model,
            card,
            BatchPredictConfig(batch_rows=40, id_column="order_id"),
            output_uri=out,
            model_name="penguins",
            model_version="v1",
            blessing=bp.CHAMPION,
            **kwargs,
        )

    local = score(str(tmp_path / "local"))
    spread = score(str(tmp_path / "spread"), engine=engine)

    assert (spread.rows, spread.batches, len(spread.shards)) == (local.rows, local.batches, len(local.shards))
    assert spread.prediction_counts == local.prediction_counts
    # Each part's shards were written by a worker, the request ids name the part.
    assert spread.shards == sorted(spread.shards, key=spread.shards.index)

    def logged(folder: str) -> pd.DataFrame:
        rows = read_source(IngestConfig(source_uri=folder))
        return rows.sort_values(["order_id"]).reset_index(drop=True)

    a, b = logged(str(tmp_path / "local")), logged(str(tmp_path / "spread"))
    predicted = ["order_id", "prediction", *(c for c in a.columns if c.startswith("proba_"))]
    pd.testing.assert_frame_equal(a[predicted], b[predicted])
    assert b["request_id"].str.fullmatch(rf"{spread.request_prefix}-0000[0-3]-00000[0-2]").all()


def test_a_part_the_model_refuses_fails_the_run_and_leaves_no_shard(engine, classifier, tmp_path):
    data = load_penguins()
    data.loc[250:255, "bill_length_mm"] = np.inf  # the model refuses infinity, in the third part
    write_dataset(data, tmp_path / "data", part_rows=100)
    model, card = load_model_dir(str(classifier))
    messages = []
    for name, running in (("local", None), ("spread", engine)):
        with pytest.raises(InputDataError) as refused:
            bp.batch_predict(
                open_dataset(tmp_path / "data"),
                model,
                card,
                BatchPredictConfig(batch_rows=40),
                output_uri=str(tmp_path / name),
                model_name="penguins",
                model_version="v1",
                blessing=bp.FORCED,
                engine=running,
            )
        messages.append(str(refused.value))
        assert storage.list_uris(str(tmp_path / name)) == []
    assert messages[0] == messages[1]
    assert messages[0].startswith(
        "the model could not predict rows 240 to 279 of the dataset: InputDataError: column "
        "'bill_length_mm' has an infinite value"
    )


def test_evaluation_on_the_cluster_gives_the_same_metrics(engine, classifier, tmp_path):
    from mlstages.components.evaluate.evaluate import evaluate_dataset

    data = load_penguins().dropna(subset=["species"])
    write_dataset(data, tmp_path / "test", part_rows=90)
    model, card = load_model_dir(str(classifier))

    def evaluated(running):
        return evaluate_dataset(
            model,
            {"copy": model},
            tmp_path / "test",
            "species",
            "classification",
            slice_columns=("island",),
            classes=list(card.classes),
            input_columns=card.input_names,
            batch_rows=50,
            engine=running,
        ).to_dict()

    _close(evaluated(None), evaluated(engine))


@pytest.mark.parametrize("name", list(windows()))
def test_drift_window_summaries_on_the_cluster_decide_as_in_the_task(engine, tmp_path, name):
    reference = build_reference(population(8_000, seed=1), "y", WINDOW_TYPES)
    write_dataset(windows()[name], tmp_path / "window", part_rows=333)
    for config in (DriftConfig(), DriftConfig(method="psi")):
        local = detect_drift_dataset(reference, tmp_path / "window", config, batch_rows=97)
        spread = detect_drift_dataset(reference, tmp_path / "window", config, batch_rows=97, engine=engine)
        _close(local.to_dict(), spread.to_dict())


def test_engine_dask_starts_a_local_cluster_names_it_and_stops_it(tmp_path):
    write_dataset(mixed_table(500), tmp_path / "data", part_rows=200)
    config = ValidationConfig(policy="warn")
    said: list[str] = []
    with open_engine("dask", workers=2, say=said.append) as running:
        assert running.distributed and len(running.workers) == 2
        address = running.client.scheduler.address
        result = validate_dataset(tmp_path / "data", config, engine=running)
    assert result.statistics["dataset"]["rows"] == 550  # with the table's repeated rows
    assert said[0].startswith(f"engine dask: scheduler {address}, 2 worker(s): ")
    assert said[-1] == "engine dask: LocalCluster stopped"
    # Stopped: nothing listens at the scheduler's address any more.
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass


def test_the_local_engine_runs_in_the_task_without_dask():
    with open_engine("local") as running:
        assert not running.distributed
        assert running.map(abs, [-1, 2, -3]) == [1, 2, 3]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "spark",
            "parameter engine='spark' is not 'local', 'dask' or a Dask scheduler address such as tcp://host:8786",
        ),
        (
            "tcp://scheduler",
            "parameter engine='tcp://scheduler': a scheduler address needs a port, such as tcp://host:8786",
        ),
    ],
)
def test_a_bad_engine_value_is_refused_in_one_line(value, message):
    with pytest.raises(ParameterError) as refused:
        check_engine(value)
    assert str(refused.value) == message
    with pytest.raises(ParameterError, match="^parameter engine="):
        ValidationConfig(engine=value)
    with pytest.raises(ParameterError, match="^parameter engine="):
        BatchPredictConfig(engine=value)
    with pytest.raises(ParameterError, match="^parameter engine="):
        DriftConfig(engine=value)


def test_an_unreachable_scheduler_is_refused_in_one_line():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ParameterError) as refused, open_engine(f"tcp://127.0.0.1:{port}"):
        pass
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"parameter engine='tcp://127.0.0.1:{port}': no Dask scheduler answered there")


def test_the_daskcluster_a_task_would_create_fits_the_operators_crd():
    """The Kubernetes path cannot run here (no cluster, no operator): what is checked is the
    DaskCluster the task would create from the example settings, built by the operator package's
    own make_cluster_spec and validated against the CRD schema that manifests/dask installs."""
    import json

    import jsonschema
    import yaml

    from mlstages.components.common.engine import kubernetes_spec
    from mlstages.tooling import catalog
    from mlstages.tooling.platform import load_settings

    pytest.importorskip("dask_kubernetes")
    from dataclasses import replace

    from mlstages.components.common.images import image

    settings = load_settings(catalog.PIPELINES_DIR / "settings" / "cluster.example.yaml").dask
    assert settings is not None and settings.image == ""  # each stage's own image, filled in per task
    settings = replace(settings, image=image("batch_predict"))
    spec = kubernetes_spec(json.loads(settings.to_json()), "mlstages-0123456789")

    crd = yaml.safe_load((catalog.REPO_ROOT / "manifests" / "dask" / "daskcluster-crd.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
    assert spec["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
    assert spec["kind"] == crd["spec"]["names"]["kind"] == "DaskCluster"
    jsonschema.validate(spec["spec"], version["schema"]["openAPIV3Schema"]["properties"]["spec"])

    worker = spec["spec"]["worker"]
    assert worker["replicas"] == settings.workers == 4
    (container,) = worker["spec"]["containers"]
    assert container["image"] == settings.image
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "4Gi"}
    assert container["args"][:3] == ["dask-worker", "--nthreads", "1"]
    (scheduler,) = spec["spec"]["scheduler"]["spec"]["containers"]
    assert scheduler["image"] == settings.image

    # A wrong type where the CRD wants an integer is caught by the same schema.
    worker["replicas"] = "four"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec["spec"], version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_compiling_with_a_dask_section_gives_the_engine_stages_the_cluster_to_create(tmp_path):
    import json

    from mlstages.components.common.engine import KUBERNETES_ENV
    from mlstages.components.common.images import image
    from mlstages.pipelines.inference import build_inference_pipeline
    from mlstages.pipelines.training import build_training_pipeline
    from mlstages.tooling import catalog
    from mlstages.tooling.platform import load_settings

    settings = load_settings(catalog.PIPELINES_DIR / "settings" / "cluster.example.yaml")
    from kfp import compiler

    from mlstages.pipelines.monitoring import build_monitoring_pipeline

    found = {}
    builds = {
        "training": build_training_pipeline,
        "inference": build_inference_pipeline,
        "monitoring": build_monitoring_pipeline,
    }
    for name, build in builds.items():
        compiler.Compiler().compile(build(settings), str(tmp_path / f"{name}.yaml"))
        for document in yaml_documents(tmp_path / f"{name}.yaml"):
            for executor, spec in (document.get("deploymentSpec") or {}).get("executors", {}).items():
                env = {e["name"]: e["value"] for e in spec["container"].get("env", [])}
                found[f"{name}:{executor}"] = env.get(KUBERNETES_ENV)
    engine_stages = re.compile(r".*:exec-(validate-data|train|evaluate|batch-predict|monitor-drift)(-\d+)?$")
    assert {key for key in found if engine_stages.match(key)} == {
        key for key, value in found.items() if value
    }
    assert "monitoring:exec-monitor-drift" in found and "inference:exec-batch-predict" in found
    for key, value in found.items():
        if value:  # the settings, with the stage's own image for the workers
            stage = key.split(":exec-")[1].rsplit("-", 1)[0] if key[-1].isdigit() else key.split(":exec-")[1]
            assert json.loads(value) == {
                **json.loads(settings.dask.to_json()),
                "image": image(stage.replace("-", "_")),
            }, key


def yaml_documents(path: Path) -> list[dict]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_a_scheduler_without_workers_is_refused_in_one_line(monkeypatch):
    from mlstages.components.common import engine as engine_module

    monkeypatch.setattr(engine_module, "WORKER_TIMEOUT_SECONDS", 2)
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as empty:
        address = empty.scheduler_address
        with pytest.raises(ParameterError) as refused, open_engine(address):
            pass
    assert str(refused.value) == (
        f"parameter engine={address!r}: the Dask scheduler at {address} has no worker after 2 s; "
        "start workers for it, or use engine='dask'"
    )


def test_the_operator_path_without_its_client_in_the_image_says_how_to_build_it(monkeypatch):
    """The default stage images carry dask and distributed but not the operator's client: a task
    asked to create a DaskCluster there fails in one line naming the build argument."""
    import sys

    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", None)  # what `import` meets in such an image
    monkeypatch.setenv(
        "MLSTAGES_DASK_KUBERNETES", '{"image": "x", "workers": 1, "worker_cpu": "1", "worker_memory": "1Gi"}'
    )
    with pytest.raises(ParameterError, match="--build-arg DASK_KUBERNETES=1"), open_engine("dask"):
        pass


def test_workers_of_a_cluster_read_the_parts_at_their_uri(gcs_bucket, tmp_path):
    # The task's folder holds one table, object storage another of the same shape: statistics of
    # the second show the workers read the parts there, not in the task's folder (which a
    # cluster's pods cannot see). The task reads only the footers (row counts), the same in both.
    write_dataset(mixed_table(2_000), tmp_path / "task", part_rows=600)
    write_dataset(mixed_table(2_000, seed=5), tmp_path / "stored", part_rows=600)
    storage.upload_dir(str(tmp_path / "stored"), f"{gcs_bucket}/data")
    config = ValidationConfig(policy="warn", label_column="city")
    messages: list[str] = []
    with open_engine(
        "dask",
        workers=2,
        say=messages.append,
        locations={str(tmp_path / "task"): f"{gcs_bucket}/data"},
        read_uris=True,  # as on a cluster's pods; a LocalCluster shares the task's files
    ) as running:
        spread = validate_dataset(tmp_path / "task", config, batch_rows=256, engine=running)
    stored = validate_dataset(tmp_path / "stored", config, batch_rows=256)
    _close(stored.statistics, spread.statistics)
    assert any(f"read {gcs_bucket}/data from object storage" in m for m in messages)


def test_only_a_clusters_workers_read_uris_and_only_of_the_folders_named(cluster, tmp_path):
    locations = {
        str(tmp_path / "data"): "gs://bucket/runs/data",
        str(tmp_path / "local"): str(tmp_path / "x"),
    }
    with open_engine(cluster.scheduler_address, locations=locations, say=lambda _: None) as running:
        assert running.locations == {str(tmp_path / "data"): "gs://bucket/runs/data"}
        assert running.located((str(tmp_path / "data" / "part-00001.parquet"), 500, 1)) == (
            "gs://bucket/runs/data/part-00001.parquet",
            500,
            1,
        )
        assert running.located((str(tmp_path / "other.parquet"), 0)) == (str(tmp_path / "other.parquet"), 0)
        assert running.located("not a part") == "not a part"
    with open_engine("dask", workers=1, locations=locations, say=lambda _: None) as running:
        assert running.locations == {}  # a LocalCluster's workers read the task's own files


def test_a_worker_reads_a_parts_uri_through_a_temporary_copy(gcs_bucket, tmp_path):
    from mlstages.components.common import engine as engine_module
    from mlstages.components.common.cluster_fit import Part

    (tmp_path / "part-00000.parquet").write_bytes(b"stored part")
    storage.upload_dir(str(tmp_path), f"{gcs_bucket}/split")
    seen = []

    def read(item, *args, **shared):
        file = item if isinstance(item, str) else item[0] if isinstance(item, tuple) else item.file
        seen.append((Path(file).read_bytes(), Path(file).exists(), args, shared))
        return file

    uri = f"{gcs_bucket}/split/part-00000.parquet"
    for item in (uri, (uri, 0, 1), Part(uri, 0, 11)):
        local = engine_module._on_local_copy(read, item, 5, rows=11)
        assert not Path(local).exists()  # the temporary copy is gone
    assert seen == [(b"stored part", True, (5,), {"rows": 11})] * 3
    assert engine_module._on_local_copy(read, str(tmp_path / "part-00000.parquet")) == str(
        tmp_path / "part-00000.parquet"
    )
    located = engine_module.Engine("dask", locations={str(tmp_path): f"{gcs_bucket}/split"}).located(
        Part(str(tmp_path / "part-00000.parquet"), 0, 11)
    )
    assert located == Part(uri, 0, 11)
