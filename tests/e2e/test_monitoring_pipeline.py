"""The monitoring pipeline end to end through kfp.local and the embedded object store — what
`make monitor` does, checked: no champion → training first; a drifted window → drift detected,
retrained through the training pipeline, blessed and deployed; a stable window → no retraining.
Also: evaluate publishes evaluation.json into the registry version, and load_reference attaches it."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from kfp_launcher_rules import assert_cluster_safe

from mlstages.tooling import cli, local

pytestmark = pytest.mark.e2e

# A smaller search than the default keeps the test quick; the wiring is the same.
SMALL_SEARCH = ["cv_folds=3", "model_families=[logistic_regression]"]


def _params() -> dict:
    return local.load_params(local.catalog.pipeline_params_path("monitoring"), SMALL_SEARCH)


@contextlib.contextmanager
def _store(workdir: Path):
    """The run stopped its store; start one on the same folder to read what it left."""
    from mlstages.components.common.emulator import EmbeddedGCS

    with EmbeddedGCS(root=workdir / "gcs"):
        yield f"gs://{local.LOCAL_BUCKET}/models"


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("monitor")
    messages: list[str] = []
    report = local.monitor(_params(), drift=True, workdir=workdir, progress=messages.append)
    return workdir, report, messages


@pytest.fixture(scope="module")
def stable(tmp_path_factory):
    """`mlstages monitor --no-drift` in a fresh workdir: the first champion is trained, then a window
    of its own population is monitored. (After the drifted run, the champion has learned the shifted
    rows, so a window of the old population is a change for it.)"""
    workdir = tmp_path_factory.mktemp("stable")
    out = io.StringIO()
    argv = ["monitor", "--no-drift", "--workdir", str(workdir)] + [f"--set={item}" for item in SMALL_SEARCH]
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    with _store(workdir) as registry_uri:
        from mlstages.components.common import registry

        after = (
            registry.list_versions(registry_uri, "penguins"),
            registry.read_champion(registry_uri, "penguins"),
        )
    return workdir, code, out.getvalue(), after


def test_without_a_champion_the_training_pipeline_runs_first(drifted):
    _, report, messages = drifted
    assert report.training is not None
    assert any(
        m.startswith("No champion for 'penguins'") and "training pipeline first" in m for m in messages
    )
    assert report.training.task("deploy").parameters["deployed"] is True
    assert "(trained and deployed first: there was none" in local.format_monitor_report(report)


def test_every_task_output_keeps_a_real_clusters_rules(drifted, stable):
    _, report, _ = drifted
    assert report.training is not None
    for run in (report.training, report.monitoring):
        assert_cluster_safe(run.run_dir)
    # The stable window's run, through the CLI, names its folder in what it printed.
    printed = re.findall(r"^Run folder: (.+)$", stable[1], re.MULTILINE)
    assert printed
    for folder in printed:
        assert_cluster_safe(Path(folder.strip()))


def test_the_drifted_window_is_detected_with_its_reasons(drifted):
    _, report, messages = drifted
    assert report.simulated == "drifted"
    assert report.window_uri.startswith("gs://mlstages-local/monitoring/window-")
    assert report.window_uri.endswith(".parquet")
    assert any(m.startswith("Simulated a drifted window of 200 labelled rows") for m in messages)
    drift = report.drift
    assert drift.parameters["retrain"] is True
    assert drift.parameters["drift_share"] >= 0.5
    reasons = drift.parameters["reasons"]
    for feature in ("island", "bill_length_mm", "flipper_length_mm", "body_mass_g"):
        assert feature in reasons
    # The window has labels: the champion's performance on it is compared with the test-set
    # metrics evaluate published beside the model (evaluation.json).
    metrics = drift.artifacts["metrics"]["metadata"]
    assert "current_f1_macro" in metrics
    assert "performance decay: f1_macro" in reasons


def test_the_drifted_window_retrains_blesses_deploys_and_moves_the_champion(drifted):
    from mlstages.components.common import registry, storage

    workdir, report, _ = drifted
    assert report.retrained
    first_version = report.training.task("train").parameters["model_uri"]
    new_version = next(
        t.parameters["model_uri"]
        for t in report.monitoring.tasks
        if t.name.endswith("train") and "model_uri" in t.parameters
    )
    assert new_version != first_version
    assert new_version.startswith("gs://mlstages-local/models/penguins/")
    gate = next(t for t in report.monitoring.tasks if t.name.endswith("validate-model"))
    assert gate.parameters["blessed"] is True
    # Judged against the champion that monitoring found drifting.
    assert gate.parameters["baseline_uri"] == first_version
    with _store(workdir) as registry_uri:
        versions = registry.list_versions(registry_uri, "penguins")
        champion = registry.read_champion(registry_uri, "penguins")
    assert [f"{registry_uri}/penguins/{v}" for v in versions] == [first_version, new_version]
    assert champion["model_uri"] == new_version

    text = local.format_monitor_report(report)
    assert "retrain:      yes" in text
    assert f"new version:  {new_version}" in text
    assert "deployed:     yes, it is the champion now" in text
    # It learned from the window: the training data holds the original rows and the window's
    # labelled ones, the new model differs from the champion, and the card's lineage says so.
    assembled = next(t for t in report.monitoring.tasks if t.name.endswith("training-data"))
    data_uri = assembled.parameters["data_uri"]
    assert data_uri.startswith("gs://mlstages-local/models/penguins/training-data/")
    assert f"retrained on: {data_uri}" in text
    assert assembled.parameters["rows"] > 344
    assert "(new) vs" in text and "(champion), on the same test rows" in text
    with _store(workdir) as registry_uri:
        cards = [
            json.loads(storage.read_bytes(f"{uri}/metadata.json")) for uri in (first_version, new_version)
        ]
    assert cards[0]["sha256"] != cards[1]["sha256"]
    (source,) = cards[1]["lineage"]["data"]["sources"]
    assert [part["role"] for part in source["parts"]] == ["original data", "window"]
    assert cards[1]["lineage"]["parent"]["model_uri"] == first_version


def test_evaluate_published_its_evaluation_into_each_version_and_load_reference_attaches_it(drifted):
    from mlstages.components.common import storage
    from mlstages.components.common.reference import load_reference

    workdir, report, _ = drifted
    for run in (report.training, report.monitoring):
        train = next(t for t in run.tasks if t.name.endswith("train") and "model_uri" in t.parameters)
        evaluate = next(t for t in run.tasks if t.name.endswith("evaluate"))
        local_evaluation = json.loads(Path(evaluate.artifacts["evaluation"]["uri"]).read_text())
        assert (
            evaluate.artifacts["evaluation"]["metadata"]["published"]
            == f"{train.parameters['model_uri']}/evaluation.json"
        )
        with _store(workdir):
            published = json.loads(storage.read_bytes(f"{train.parameters['model_uri']}/evaluation.json"))
            reference = load_reference(train.parameters["model_uri"])
        assert published == local_evaluation
        assert reference["metrics"] == pytest.approx(local_evaluation["metrics"])
        assert reference["task"] == "classification"


def test_a_stable_window_does_not_retrain(stable):
    _, code, out, (versions, champion) = stable
    assert code == 0
    assert "Simulated a stable window of 200 labelled rows" in out
    assert "retrain:      no" in out
    assert "no retraining: the champion stays" in out
    assert "new version:" not in out
    # Only the first champion was published; monitoring published nothing and moved nothing.
    assert len(versions) == 1 and champion["model_uri"].endswith(versions[0])


def test_a_given_window_is_monitored_as_is(stable, tmp_path):
    """--data: the window is read from where it is; a window of the training population passes."""
    import palmerpenguins

    workdir = stable[0]
    window = tmp_path / "window.csv"
    palmerpenguins.load_penguins().sample(n=150, random_state=3).to_csv(window, index=False)
    report = local.monitor(_params(), data=str(window), workdir=workdir, progress=lambda _: None)
    assert report.window_uri == str(window)
    assert report.simulated == ""
    assert report.training is None
    ingest = next(t for t in report.monitoring.tasks if t.name == "ingest")
    assert ingest.artifacts["dataset"]["metadata"]["rows"] == 150
    assert report.drift.parameters["retrain"] is False
    assert_cluster_safe(report.monitoring.run_dir)


# --- load_reference and evaluation.json, without a pipeline --------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    from mlstages.components.common.reference import build_reference, save_reference

    frame = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0], "colour": ["a", "b", "a", "b"], "y": ["p", "q", "p", "q"]}
    )
    save_reference(build_reference(frame, "y", {"x": "numeric", "colour": "categorical"}), tmp_path)
    return tmp_path


def test_load_reference_without_evaluation_has_no_metrics(model_dir):
    from mlstages.components.common.reference import load_reference

    assert not load_reference(model_dir).get("metrics")


def test_load_reference_attaches_the_sibling_evaluation(model_dir):
    from mlstages.components.common.reference import load_reference

    evaluation = {"task": "classification", "metrics": {"accuracy": 0.9, "roc_auc": None}, "slices": []}
    (model_dir / "evaluation.json").write_text(json.dumps(evaluation))
    reference = load_reference(model_dir)
    assert reference["metrics"] == {"accuracy": 0.9, "roc_auc": None}
    assert reference["task"] == "classification"
    # The reference file named directly finds the same sibling.
    assert load_reference(model_dir / "reference.json")["metrics"] == reference["metrics"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "evaluation.json is not valid JSON"),
        (
            '{"task": "classification"}',
            'evaluation.json is not an evaluation written by evaluate: it has no "metrics"',
        ),
        ('{"metrics": {"accuracy": "high"}}', "evaluation.json: parameter metrics: 'accuracy' is 'high'"),
    ],
)
def test_a_bad_sibling_evaluation_is_named(model_dir, content, message):
    from mlstages.components.common.errors import InputDataError
    from mlstages.components.common.reference import load_reference

    (model_dir / "evaluation.json").write_text(content)
    with pytest.raises(InputDataError, match=message):
        load_reference(model_dir)


def _evaluate_directly(run: local.RunReport, model_dir: Path, out: Path, model_uri: str, slice_columns: list):
    """The evaluate component's function on a run's test split, with the version as model_uri."""
    from kfp import dsl

    from mlstages.components.evaluate.component import evaluate

    out.mkdir(parents=True, exist_ok=True)
    test_split = next(t for t in run.tasks if t.name.endswith("preprocess")).artifacts["test"]["uri"]
    outputs = {
        "metrics": dsl.Metrics(uri=str(out / "metrics")),
        "classification_metrics": dsl.ClassificationMetrics(uri=str(out / "classification_metrics")),
        "evaluation": dsl.Artifact(uri=str(out / "evaluation")),
        "report": dsl.HTML(uri=str(out / "report")),
        "summary": dsl.Markdown(uri=str(out / "summary")),
    }
    evaluate.python_func(
        test=dsl.Dataset(uri=test_split),
        model=dsl.Model(uri=str(model_dir)),
        label_column="species",
        task="classification",
        slice_columns=slice_columns,
        model_uri=model_uri,
        **outputs,
    )
    return outputs["evaluation"]


def test_evaluate_never_overwrites_a_published_evaluation(drifted, tmp_path):
    from mlstages.components.common import storage
    from mlstages.components.common.errors import StorageError

    workdir, report, _ = drifted
    version = report.training.task("train").parameters["model_uri"]
    with _store(workdir):
        before = storage.read_bytes(f"{version}/evaluation.json")
        model_dir = tmp_path / "model"
        storage.download_dir(version, model_dir)
        # A retry of the same evaluation finds its own identical file and goes on.
        again = _evaluate_directly(report.training, model_dir, tmp_path / "same", version, ["island", "sex"])
        assert again.metadata["published"] == f"{version}/evaluation.json"
        # Another evaluation (other slices) of the same version is refused, naming the file.
        with pytest.raises(StorageError, match=r"evaluation.json already exists with another evaluation"):
            _evaluate_directly(report.training, model_dir, tmp_path / "other", version, [])
        assert not (tmp_path / "other" / "evaluation").exists()  # no partial output
        assert storage.read_bytes(f"{version}/evaluation.json") == before
    # The model artifact's own location is not a registry version: nothing is published there.
    local_only = _evaluate_directly(report.training, model_dir, tmp_path / "local", str(model_dir), [])
    assert "published" not in local_only.metadata
    assert (model_dir / "evaluation.json").read_bytes() == before  # the downloaded copy, untouched
