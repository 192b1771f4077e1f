"""Two `mlstages run training` at once in one --workdir: each reports its own run folder, model
and metrics (issue 12 item 7). The runs are kept short (one family, one candidate, two folds, no
infra validation) so they overlap without taking minutes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import palmerpenguins
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_external_network")]

SHORT = [
    "label_column=species",
    "model_families=[logistic_regression]",
    "search=random",
    "n_iter=1",
    "cv_folds=2",
    "infra_validation=false",
    "quality_floor=none",
    "thresholds={accuracy: {min: 0.5}}",
]


def _printed(pattern: str, text: str) -> str:
    found = re.search(pattern, text, flags=re.MULTILINE)
    assert found, f"{pattern!r} not in:\n{text[-3000:]}"
    return found.group(1)


def _task_outputs(run_dir: Path, task: str) -> dict:
    return json.loads((run_dir / task / "executor_output.json").read_text(encoding="utf-8"))


def test_two_runs_in_one_workdir_each_report_their_own_folder_model_and_metrics(tmp_path):
    penguins = palmerpenguins.load_penguins()
    tables = {
        "alpha": penguins,  # 344 rows
        "beta": penguins[penguins["island"] != "Torgersen"],  # 292 rows
    }
    workdir = tmp_path / "work"
    runs = {}
    for name, table in tables.items():
        path = tmp_path / f"{name}.csv"
        table.to_csv(path, index=False)
        command = [sys.executable, "-m", "mlstages.tooling.cli", "run", "training"]
        command += ["--workdir", str(workdir), "--data", str(path)]
        for item in SHORT:
            command += ["--set", item]
        runs[name] = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "MLSTAGES_CPUS": "1"},
        )
    outputs = {name: process.communicate(timeout=900)[0] for name, process in runs.items()}
    for name, process in runs.items():
        assert process.returncode == 0, outputs[name][-3000:]

    folders = {}
    for name, text in outputs.items():
        run_dir = Path(_printed(r"^Run folder: (.+)$", text))
        folders[name] = run_dir
        assert run_dir.parent == (workdir / "runs").resolve()
        # The run folder it printed is the one that read its own data...
        rows = _task_outputs(run_dir, "validate-data")["artifacts"]["statistics"]["artifacts"][0]["metadata"]
        assert rows["rows"] == len(tables[name])
        # ...and trained the model it printed, published under its own name (from the file name).
        model_uri = _printed(r"^Model: (\S+)$", text)
        assert f"/models/{name}/" in model_uri
        assert _task_outputs(run_dir, "train")["parameterValues"]["model_uri"] == model_uri
        # The metrics it printed are its own evaluation's.
        evaluated = _task_outputs(run_dir, "evaluate")["artifacts"]["metrics"]["artifacts"][0]["metadata"]
        for metric, value in evaluated.items():
            if isinstance(value, float):
                assert f"  {metric:<24} {value:.4f}" in text
    assert folders["alpha"] != folders["beta"]
    # The two runs did overlap: each one's first task ended before the other's last one.
    ends = {
        name: sorted(p.stat().st_mtime for p in folder.glob("**/executor_output.json"))
        for name, folder in folders.items()
    }
    assert ends["alpha"][0] < ends["beta"][-1] and ends["beta"][0] < ends["alpha"][-1]
