"""The inference pipeline end to end through kfp.local and the embedded object store — what
`make run` then `make infer` do, checked: the champion the training run deployed scores the
built-in dataset into prediction-log shards in the store, and the monitoring pipeline's reader
(ingest of the prefix, then monitor_drift) reads them."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from kfp_launcher_rules import assert_cluster_safe

from mlstages.tooling import cli, local

pytestmark = pytest.mark.e2e

# A smaller search than the default keeps the test quick; the wiring is the same.
SMALL_SEARCH = ["cv_folds=3", "model_families=[logistic_regression]"]


@contextlib.contextmanager
def _store(workdir: Path):
    """The run stopped its store; start one on the same folder to read what it left."""
    from mlstages.components.common.emulator import EmbeddedGCS

    with EmbeddedGCS(root=workdir / "gcs"):
        yield f"gs://{local.LOCAL_BUCKET}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("infer")
    params = local.load_params(local.catalog.builtin_params_path("training"), SMALL_SEARCH)
    report = local.run_pipeline("training", params, workdir=workdir, progress=lambda _: None)
    assert report.task("deploy").parameters["deployed"] is True
    return workdir, report


def _infer(workdir: Path, *options: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["run", "inference", "--workdir", str(workdir), *options])
    return code, out.getvalue()


def test_mlstages_run_inference_scores_with_the_champion_into_the_store(trained):
    workdir, training = trained
    model_uri = training.task("train").parameters["model_uri"]
    version = model_uri.rsplit("/", 1)[-1]

    code, printed = _infer(workdir)

    assert code == 0, printed
    # Every task output would pass a real cluster's launcher.
    (run_dir,) = (workdir / "runs").glob("mlstages-inference-*")
    assert_cluster_safe(run_dir)
    prefix = "gs://mlstages-local/predictions/penguins"
    assert f"Scored 344 rows with model version {version}: 1 shard(s) under {prefix}" in printed
    with _store(workdir):
        from mlstages.components.common import storage
        from mlstages.components.common.reference import load_reference
        from mlstages.components.ingest.ingest import IngestConfig, read_source
        from mlstages.components.monitor_drift.config import DriftConfig
        from mlstages.components.monitor_drift.monitor_drift import detect_drift

        # The gate's decision travelled with the version it blessed.
        blessing = json.loads(storage.read_bytes(f"{model_uri}/blessing.json"))
        assert blessing["blessed"] is True and blessing["reason"].startswith("blessed")
        window = read_source(IngestConfig(source_uri=prefix))
        scratch = workdir / "champion"
        storage.download_dir(model_uri, scratch)
        outcome = detect_drift(load_reference(str(scratch)), window, DriftConfig())
    assert len(window) == 344 and set(window["model_version"]) == {version}
    assert window["prediction"].isin(["Adelie", "Chinstrap", "Gentoo"]).all()
    assert outcome.rows == 344 and outcome.to_dict()["new_columns"] == []


def test_an_unknown_id_column_is_refused_before_the_run(trained):
    workdir, _ = trained
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["run", "inference", "--workdir", str(workdir), "--set", "id_column=order"])
    assert code == 2
    message = err.getvalue().strip()
    assert message.count("\n") == 0
    assert "parameter id_column: column 'order' is not in the built-in dataset (Palmer penguins)" in message
