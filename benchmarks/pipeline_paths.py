"""The pipeline benchmark's synthetic dataset and its two measured paths: the training pipeline
through kfp.local, and the same logic in one process (each run in a fresh interpreter)."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

from synthetic_data import CATEGORICAL_LEVELS, LABEL_COLUMN, SEED, make_dataset

RESULTS_DIR = Path(__file__).resolve().parent / "results"


FULL_ROWS = 1_000_000


QUICK_ROWS = 100_000


FULL_REPEATS = 3


SAMPLE_INTERVAL_SECONDS = 0.05


MODEL_NAME = "synthetic"


# Targets from issue 2.
MAX_PIPELINE_OVER_SINGLE = 1.25


MAX_PEAK_OVER_DATASET = 4.0


# The pipeline parameters used by both paths. One model family with three candidates, 3-fold CV
# on a 50k-row stratified sample, then a refit on every training row. Variance selection: mutual
# information on 700k training rows costs minutes (k-nearest-neighbour estimates per feature).
PIPELINE_PARAMS: dict[str, Any] = {
    "label_column": LABEL_COLUMN,
    "task": "auto",
    "validation_policy": "fail",
    "test_size": 0.2,
    "split": "stratified",
    "seed": 42,
    "scaling": "standard",
    "encoding": "onehot",
    "outliers": "iqr",
    "derived_features": [
        {"name": "balance_per_tenure", "kind": "ratio", "columns": ["num_07", "num_08"]},
        {"name": "log_income", "kind": "log", "columns": ["num_05"]},
    ],
    "selection": "variance",
    "max_features": 0,
    "model_families": ["logistic_regression"],
    "search": "grid",
    "cv_folds": 3,
    "search_space": {"logistic_regression": {"C": [0.1, 1.0, 10.0]}},
    "max_search_rows": 50_000,
    "slice_columns": ["region"],
    "model_name": MODEL_NAME,
}


PATHS = ("pipeline", "single")


PATH_DESCRIPTIONS = {
    "pipeline": "mlstages.tooling.local.run_pipeline('training'): embedded fake-gcs-server + "
    "kfp.local SubprocessRunner, one Python process per task, data between tasks as files",
    "single": "the same components' function bodies (component.python_func) called in order in one "
    "Python process, with the pipeline's arguments and local artifact folders, embedded fake-gcs-server "
    "for the registry; data between stages as files, as between tasks",
}


STAGES = ("ingest", "validate_data", "preprocess", "engineer_features", "train", "evaluate", "validate_model")


def write_dataset_file(rows: int, path: Path) -> dict[str, Any]:
    """Write the synthetic dataset as Parquet and describe it as ingest will read it."""
    import pandas as pd

    frame = make_dataset(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    del frame
    # The size that counts is that of the data as the stages hold it: read back from Parquet.
    loaded = pd.read_parquet(path)
    features = loaded.drop(columns=[LABEL_COLUMN])
    return {
        "rows": len(loaded),
        "numeric_columns": int(features.select_dtypes("number").shape[1]),
        "categorical_columns": int(features.select_dtypes(exclude="number").shape[1]),
        "categorical_levels": CATEGORICAL_LEVELS,
        "missing_share_of_feature_values": float(features.isna().to_numpy().mean()),
        "positive_label_share": float(loaded[LABEL_COLUMN].mean()),
        "in_memory_bytes": int(loaded.memory_usage(deep=True).sum()),
        "parquet_bytes": path.stat().st_size,
        "seed": SEED,
    }


def run_pipeline_path(data_path: Path, workdir: Path) -> dict[str, Any]:
    """The training pipeline through kfp.local, as `mlstages run` runs it."""
    from mlstages.tooling.local import run_pipeline

    params = dict(PIPELINE_PARAMS, data_uri=str(data_path))
    report = run_pipeline("training", params, workdir=workdir)
    evaluate = next(t for t in report.tasks if t.name.endswith("evaluate"))
    train = next(t for t in report.tasks if t.name.endswith("train"))
    gate = next(t for t in report.tasks if t.name.endswith("validate-model"))
    evaluation_path = Path(evaluate.artifacts["evaluation"]["uri"])
    return {
        "run_dir": str(report.run_dir),
        "run_pipeline_seconds": report.elapsed_seconds,
        "outcome": {
            "best_params": train.artifacts["model"]["metadata"]["best_params"],
            "cv_score": train.parameters["cv_score"],
            "test_metrics": json.loads(evaluation_path.read_text(encoding="utf-8"))["metrics"],
            "blessed": gate.parameters["blessed"],
            "model_files": sorted(p.name for p in Path(train.artifacts["model"]["uri"]).iterdir()),
        },
        "tasks": [t.name for t in report.tasks],
    }


def run_single_path(
    data_path: Path,
    workdir: Path,
    stage_seconds: dict[str, float],
    stage_peaks: dict[str, int],
    stage_cpu: dict[str, float],
) -> dict[str, Any]:
    """Every stage of the training pipeline in this process: the components' own function bodies
    (``component.python_func``), called in order with the pipeline's arguments and local artifact
    folders (scale_paths.run_in_process), so this path follows every change to a component. Like
    the tasks, each stage reads its inputs from the files the previous one wrote. Each stage's
    seconds go into ``stage_seconds``, its CPU seconds into ``stage_cpu`` and the process's peak
    RSS during the stage into ``stage_peaks``.
    """
    from scale_paths import run_in_process

    started = time.monotonic()
    result = run_in_process(
        data_path,
        workdir,
        started,
        training_params=PIPELINE_PARAMS | {"model_name": MODEL_NAME},
        inference=False,
    )
    for key, clock in result["stage_clock"].items():
        stage = key.split(".", 1)[1]
        stage_seconds[stage] = clock["seconds"]
        stage_cpu[stage] = clock["cpu_seconds"]
        stage_peaks[stage] = clock["process_peak_rss_bytes"]
    # Imports, the object store's start and stop: what is not a stage.
    stage_seconds["outside_stages"] = time.monotonic() - started - sum(stage_seconds.values())
    stages = result["phases"]["training"]["stages"]
    model = stages["train"]["artifacts"]["model"]
    evaluation = json.loads(Path(stages["evaluate"]["artifacts"]["evaluation"]["path"]).read_text())
    return {
        "outcome": {
            "best_params": model["metadata"]["best_params"],
            "cv_score": model["metadata"]["cv_score"],
            "test_metrics": evaluation["metrics"],
            "blessed": stages["validate_model"]["parameters"]["blessed"],
            "model_files": sorted(p.name for p in Path(model["path"]).iterdir()),
        }
    }


def _reset_peak_rss() -> None:
    """Start this process's VmHWM afresh from its current RSS (Linux: clear_refs value 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass  # the per-stage peaks then carry the earlier stages' peak; the total is unaffected


def _vm_hwm_bytes() -> int:
    """This process's peak RSS (VmHWM: reset at exec, unlike ru_maxrss, which carries the
    parent's peak over a fork)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_main(path: str, data_path: Path, workdir: Path, result_file: Path) -> None:
    """Entry point of a measured interpreter: run one path and write its timings as JSON."""
    started = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    stage_peaks: dict[str, int] = {}
    stage_cpu: dict[str, float] = {}
    if path == "pipeline":
        outcome = run_pipeline_path(data_path, workdir)
    else:
        outcome = run_single_path(data_path, workdir, stage_seconds, stage_peaks, stage_cpu)
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "path": path,
        "seconds": seconds,
        "stage_seconds": stage_seconds,
        "stage_peak_rss_bytes": stage_peaks,
        "stage_cpu_seconds": stage_cpu,
        # With per-stage resets, VmHWM is the last stage's peak: the process peak is the largest.
        "self_peak_rss_bytes": max([_vm_hwm_bytes(), *stage_peaks.values()]),
        # The largest peak RSS of any waited-for child (KiB on Linux). A forked child starts with
        # its parent's RSS counted, so this is at least the parent's RSS at the time of the fork.
        "children_max_rss_bytes": children.ru_maxrss * 1024,
        **outcome,
    }
    result_file.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
