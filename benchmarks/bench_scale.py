"""Data larger than memory (issue 15): the training pipeline and batch inference at 1M, 10M and
50M rows, per task peak RSS, seconds and rows/s, against the same work in one process.

For each ``--rows`` it

1. generates the seeded synthetic table (synthetic_data.py: 20 numeric columns of different
   distributions, 5 categorical, about 5% missing, a binary label; bench_pipeline's table) a chunk
   at a time straight into a dataset folder of Parquet parts, cached under the work folder, so that
   no more than a chunk is ever in memory; its in-memory size is measured on its first rows as
   read back from Parquet and scaled to every row;
2. runs, each in a fresh interpreter whose whole process tree is sampled every 50 ms
   (process_tree.py), interleaved, ``--repeats`` times, the two paths of scale_paths.py:
   ``pipelines`` (the training pipeline, then the inference pipeline scoring the same rows with
   the champion the training run deployed, through kfp.local) and ``in_process`` (the same
   component function bodies called in one process);
3. reports per task its seconds (kfp.local's log), rows/s and peak RSS (the task's process and
   every process it started), each phase's process-tree peak and wall time, and the targets:
   every task <= 4 GiB, at 1M rows the tree's peak <= 2x the dataset in memory, pipeline / single
   process wall time <= 1.25.

Every process gets ``MLSTAGES_MEMORY_MB`` (``--memory-mb``, 4096: the allowance the stages size
their samples from) and one BLAS/OpenMP thread. Run folders are deleted after each run (their size
is recorded, for the disk a larger run needs); the data stays cached.

Usage:
    .venv/bin/python benchmarks/bench_scale.py                      # 1M rows, 3 runs of each path
    .venv/bin/python benchmarks/bench_scale.py --quick              # 100k rows, 1 run (smoke)
    .venv/bin/python benchmarks/bench_scale.py --rows 10000000 --rows 50000000   # 1 run each

Writes benchmarks/results/scale.json and scale.md (one section per size; a run replaces the
sections of the sizes it ran); --quick writes scale-quick.json and scale-quick.md instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from bench_pipeline import code_version
from pipeline_paths import RESULTS_DIR, SAMPLE_INTERVAL_SECONDS
from process_tree import measure
from scale_paths import INFERENCE_PARAMS, MAX_TRAIN_ROWS_ENV, PATH_DESCRIPTIONS, PATHS, scale_training_params
from scale_report import analyze_run, same_outcome, summarize, windows_of
from synthetic_data import dataset_folder, free_bytes, write_chunked

FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
# Runs of each path up to 1M rows; one above, where a run takes an hour or more.
REPEATS_UP_TO_1M = 3
DEFAULT_WORKDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "mlstages-bench-scale"
DEFAULT_MEMORY_MB = 4096
# Disk a run's folder takes per dataset row (ingest's copies, the splits, the prediction shards in
# the object store, models): 678 bytes at 1M rows. A run is refused when the free space is short
# of it and the data (--ignore-disk to try anyway).
RUN_FOLDER_BYTES_PER_ROW = 700.0
# The synthetic table's Parquet: 170 bytes a row.
DATA_BYTES_PER_ROW = 175.0


def run_size(
    rows: int,
    repeats: int,
    workdir: Path,
    *,
    blas_threads: int,
    memory_mb: int,
    max_train_rows: int = 0,
    keep_runs: bool,
    ignore_disk: bool,
    paths: tuple[str, ...] = PATHS,
) -> dict[str, Any]:
    """Every run of ``paths`` (both by default) at ``rows`` rows, summarized."""
    need = rows * RUN_FOLDER_BYTES_PER_ROW
    if not dataset_folder(workdir / "data", rows).is_dir():
        need += rows * DATA_BYTES_PER_ROW
    free = free_bytes(workdir)
    if free < need * 1.2 and not ignore_disk:
        raise SystemExit(
            f"{rows:,} rows need about {need / 1e9:.0f} GB under {workdir} (the data and one run's folder), "
            f"{free / 1e9:.0f} GB are free: give --workdir on a larger disk, or --ignore-disk"
        )
    data_path, dataset = write_chunked(workdir / "data", rows)
    print(
        f"Dataset: {rows:,} rows, {dataset['parquet_bytes'] / 1e6:,.0f} MB Parquet in {dataset['parts']} "
        f"part(s), about {dataset['in_memory_bytes'] / 1e6:,.0f} MB in memory "
        f"({dataset['in_memory_bytes_per_row']:.0f} bytes a row, measured on its first rows)"
        + ("" if dataset["cached"] else f", generated in {dataset['generate_seconds']:.0f} s"),
        flush=True,
    )
    environment = {"MLSTAGES_MEMORY_MB": str(memory_mb), MAX_TRAIN_ROWS_ENV: str(max_train_rows or "")}
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    for repeat in range(repeats):
        # Alternate the order so that neither path always runs on a machine the other just warmed.
        order = paths if repeat % 2 == 0 else tuple(reversed(paths))
        for path in order:
            run_dir = workdir / "runs" / f"{rows}-{path}-{repeat + 1}"
            shutil.rmtree(run_dir, ignore_errors=True)
            result = measure(
                path,
                data_path,
                run_dir,
                blas_threads,
                script="bench_scale.py",
                extra_environment=environment,
                windows_of=windows_of,
            )
            result["analysis"] = analyze_run(result)
            result["run_folder_bytes"] = folder_bytes(run_dir)
            runs[path].append(slim(result))
            load = result["load_average_1min"]["sampled"] or {}
            print(
                f"  {path:<10} run {repeat + 1}/{repeats}: {result['process_seconds']:.1f} s "
                f"(training {result['analysis']['phase_seconds']['training']:.1f} s, inference "
                f"{result['analysis']['phase_seconds']['inference']:.1f} s), tree peak "
                f"{result['tree_peak_rss_bytes'] / 1e6:,.0f} MB, run folder "
                f"{result['run_folder_bytes'] / 1e6:,.0f} MB, load {load.get('min', 0):.1f}-"
                f"{load.get('max', 0):.1f}",
                flush=True,
            )
            if not keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
    reference = runs[paths[-1]][0]["outcome"]
    differences = sorted(
        {d for path in paths for r in runs[path] for d in same_outcome(reference, r["outcome"])}
    )
    if differences:
        print("WARNING: the runs did not all produce the same model: " + "; ".join(differences), flush=True)
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        },
        "versions": {
            name: package_metadata.version(name)
            for name in ("mlstages", "kfp", "scikit-learn", "pandas", "numpy", "pyarrow")
        },
        "code": code_version(),
        "dataset": {k: v for k, v in dataset.items() if k != "cached"},
        "training_parameters": scale_training_params(max_train_rows),
        "inference_parameters": INFERENCE_PARAMS,
        "paths": {path: PATH_DESCRIPTIONS[path] for path in paths},
        "repeats": repeats,
        "sample_interval_seconds": SAMPLE_INTERVAL_SECONDS,
        "blas_threads": blas_threads or "library default",
        "memory_allowance_mb": memory_mb,
        "disk": {
            "workdir": str(workdir),
            "free_bytes_before": free,
            "dataset_parquet_bytes": dataset["parquet_bytes"],
            "largest_run_folder_bytes": max(r["run_folder_bytes"] for p in paths for r in runs[p]),
        },
        "summary": summarize(runs, dataset, memory_mb),
        "same_model": not differences,
        "model_differences": differences,
        "outcome": reference,
        "runs": runs,
    }


def slim(result: dict[str, Any]) -> dict[str, Any]:
    """A run's result without the stages' artifact listings and the log's path (kept: timings,
    rows, outcome, processes, peaks)."""
    kept = {k: v for k, v in result.items() if k not in ("phases", "log_file", "started")}
    kept["phases"] = {p: {"start": v["start"], "end": v["end"]} for p, v in result["phases"].items()}
    return kept


def folder_bytes(folder: Path) -> int:
    """Disk used under ``folder`` (allocated blocks)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def results_name(quick: bool, memory_mb: int, max_train_rows: int = 0) -> str:
    """scale (the default 4 GiB allowance), scale-<N>mib for another allowance, -train<N> when train's
    rows are given, -quick for smoke runs: a size run under other settings does not replace the
    default's."""
    name = "scale" if memory_mb == DEFAULT_MEMORY_MB else f"scale-{memory_mb}mib"
    if max_train_rows:
        name += f"-train{max_train_rows}"
    return f"{name}-quick" if quick else name


def save(report: dict[str, Any], results_dir: Path, quick: bool) -> Path:
    """Put this size's report into the results (replacing an earlier one of the same size)."""
    from scale_markdown import markdown

    name = results_name(
        quick, report["memory_allowance_mb"], report["training_parameters"].get("max_train_rows", 0)
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{name}.json"
    document: dict[str, Any] = {"mode": "quick" if quick else "full", "sizes": {}}
    if json_path.is_file():
        document["sizes"] = json.loads(json_path.read_text(encoding="utf-8")).get("sizes", {})
    document["sizes"][str(report["dataset"]["rows"])] = report
    document["sizes"] = dict(sorted(document["sizes"].items(), key=lambda item: int(item[0])))
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    markdown_path = results_dir / f"{name}.md"
    markdown_path.write_text(markdown(document), encoding="utf-8")
    return markdown_path


def rerender(results_dir: Path, quick: bool, memory_mb: int, max_train_rows: int = 0) -> Path:
    """The results summarized again from their runs (after a change to the summary or the
    Markdown), nothing measured."""
    from scale_markdown import markdown

    name = results_name(quick, memory_mb, max_train_rows)
    json_path = results_dir / f"{name}.json"
    document = json.loads(json_path.read_text(encoding="utf-8"))
    for report in document["sizes"].values():
        report["summary"] = summarize(report["runs"], report["dataset"], report.get("memory_allowance_mb"))
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    markdown_path = results_dir / f"{name}.md"
    markdown_path.write_text(markdown(document), encoding="utf-8")
    return markdown_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, 1 run (smoke)")
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help=f"rows of synthetic data (repeatable; default {FULL_ROWS:,})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"runs of each path (default {REPEATS_UP_TO_1M} up to 1M rows, 1 above; 1 with --quick)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"data cache and runs (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS/OpenMP threads (0: library default)"
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=DEFAULT_MEMORY_MB,
        help=f"MLSTAGES_MEMORY_MB for every task (default {DEFAULT_MEMORY_MB})",
    )
    parser.add_argument(
        "--max-train-rows",
        type=int,
        default=0,
        help="train's max_train_rows (default 0: left to the memory allowance); results go to scale-...-train<N>",
    )
    parser.add_argument("--keep-runs", action="store_true", help="keep each run's folder")
    parser.add_argument(
        "--rerender",
        action="store_true",
        help="measure nothing: summarize the runs kept in the results JSON again and rewrite the Markdown",
    )
    parser.add_argument("--ignore-disk", action="store_true", help="run even when the free space looks short")
    parser.add_argument(
        "--pipelines-only",
        action="store_true",
        help="run only the pipelines (no single-process path, so no wall-time ratio): for sizes "
        "where both paths would not fit the time at hand",
    )
    # Internal: run one path in this interpreter (the benchmark starts itself this way).
    parser.add_argument("--measure", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        from scale_paths import measure_main

        measure_main(args.measure, args.data, args.workdir, args.result_file)
        return 0
    if args.rerender:
        print(f"Results: {rerender(args.results_dir, args.quick, args.memory_mb, args.max_train_rows)}")
        return 0
    sizes = args.rows or [QUICK_ROWS if args.quick else FULL_ROWS]
    if any(rows < 10_000 for rows in sizes):
        parser.error("--rows must be at least 10000")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.memory_mb < 64:
        parser.error("--memory-mb must be at least 64")
    for rows in sizes:
        repeats = args.repeats or (1 if args.quick or rows > FULL_ROWS else REPEATS_UP_TO_1M)
        report = run_size(
            rows,
            repeats,
            args.workdir.resolve(),
            blas_threads=args.blas_threads,
            memory_mb=args.memory_mb,
            max_train_rows=args.max_train_rows,
            keep_runs=args.keep_runs,
            ignore_disk=args.ignore_disk,
            paths=("pipelines",) if args.pipelines_only else PATHS,
        )
        path = save(report, args.results_dir, args.quick)
        print(f"Results: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
