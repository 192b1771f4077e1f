"""The full-data refit on Dask (train/full_refit.py) against the in-task refit on a sample.

The synthetic 25-column table (``synthetic_data``), ``--rows`` training rows in parts of
``--part-rows``, and a test table of ``--test-rows`` drawn with another seed. The feature pipeline
is fitted (preprocess + engineer_features) on a 20,000-row sample, as engineer_features fits on a
sample. train's own steps then run twice, each in a fresh interpreter whose process tree is sampled
(``process_tree.TreeSampler``), with the memory allowance set low (``--memory-mb``) so the task
holds only a sample of the rows:

- local: the lightgbm candidate refit in the task on the rows it holds;
- dask: the same, then refit with the same parameters on every row on a LocalCluster of
  ``--workers`` worker processes (one thread each).

One lightgbm candidate (the search is not what is measured). Reported: wall seconds of the whole
train step (load, search, refit), peak RSS of the task's process and of each worker, and the
test table's log loss, ROC AUC and f1_macro of each model. OMP/BLAS threads are 1.

    .venv/bin/python benchmarks/bench_dask_train.py --rows 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

from pipeline_paths import RESULTS_DIR  # noqa: E402
from process_tree import TreeSampler  # noqa: E402
from synthetic_data import LABEL_COLUMN, SEED, chunks  # noqa: E402

FEATURE_SAMPLE_ROWS = 20_000
SEARCH_SPACE = {"lightgbm": {"n_estimators": [200], "num_leaves": [31], "learning_rate": [0.1]}}


def write_data(work: Path, rows: int, part_rows: int, test_rows: int) -> tuple[Path, Path]:
    from mlstages.components.common.dataset_files import write_batches

    train = work / f"train-{rows}-parts{part_rows}"
    test = work / f"test-{test_rows}"
    if not (train / "_dataset.json").is_file():
        write_batches(chunks(rows, SEED), train, source="bench_dask_train", part_rows=part_rows)
    if not (test / "_dataset.json").is_file():
        write_batches(chunks(test_rows, SEED + 1), test, source="bench_dask_train test", part_rows=part_rows)
    return train, test


def fit_features(train: Path, directory: Path) -> Path:
    """preprocess + engineer_features fitted on a seeded sample, saved as engineer_features saves."""
    if (directory / "features.joblib").is_file():
        return directory
    from mlstages.components.common.artifacts import save_estimator
    from mlstages.components.common.dataset_positions import sample_rows
    from mlstages.components.engineer_features.engineer_features import (
        FeatureConfig,
        engineer_features,
        feature_metadata,
    )
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess

    sample = sample_rows(train, FEATURE_SAMPLE_ROWS, SEED).reset_index(drop=True)
    prepared = preprocess(sample, PreprocessConfig(label_column=LABEL_COLUMN, task="classification"))
    config = FeatureConfig(label_column=LABEL_COLUMN, task="classification")
    result = engineer_features(prepared.train, prepared.preprocessor, config)
    save_estimator(result.feature_pipeline, directory, "features", feature_metadata(result, prepared.train))
    return directory


def run_train(engine: str, workers: int, train: Path, features: Path, out: Path) -> dict[str, Any]:
    """In the measured interpreter: train's steps as the component runs them."""
    import joblib

    from mlstages.components.common.threads import limit_threads

    limit_threads()
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.full_refit import full_data_refit
    from mlstages.components.train.train import train_on_matrix
    from mlstages.components.train.training_rows import load_training_rows

    os.environ["MLSTAGES_DASK_WORKERS"] = str(workers)
    config = TrainConfig(
        label_column=LABEL_COLUMN,
        task="classification",
        model_families=("lightgbm",),
        search="random",
        n_iter=1,
        cv_folds=2,
        search_space=SEARCH_SPACE,
        max_search_rows=50_000,
        engine=engine,
    )
    said: list[str] = []
    started = time.monotonic()
    rows = load_training_rows(str(train), str(features), config)
    held, available = rows.matrix.rows, rows.available
    result = train_on_matrix(rows.matrix, rows.feature_pipeline, config)
    check_rows = rows.matrix.check_rows
    del rows
    in_task = time.monotonic() - started
    result, _ = full_data_refit(result, str(train), config, check_rows, available, say=said.append)
    seconds = time.monotonic() - started
    joblib.dump(result.model, out / "model.joblib")
    return {
        "task_pid": os.getpid(),
        "held_rows": held,
        "available_rows": available,
        "train_rows": result.train_rows,
        "seconds": seconds,
        "in_task_seconds": in_task,
        "refit": result.refit,
        "log": said,
    }


def measure(
    engine: str, workers: int, train: Path, features: Path, work: Path, memory_mb: int
) -> dict[str, Any]:
    out = work / "runs" / engine
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        __file__,
        "--measure",
        engine,
        str(workers),
        str(train),
        str(features),
        str(out),
    ]
    env = {**os.environ, "MLSTAGES_MEMORY_MB": str(memory_mb), "MLSTAGES_CPUS": "1"}
    with open(out / "output.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(process.pid, interval=0.1)
        sampler.start()
        code = process.wait()
        sampler.stop()
    if code != 0:
        raise RuntimeError(f"train on {engine} failed: {(out / 'output.log').read_text()[-3000:]}")
    result = json.loads((out / "result.json").read_text())
    task = result["task_pid"]
    result["task_peak_rss_mib"] = sampler.processes.get(task, {}).get("peak_rss_bytes", 0) / 2**20
    # The workers are the task's nannies' children: every process of the tree but the task.
    result["worker_peak_rss_mib"] = (
        sorted(
            (p["peak_rss_bytes"] / 2**20 for pid, p in sampler.processes.items() if pid != task),
            reverse=True,
        )[:workers]
        if engine != "local"
        else []
    )
    result["load_average"] = max(sampler.loads) if sampler.loads else None
    result["metrics"] = test_metrics(out / "model.joblib", work)
    return result


def test_metrics(model_file: Path, work: Path) -> dict[str, float]:
    import joblib
    import numpy as np
    from sklearn.metrics import f1_score, log_loss, roc_auc_score

    from mlstages.components.common.dataset_files import read_dataset

    test = read_dataset(next(work.glob("test-*")))
    model = joblib.load(model_file)
    probabilities = model.predict_proba(test.drop(columns=[LABEL_COLUMN]))
    labels = np.asarray(model.classes_)[probabilities.argmax(axis=1)]
    truth = test[LABEL_COLUMN].to_numpy()
    positive = (truth == model.classes_[1]).astype(int)
    return {
        "log_loss": float(log_loss(truth, probabilities, labels=model.classes_)),
        "roc_auc": float(roc_auc_score(positive, probabilities[:, 1])),
        "f1_macro": float(f1_score(truth, labels, average="macro")),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Full-data refit on Dask against the in-task refit on a sample",
        "",
        f"`{report['command']}` at {report['when']} on {report['machine']} ({report['cpus']} CPUs, shared).",
        "",
        f"{report['rows']:,} training rows in parts of {report['part_rows']:,}; {report['test_rows']:,} test rows "
        f"(another seed); MLSTAGES_MEMORY_MB={report['memory_mb']}, so the task holds a sample; one lightgbm "
        f"candidate {json.dumps(SEARCH_SPACE['lightgbm'], sort_keys=True)}; 1 thread per process. Wall: "
        "train's steps (load, search, refit; for dask also starting the LocalCluster and the cluster refit).",
        "",
        "| run | rows refit | wall s | task peak MiB | workers' peak MiB | test log loss | test ROC AUC | "
        "test f1_macro | load |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, run in report["runs"].items():
        workers = ", ".join(f"{w:.0f}" for w in run["worker_peak_rss_mib"]) or "-"
        m = run["metrics"]
        lines.append(
            f"| {name} | {run['train_rows']:,} of {run['available_rows']:,} | {run['seconds']:.1f} | "
            f"{run['task_peak_rss_mib']:.0f} | {workers} | {m['log_loss']:.4f} | {m['roc_auc']:.4f} | "
            f"{m['f1_macro']:.4f} | {run['load_average'] or 0:.1f} |"
        )
    dask = report["runs"].get("dask", {})
    if dask.get("log"):
        lines += ["", "The dask run's log:", "", *[f"    {line}" for line in dask["log"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--measure":
        engine, workers, train, features, out = argv[1:6]
        result = run_train(engine, int(workers), Path(train), Path(features), Path(out))
        (Path(out) / "result.json").write_text(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--part-rows", type=int, default=250_000)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "mlstages-bench-dask-train"
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    train, _ = write_data(args.work, args.rows, args.part_rows, args.test_rows)
    features = fit_features(train, args.work / "features")
    print(f"data and features ready in {time.monotonic() - started:.0f} s", flush=True)
    runs = {}
    for engine in ("local", "dask"):
        runs[engine] = measure(engine, args.workers, train, features, args.work, args.memory_mb)
        print(engine, json.dumps({k: v for k, v in runs[engine].items() if k != "log"}), flush=True)
    report = {
        "command": "benchmarks/bench_dask_train.py " + " ".join(argv),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "part_rows": args.part_rows,
        "test_rows": args.test_rows,
        "memory_mb": args.memory_mb,
        "workers": args.workers,
        "runs": runs,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "dask_train.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    (RESULTS_DIR / "dask_train.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
