"""Batch inference throughput and memory beside the same model's predict in one process (issue 14).

The model is a penguins species classifier trained the suite's own way (preprocess →
engineer_features with a derived ratio → train, logistic regression; one Pipeline on raw rows). The
data are the penguins resampled with replacement to N rows, with seeded noise on the measurements,
written as ingest writes a dataset (Parquet with pandas metadata, row groups of 1M rows).

Two paths, each in a fresh interpreter so that its peak RSS (VmHWM) is its own; imports and the
model load happen before the clock starts:

- ``in_process``: read the whole dataset (read_dataset), then predict and predict_proba over every
  row at once (batch_predict's ``predict_frame``: one pass through the Pipeline's transforms for
  both). The same outputs as batch inference, nothing written.
- ``batch``: the suite's ``batch_predict``: stream ``batch_rows`` rows at a time, predict, and write
  each batch as a prediction-log shard to a local folder.

Also reported, not a target: ``predict_only`` (read, then ``model.predict`` alone).

Both paths get one BLAS/OpenMP thread (MLSTAGES_CPUS=1, as a one-CPU pod); batch_predict's writer
thread encodes and writes the previous shard meanwhile. Each measurement is repeated (default 3,
interleaved) and the median reported.

Targets: batch rows/s >= 0.8 x in_process rows/s at the largest size; batch memory bounded: its
peak RSS above the baseline (after imports and the model load) grows by less than 1.5x from the
smallest to the largest size among those of at least STEADY_BATCHES batches (a run of two batches
never has a shard being written while the next batch is predicted, so it says nothing about the
steady state). The default sizes hold one such size: the memory target needs --full (1M → 10M).

Usage:
    .venv/bin/python benchmarks/bench_batch_inference.py           # 100k and 1M rows
    .venv/bin/python benchmarks/bench_batch_inference.py --full    # 100k, 1M and 10M rows
    .venv/bin/python benchmarks/bench_batch_inference.py --quick   # 100k rows, 1 run

Writes benchmarks/results/batch_inference.json and benchmarks/results/batch_inference.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZES = {"100k": 100_000, "1M": 1_000_000}
FULL_SIZES = {**SIZES, "10M": 10_000_000}
CHUNK_ROWS = 1_000_000
SEED = 20261204
MIN_THROUGHPUT_RATIO = 0.8
MAX_MEMORY_GROWTH = 1.5
STEADY_BATCHES = 4
MEASUREMENTS = ("in_process", "batch", "predict_only")

# Run in a fresh interpreter per measurement. Prints one JSON line.
_MEASURE = r"""
import json, sys, time

mode, data, model_dir, out, batch_rows = sys.argv[1:6]

def rss(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0

from mlstages.components.common.threads import limit_threads
limit_threads()
from mlstages.components.batch_predict.batch_predict import (
    BatchPredictConfig, batch_predict, open_dataset, predict_frame)
from mlstages.components.common.dataset_files import read_dataset
from mlstages.components.serving.model_dir import load_model_dir

model, card = load_model_dir(model_dir)
baseline = rss("VmRSS:")
started = time.perf_counter()
if mode == "batch":
    result = batch_predict(
        open_dataset(data), model, card, BatchPredictConfig(batch_rows=int(batch_rows)),
        output_uri=out, model_name="penguins", model_version="bench", blessing="forced")
    rows = result.rows
elif mode == "in_process":
    frame = read_dataset(data)
    predictions, probabilities = predict_frame(model, frame[card.input_names], True)
    rows = len(predictions)
else:
    frame = read_dataset(data)
    rows = len(model.predict(frame[card.input_names]))
seconds = time.perf_counter() - started
print(json.dumps({"mode": mode, "rows": rows, "seconds": seconds, "peak_rss": rss("VmHWM:"),
                  "baseline_rss": baseline}))
"""


def train_model(directory: Path) -> Path:
    """The penguins species classifier, exported as train exports it."""
    from palmerpenguins import load_penguins
    from threadpoolctl import threadpool_limits

    from mlstages.components.common.datasets import column_types
    from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.export import export_model
    from mlstages.components.train.train import train

    penguins = load_penguins().dropna(subset=["species"])
    with threadpool_limits(limits=1):
        prepared = preprocess(
            penguins, PreprocessConfig(label_column="species", task="classification", seed=0)
        )
        ratio = {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]}
        features = engineer_features(
            prepared.train,
            prepared.preprocessor,
            FeatureConfig(label_column="species", task="classification", derived=(ratio,)),
        )
        result = train(
            prepared.train,
            features.feature_pipeline,
            TrainConfig(
                label_column="species",
                task="classification",
                model_families=("logistic_regression",),
                cv_folds=2,
                search_space={"logistic_regression": {"C": [1.0]}},
            ),
        )
    export_model(result, directory, column_types(prepared.train[result.input_columns]))
    return directory


def make_dataset(path: Path, rows: int) -> None:
    """The penguins resampled to ``rows`` rows with noise, written in row groups of 1M rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from palmerpenguins import load_penguins

    penguins = load_penguins()
    rng = np.random.default_rng(SEED)
    writer = None
    try:
        for start in range(0, rows, CHUNK_ROWS):
            size = min(CHUNK_ROWS, rows - start)
            chunk = penguins.iloc[rng.integers(0, len(penguins), size)].reset_index(drop=True)
            for column in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
                chunk[column] = chunk[column] + rng.normal(0.0, 0.02 * penguins[column].std(), size)
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()


def measure(mode: str, data: Path, model_dir: Path, scratch: Path, batch_rows: int) -> dict:
    out = scratch / "shards"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "MLSTAGES_CPUS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, mode, str(data), str(model_dir), str(out), str(batch_rows)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    seconds = statistics.median(r["seconds"] for r in runs)
    rows = runs[0]["rows"]
    peak = statistics.median(r["peak_rss"] for r in runs)
    baseline = statistics.median(r["baseline_rss"] for r in runs)
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mb": round(peak / 2**20),
        "baseline_rss_mb": round(baseline / 2**20),
        "above_baseline_mb": round((peak - baseline) / 2**20),
        "runs": runs,
    }


def run(sizes: dict[str, int], repeats: int, batch_rows: int, workdir: Path) -> dict:
    model_dir = train_model(workdir / "model")
    results: dict[str, dict] = {}
    for label, rows in sizes.items():
        data = workdir / f"rows-{label}.parquet"
        print(f"{label}: writing {rows:,} rows ...", flush=True)
        make_dataset(data, rows)
        runs: dict[str, list[dict]] = {m: [] for m in MEASUREMENTS}
        for attempt in range(repeats):
            for mode in MEASUREMENTS:
                runs[mode].append(measure(mode, data, model_dir, workdir, batch_rows))
                print(f"  {mode} run {attempt + 1}: {runs[mode][-1]['seconds']:.2f} s", flush=True)
        summary = {mode: summarize(r) for mode, r in runs.items()}
        summary["file_mb"] = round(data.stat().st_size / 2**20)
        summary["throughput_ratio"] = round(
            summary["batch"]["rows_per_second"] / summary["in_process"]["rows_per_second"], 3
        )
        summary["throughput_ratio_vs_predict_only"] = round(
            summary["batch"]["rows_per_second"] / summary["predict_only"]["rows_per_second"], 3
        )
        results[label] = summary
        data.unlink()
    steady = [label for label in results if sizes[label] >= STEADY_BATCHES * batch_rows]
    memory: dict = {"target": MAX_MEMORY_GROWTH, "sizes": steady}
    if len(steady) >= 2:
        first, last = steady[0], steady[-1]
        growth = results[last]["batch"]["above_baseline_mb"] / max(
            results[first]["batch"]["above_baseline_mb"], 1
        )
        memory.update(
            {"value": round(growth, 2), "met": growth < MAX_MEMORY_GROWTH, "from": first, "to": last}
        )
    else:
        memory.update({"value": None, "met": None})
    ratio = results[list(results)[-1]]["throughput_ratio"]
    return {
        "benchmark": "batch_inference",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "repeats": repeats,
        "batch_rows": batch_rows,
        "sizes": results,
        "targets": {
            "throughput_ratio": {
                "target": MIN_THROUGHPUT_RATIO,
                "value": ratio,
                "met": ratio >= MIN_THROUGHPUT_RATIO,
            },
            "batch_memory_growth": memory,
        },
    }


def markdown(report: dict) -> str:
    targets = report["targets"]
    lines = [
        "# Batch inference: streamed batch_predict versus predict in one process",
        "",
        f"Generated {report['generated_at']} on {report['machine']['cpus']} CPUs (shared; load average "
        f"{report['machine']['load_average_at_start'][0]} at start), Python {report['machine']['python']}. "
        f"Median of {report['repeats']} runs, each in a fresh interpreter with one BLAS/OpenMP thread; "
        f"peak RSS is that process's VmHWM, the baseline its RSS after imports and the model load. "
        f"batch_rows = {report['batch_rows']:,}.",
        "",
        "- `in_process`: read the whole dataset, then predict + predict_proba over all rows at once "
        "(the same outputs, nothing written)",
        "- `batch`: `batch_predict`, streamed, each batch written as a prediction-log shard (local folder)",
        "- `predict_only`: read, then `model.predict` alone (for reference)",
        "",
    ]
    for label, size in report["sizes"].items():
        lines += [
            f"## {label} rows ({size['batch']['rows']:,})",
            "",
            f"Parquet file {size['file_mb']} MB.",
            "",
            "| path | seconds | rows/s | peak RSS (MB) | baseline RSS (MB) | above baseline (MB) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for mode in MEASUREMENTS:
            m = size[mode]
            lines.append(
                f"| `{mode}` | {m['seconds']:.2f} | {m['rows_per_second']:,} | {m['peak_rss_mb']} | "
                f"{m['baseline_rss_mb']} | {m['above_baseline_mb']} |"
            )
        lines += [
            "",
            f"- batch / in_process throughput: **{size['throughput_ratio']:.2f}**; batch / predict_only: "
            f"{size['throughput_ratio_vs_predict_only']:.2f}",
            "",
        ]
    t, m = targets["throughput_ratio"], targets["batch_memory_growth"]
    lines += [
        "## Targets",
        "",
        f"- throughput at the largest size: {t['value']:.2f} x in-process (target >= {t['target']}: "
        f"{'met' if t['met'] else 'MISS'})",
        (
            f"- batch memory above baseline, {m['from']} → {m['to']}: x{m['value']:.2f} (target < "
            f"{m['target']}: {'met' if m['met'] else 'MISS'})"
            if m["met"] is not None
            else f"- batch memory: not judged (needs two sizes of at least {STEADY_BATCHES} batches: --full)"
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="add 10M rows")
    size.add_argument("--quick", action="store_true", help="100k rows, one run (a smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    args = parser.parse_args(argv)
    sizes = FULL_SIZES if args.full else ({"100k": 100_000} if args.quick else SIZES)
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch:
        report = run(sizes, repeats, args.batch_rows, Path(scratch))
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "batch_inference.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS_DIR / "batch_inference.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
