"""`mlstages run training --set engine=dask` on the built-in data: validate_data's statistics and
evaluate's predictions run on a LocalCluster of two worker processes that each task starts, names
in its log and stops, and the run gives what the local engine gives: the same statistics, split
and test metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlstages.tooling import cli, local

pytestmark = pytest.mark.e2e

SMALL_SEARCH = ["cv_folds=3", "model_families=[logistic_regression, random_forest]"]


def _outputs(run_dir: Path, task: str) -> dict:
    document = json.loads((run_dir / task / "executor_output.json").read_text(encoding="utf-8"))
    return {name: spec["artifacts"][0] for name, spec in document["artifacts"].items()}


def test_training_with_engine_dask_gives_the_local_engines_results(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    params = local.load_params(local.catalog.builtin_params_path("training"), SMALL_SEARCH)
    on_task = local.run_pipeline("training", params, workdir=tmp_path / "local", progress=lambda _: None)

    monkeypatch.setenv("MLSTAGES_DASK_WORKERS", "2")
    argv = ["run", "training", "--workdir", str(tmp_path / "dask"), "--set", "engine=dask"]
    assert cli.main(argv + [a for item in SMALL_SEARCH for a in ("--set", item)]) == 0
    capsys.readouterr()
    (spread_dir,) = (tmp_path / "dask" / "runs").iterdir()

    for task in ("validate-data", "evaluate"):
        log = (spread_dir / task / "task.log").read_text(encoding="utf-8")
        started = re.search(r"engine dask: scheduler (tcp://\S+), 2 worker\(s\): (\S+), (\S+)", log)
        assert started, log[-2000:]
        assert "engine dask: LocalCluster stopped" in log

    for name in ("statistics", "schema"):
        local_text = Path(on_task.task("validate-data").artifacts[name]["uri"]).read_text(encoding="utf-8")
        spread_text = Path(_outputs(spread_dir, "validate-data")[name]["uri"]).read_text(encoding="utf-8")
        assert json.loads(spread_text) == json.loads(local_text), name
    for split in ("train", "test"):
        local_split = on_task.task("preprocess").artifacts[split]["metadata"]
        spread_split = _outputs(spread_dir, "preprocess")[split]["metadata"]
        assert spread_split["rows"] == local_split["rows"]
        assert spread_split["content_hash"] == local_split["content_hash"], split
    assert (
        _outputs(spread_dir, "evaluate")["metrics"]["metadata"]
        == (on_task.task("evaluate").artifacts["metrics"]["metadata"])
    )
