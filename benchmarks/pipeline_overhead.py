"""Where the pipeline's overhead over one process goes: each task's interpreter start, imports and
input reads, timed on the run's own inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline_paths import STAGES
from process_tree import THREAD_VARIABLES

# What a pipeline task does before its stage's logic runs, and a stage in the single process does
# not: start Python, import kfp's executor, the component and its logic module, then read its
# inputs back from the run folder (unpickling a fitted estimator imports the scikit-learn modules
# it is made of, which the single process imported once, in an earlier stage).
_TASK_PREAMBLE = r"""
import importlib, json, sys, time
started = time.perf_counter()
import kfp.dsl.executor_main  # noqa: F401
stage = sys.argv[1]
importlib.import_module(f"mlstages.components.{stage}.component")
importlib.import_module(f"mlstages.components.{stage}.{stage}")
imported = time.perf_counter()
from mlstages.components.common.artifacts import load_estimator
from mlstages.components.common.dataset_files import read_dataset
for kind, path, name in json.loads(sys.argv[2]):
    if kind == "dataset":
        read_dataset(path)
    else:
        load_estimator(path, name)
print(json.dumps({"import_seconds": imported - started, "read_seconds": time.perf_counter() - imported}))
"""


# The inputs each task reads: (kind, task folder, output name, joblib name).
_TASK_INPUTS = {
    "ingest": [],
    "validate_data": [("dataset", "ingest", "dataset", "")],
    "preprocess": [("dataset", "ingest", "dataset", "")],
    "engineer_features": [
        ("estimator", "preprocess", "transformer", "transformer"),
        ("dataset", "preprocess", "train", ""),
    ],
    "train": [
        ("dataset", "preprocess", "train", ""),
        ("estimator", "engineer-features", "features", "features"),
    ],
    "evaluate": [("dataset", "preprocess", "test", ""), ("estimator", "train", "model", "model")],
    "validate_model": [("dataset", "preprocess", "test", ""), ("estimator", "train", "model", "model")],
}


def task_preamble_seconds(stage: str, run_dir: Path, environment: dict[str, str]) -> dict[str, float]:
    """Seconds a cold task process of ``stage`` spends before its logic runs, split into the
    interpreter's start, imports, and reading its inputs from the pipeline run in ``run_dir``."""
    inputs = []
    for kind, task, name, joblib_name in _TASK_INPUTS[stage]:
        found = sorted(run_dir.glob(f"**/{task}/{name}"))
        if not found:
            raise RuntimeError(f"no artifact {task}/{name} under {run_dir}")
        inputs.append((kind, str(found[0]), joblib_name))
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _TASK_PREAMBLE, stage, json.dumps(inputs)],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    total = time.perf_counter() - started
    inner = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "interpreter_seconds": total - inner["import_seconds"] - inner["read_seconds"],
        **inner,
        "total_seconds": total,
    }


def profile_overhead(pipeline_run_dir: Path, blas_threads: int) -> dict[str, Any]:
    """Where the pipeline spends time that the single process does not."""
    environment = dict(os.environ)
    if blas_threads > 0:
        environment.update({name: str(blas_threads) for name in THREAD_VARIABLES})
    preamble = {stage: task_preamble_seconds(stage, pipeline_run_dir, environment) for stage in STAGES}
    return {
        "task_preamble_seconds": preamble,
        "task_preamble_total_seconds": sum(p["total_seconds"] for p in preamble.values()),
    }
