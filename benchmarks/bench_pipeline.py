"""The training pipeline through kfp.local beside the same logic functions in one Python process.

Issue 2's benchmark: on a seeded synthetic dataset (default 1M rows: 20 numeric columns of
different distributions and scales, 5 categorical columns of 4 to 50 levels, 5% missing values
spread over the feature columns, a binary label that depends on some of them), it runs

- ``pipeline``: ``mlstages.tooling.local.run_pipeline("training", ...)``, the path ``make run``
  takes: the embedded object store (fake-gcs-server) starts, and kfp.local's SubprocessRunner runs
  every component in its own Python process, which reads its inputs from the run folder and writes
  its outputs there;
- ``single``: the same logic functions one after another in ONE Python process (ingest,
  validate_data, preprocess, engineer_features, train with its export, evaluate, and the
  validate_model gate that the training pipeline now runs too), configured exactly as the
  components configure them, writing the same outputs (the Parquet datasets, the transformer,
  feature pipeline and model artifacts, the reports, the model published to the embedded store's
  registry) but handing DataFrames and fitted objects to the next stage in memory instead of
  reading them back from disk. When a component's body changes, ``run_single_path`` must follow.

Each path runs in a fresh interpreter (its wall time counts from before its heavy imports to the
end of its work, emulator stop included), repeated ``--repeats`` times, interleaved, and the
median is reported; CPU time (user + system of the whole process tree) is reported beside it,
as it is much less disturbed by other work on the machine. While a path runs, this process
samples the resident memory (RSS from /proc/<pid>/statm) of the path's whole process tree every
50 ms: the tree's summed RSS is the peak memory compared with the dataset's in-memory size
(``DataFrame.memory_usage(deep=True)`` of the data as read from Parquet). Targets (issue 2): pipeline wall time within 1.25x of the single
process; peak memory under 4x the dataset's in-memory size.

Both paths must produce the same model (the same chosen candidate, CV score, test metrics,
blessing decision and files in the model directory): the benchmark checks that and says so in
its results, so the comparison is between equal amounts of work.

Usage:
    .venv/bin/python benchmarks/bench_pipeline.py              # 1M rows, 3 repeats
    .venv/bin/python benchmarks/bench_pipeline.py --quick      # 100k rows, 1 repeat
    .venv/bin/python benchmarks/bench_pipeline.py --rows 300000 --repeats 2

Writes benchmarks/results/pipeline.json and benchmarks/results/pipeline.md.
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
import time
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from pipeline_overhead import profile_overhead
from pipeline_paths import (
    FULL_REPEATS,
    FULL_ROWS,
    MAX_PEAK_OVER_DATASET,
    MAX_PIPELINE_OVER_SINGLE,
    PATH_DESCRIPTIONS,
    PATHS,
    PIPELINE_PARAMS,
    QUICK_ROWS,
    RESULTS_DIR,
    SAMPLE_INTERVAL_SECONDS,
    STAGES,
    measure_main,
    write_dataset_file,
)
from process_tree import measure


def code_version() -> dict[str, Any]:
    """The commit measured and the files under components/ and pipelines/ that differ from it
    (read-only git commands; no index refresh is written)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=root, capture_output=True, text=True, check=False
        )
        return result.stdout.rstrip("\n") if result.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "components", "pipelines")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted": sorted(line[3:] for line in changed.splitlines() if line.endswith(".py")),
    }


def _same_outcome(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Differences between two paths' outcomes (the chosen model and its test metrics)."""
    problems = []
    if first["best_params"] != second["best_params"]:
        problems.append(f"best_params {first['best_params']} != {second['best_params']}")
    # The same files in the model directory: a component that starts writing something new (and
    # run_single_path not yet mirroring it) shows up here.
    if first.get("model_files") != second.get("model_files"):
        problems.append(f"model directory files {first.get('model_files')} != {second.get('model_files')}")
    if first["blessed"] != second["blessed"]:
        problems.append(f"blessed {first['blessed']} != {second['blessed']}")
    if abs(first["cv_score"] - second["cv_score"]) > 1e-9:
        problems.append(f"cv_score {first['cv_score']} != {second['cv_score']}")
    for name, value in first["test_metrics"].items():
        other = second["test_metrics"].get(name)
        if (value is None) != (other is None) or (value is not None and abs(value - other) > 1e-9):
            problems.append(f"test metric {name}: {value} != {other}")
    return problems


def run(rows: int, repeats: int, workdir: Path, profile: bool, blas_threads: int = 1) -> dict[str, Any]:
    data_path = workdir / "data" / "synthetic.parquet"
    started = time.perf_counter()
    dataset = write_dataset_file(rows, data_path)
    dataset["generate_seconds"] = time.perf_counter() - started
    code = code_version()
    print(
        f"Dataset: {rows:,} rows, {dataset['parquet_bytes'] / 1e6:.0f} MB Parquet, "
        f"{dataset['in_memory_bytes'] / 1e6:.0f} MB in memory, "
        f"{dataset['missing_share_of_feature_values']:.1%} of feature values missing "
        f"(generated in {dataset['generate_seconds']:.1f} s)",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    last_pipeline_dir = None
    for repeat in range(repeats):
        # Alternate the order so that neither path always runs on a machine the other just warmed.
        order = PATHS if repeat % 2 == 0 else tuple(reversed(PATHS))
        for path in order:
            run_dir = workdir / f"{path}-{repeat + 1}"
            result = measure(path, data_path, run_dir, blas_threads)
            runs[path].append(result)
            print(
                f"  {path:<8} run {repeat + 1}/{repeats}: {result['seconds']:.1f} s, "
                f"tree peak RSS {result['tree_peak_rss_bytes'] / 1e6:.0f} MB "
                f"({result['tree_peak_rss_bytes'] / dataset['in_memory_bytes']:.2f}x the dataset)",
                flush=True,
            )
            if path == "pipeline":
                if last_pipeline_dir is not None:
                    shutil.rmtree(last_pipeline_dir, ignore_errors=True)
                last_pipeline_dir = run_dir
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
    # Equal work: every run of both paths must choose the same model with the same test metrics.
    reference = runs["single"][0]["outcome"]
    differences = sorted(
        {d for path in PATHS for r in runs[path] for d in _same_outcome(reference, r["outcome"])}
    )
    if differences:
        print("WARNING: the runs did not all produce the same model: " + "; ".join(differences), flush=True)

    summary = {path: summarize(runs[path], dataset["in_memory_bytes"]) for path in PATHS}
    wall_ratio = summary["pipeline"]["median_seconds"] / summary["single"]["median_seconds"]
    targets = {
        "pipeline_over_single_wall_time": {
            "value": wall_ratio,
            "target": f"<= {MAX_PIPELINE_OVER_SINGLE}",
            "met": wall_ratio <= MAX_PIPELINE_OVER_SINGLE,
        },
    }
    for path in PATHS:
        ratio = summary[path]["median_tree_peak_over_dataset"]
        targets[f"{path}_peak_memory_over_dataset"] = {
            "value": ratio,
            "target": f"< {MAX_PEAK_OVER_DATASET}",
            "met": ratio < MAX_PEAK_OVER_DATASET,
        }
    overhead = None
    if profile and last_pipeline_dir is not None:
        print("Profiling the pipeline's overhead (task start-up, reads between tasks) ...", flush=True)
        overhead = profile_overhead(last_pipeline_dir, blas_threads)
        overhead["per_stage"] = per_stage_comparison(runs)
    if last_pipeline_dir is not None:
        shutil.rmtree(last_pipeline_dir, ignore_errors=True)
    for path in PATHS:
        for result in runs[path]:
            result.pop("log_file", None)
            result.pop("run_dir", None)
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
            for name in ("mlstages", "kfp", "scikit-learn", "pandas", "numpy", "pyarrow", "joblib")
        },
        "code": code,
        "dataset": dataset,
        "parameters": PIPELINE_PARAMS,
        "paths": PATH_DESCRIPTIONS,
        "repeats": repeats,
        "statistic": "median",
        "sample_interval_seconds": SAMPLE_INTERVAL_SECONDS,
        "blas_threads": blas_threads or "library default",
        "summary": summary,
        "pipeline_over_single_wall_time": wall_ratio,
        "pipeline_over_single_cpu_time": summary["pipeline"]["median_cpu_seconds"]
        / summary["single"]["median_cpu_seconds"],
        "targets": targets,
        "same_model": not differences,
        "model_differences": differences,
        "outcome": runs["single"][0]["outcome"],
        "overhead": overhead,
        "runs": runs,
    }


def summarize(runs: list[dict[str, Any]], dataset_bytes: int) -> dict[str, Any]:
    peak = statistics.median(r["tree_peak_rss_bytes"] for r in runs)
    largest_process = statistics.median(max(p["peak_rss_bytes"] for p in r["processes"]) for r in runs)
    return {
        "seconds": [r["seconds"] for r in runs],
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "median_process_seconds": statistics.median(r["process_seconds"] for r in runs),
        "cpu_seconds": [r["cpu_seconds"] for r in runs],
        "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "load_average_1min": [r["load_average_1min"] for r in runs],
        "median_tree_peak_rss_bytes": int(peak),
        "median_tree_peak_over_dataset": peak / dataset_bytes,
        "median_largest_process_peak_rss_bytes": int(largest_process),
        "median_largest_process_peak_over_dataset": largest_process / dataset_bytes,
        "median_self_peak_rss_bytes": int(statistics.median(r["self_peak_rss_bytes"] for r in runs)),
        "median_children_max_rss_bytes": int(statistics.median(r["children_max_rss_bytes"] for r in runs)),
    }


_TASK_OF_STAGE = {stage: stage.replace("_", "-") for stage in STAGES}


def per_stage_comparison(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Median seconds and peak RSS per stage: the single process's stage (its own clock and
    VmHWM) beside the pipeline's task (kfp.local's log, and the sampled RSS of the task process)."""

    def median_or_none(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def task_cpu(run: dict[str, Any], stage: str) -> float | None:
        values = [p["cpu_seconds"] for p in run["processes"] if p["label"].startswith(f"task:{stage} ")]
        values = [v for v in values if v is not None]
        return sum(values) if values else None

    rows = []
    for stage in STAGES:
        task_peaks = [
            max(
                (p["peak_rss_bytes"] for p in r["processes"] if p["label"].startswith(f"task:{stage} ")),
                default=None,
            )
            for r in runs["pipeline"]
        ]
        rows.append(
            {
                "stage": stage,
                "single_seconds": median_or_none([r["stage_seconds"].get(stage) for r in runs["single"]]),
                "pipeline_task_seconds": median_or_none(
                    [r["task_seconds"].get(_TASK_OF_STAGE[stage]) for r in runs["pipeline"]]
                ),
                "single_peak_rss_bytes": median_or_none(
                    [r["stage_peak_rss_bytes"].get(stage) for r in runs["single"]]
                ),
                "pipeline_task_peak_rss_bytes": median_or_none(task_peaks),
                "single_cpu_seconds": median_or_none(
                    [r["stage_cpu_seconds"].get(stage) for r in runs["single"]]
                ),
                "pipeline_task_cpu_seconds": median_or_none([task_cpu(r, stage) for r in runs["pipeline"]]),
            }
        )
    outside = {
        "single": median_or_none(
            [sum(v for k, v in r["stage_seconds"].items() if k not in STAGES) for r in runs["single"]]
        ),
        "pipeline": median_or_none(
            [r["seconds"] - sum(r["task_seconds"].values()) for r in runs["pipeline"]]
        ),
    }
    rows.append(
        {
            "stage": "outside the stages",
            "single_seconds": outside["single"],
            "pipeline_task_seconds": outside["pipeline"],
            "single_peak_rss_bytes": None,
            "pipeline_task_peak_rss_bytes": None,
            "single_cpu_seconds": None,
            "pipeline_task_cpu_seconds": None,
        }
    )
    return rows


def markdown(report: dict[str, Any]) -> str:
    dataset = report["dataset"]
    summary = report["summary"]
    mb = 1e6
    data_mb = dataset["in_memory_bytes"] / mb
    params = report["parameters"]
    lines = [
        "# Training pipeline (kfp.local) versus the same logic in one process",
        "",
        *(
            [
                "**Quick smoke run** (`--quick`): check that the benchmark works; do not quote these figures.",
                "",
            ]
            if report.get("mode") == "quick"
            else []
        ),
        f"Generated {report['generated_at']} on {report['machine']['cpus']} CPUs, "
        f"{report['machine']['memory_bytes'] / 2**30:.0f} GiB, Python {report['machine']['python']}; "
        + ", ".join(f"{name} {version}" for name, version in report["versions"].items())
        + f". Median of {report['repeats']} run(s) of each path, interleaved, each in a fresh interpreter. "
        "These machines are shared and noisy: compare figures from one run of the benchmark. "
        f"BLAS/OpenMP threads per process: {report['blas_threads']} (both paths; see benchmarks/README.md). "
        f"Code: commit {report['code']['commit']}"
        + (
            f" with uncommitted changes to {', '.join(report['code']['uncommitted'])}."
            if report["code"]["uncommitted"]
            else "."
        ),
        "",
        f"Dataset: {dataset['rows']:,} seeded synthetic rows, {dataset['numeric_columns']} numeric and "
        f"{dataset['categorical_columns']} categorical columns "
        f"({', '.join(str(n) for n in dataset['categorical_levels'].values())} levels), "
        f"{dataset['missing_share_of_feature_values']:.1%} of feature values missing, binary label "
        f"({dataset['positive_label_share']:.0%} positive). Parquet {dataset['parquet_bytes'] / mb:.0f} MB; "
        f"in memory (`memory_usage(deep=True)` as read from Parquet) **{data_mb:.0f} MB**.",
        "",
        f"Parameters: {', '.join(params['model_families'])} with "
        f"{json.dumps(params['search_space'][params['model_families'][0]])} ({params['search']} search, "
        f"{params['cv_folds']}-fold CV on a {params['max_search_rows']:,}-row sample, refit on every "
        f"training row); selection {params['selection']}; {len(params['derived_features'])} derived "
        f"features; outliers {params['outliers']}, scaling {params['scaling']}, encoding "
        f"{params['encoding']}; slices by {', '.join(params['slice_columns'])}. "
        + ("Every run of both paths chose the same " if report["same_model"] else "**The runs differ**: ")
        + f"model (C={report['outcome']['best_params'].get('C')}, CV f1_macro "
        f"{report['outcome']['cv_score']:.4f}, test accuracy "
        f"{report['outcome']['test_metrics']['accuracy']:.4f}, ROC-AUC "
        f"{report['outcome']['test_metrics']['roc_auc']:.4f}).",
        "",
        "Paths:",
        "",
    ]
    lines += [f"- `{name}`: {description}" for name, description in report["paths"].items()]
    if report["model_differences"]:
        lines += ["", "Differences between the runs' models: " + "; ".join(report["model_differences"])]
    lines += [
        "",
        "| path | wall seconds (each run) | median s | peak RSS of the process tree (MB) | "
        "/ dataset | largest single process (MB) | / dataset | CPU seconds, user + system (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path in PATHS:
        item = summary[path]
        lines.append(
            f"| `{path}` | {', '.join(f'{s:.1f}' for s in item['seconds'])} | {item['median_seconds']:.1f} | "
            f"{item['median_tree_peak_rss_bytes'] / mb:.0f} | {item['median_tree_peak_over_dataset']:.2f} | "
            f"{item['median_largest_process_peak_rss_bytes'] / mb:.0f} | "
            f"{item['median_largest_process_peak_over_dataset']:.2f} | {item['median_cpu_seconds']:.1f} |"
        )
    loads = [
        f"{load['before']:.1f}-{load['after']:.1f}"
        for path in PATHS
        for load in summary[path]["load_average_1min"]
    ]
    lines += [
        "",
        f"Wall time counts from the path's interpreter start, before its heavy imports. CPU time is that "
        f"of the whole process tree (RUSAGE_CHILDREN); pipeline / single CPU time: "
        f"**{report['pipeline_over_single_cpu_time']:.2f}**. The machine's 1-minute load average around "
        f"the runs (before-after): {', '.join(loads)} on {report['machine']['cpus']} CPUs: other work "
        "shared the cores, so wall times carry that noise; CPU times much less.",
    ]
    lines += ["", "Targets (issue 2):", ""]
    labels = {
        "pipeline_over_single_wall_time": "pipeline / single-process wall time",
        "pipeline_peak_memory_over_dataset": "pipeline peak memory (process tree) / dataset in memory",
        "single_peak_memory_over_dataset": "single-process peak memory (process tree) / dataset in memory",
    }
    for key, target in report["targets"].items():
        lines.append(
            f"- {labels[key]}: **{target['value']:.2f}** (target {target['target']}): "
            f"**{'PASS' if target['met'] else 'MISS'}**"
        )
    pipeline = summary["pipeline"]
    lines += [
        "",
        "Memory is sampled every "
        f"{int(report['sample_interval_seconds'] * 1000)} ms as the summed RSS of the path's process and "
        "all its descendants (the fake-gcs-server and, for the pipeline, the kfp.local driver and the "
        "running task); pages shared between processes count once per process. The largest single "
        "process is the highest RSS any one process of the tree reached. For the pipeline, "
        "`RUSAGE_CHILDREN` of the driver reports "
        f"{pipeline['median_children_max_rss_bytes'] / mb:.0f} MB as the largest child peak (Linux "
        "counts a child's RSS inherited at fork, so that figure is at least the driver's own RSS).",
    ]
    overhead = report.get("overhead")
    if overhead:
        lines += [
            "",
            "## Where the pipeline's time goes",
            "",
            "Medians over the runs, per stage.",
            "",
            "| stage | single process wall (s) | pipeline task wall (s) | difference (s) | single process "
            "CPU (s) | pipeline task CPU (s) | single process peak RSS in the stage (MB) | pipeline task "
            "peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in overhead["per_stage"]:
            single, task = row["single_seconds"], row["pipeline_task_seconds"]
            difference = f"{task - single:+.1f}" if single is not None and task is not None else "n/a"
            lines.append(
                f"| {row['stage']} | {_fmt(single)} | {_fmt(task)} | {difference} | "
                f"{_fmt(row['single_cpu_seconds'])} | {_fmt(row['pipeline_task_cpu_seconds'])} | "
                f"{_fmt(row['single_peak_rss_bytes'], mb, 0)} | {_fmt(row['pipeline_task_peak_rss_bytes'], mb, 0)} |"
            )
        lines += [
            "",
            "A pipeline task's wall time is kfp.local's, from 'Executing task' to 'finished' in its log; "
            "its CPU time is that of the task's processes, sampled (up to 50 ms before exit missed). "
            "Outside the stages: for the single process, its imports and the object store's start and "
            "stop; for the pipeline, everything between its tasks: the driver's imports (kfp, the "
            "pipeline), the object store, kfp.local's compilation and dispatch, reading the run back.",
            "",
            "What a pipeline task does before its stage's logic runs (a cold process, measured after the "
            "runs on the last pipeline run's artifacts), which the single process does not do per stage:",
            "",
            "| task | interpreter start (s) | imports: kfp executor, component, logic (s) | "
            "reading its inputs back (s) | total (s) |",
            "|---|---:|---:|---:|---:|",
        ]
        for stage, item in overhead["task_preamble_seconds"].items():
            lines.append(
                f"| {stage} | {item['interpreter_seconds']:.2f} | {item['import_seconds']:.2f} | "
                f"{item['read_seconds']:.2f} | {item['total_seconds']:.2f} |"
            )
        lines += [
            f"| all tasks | | | | **{overhead['task_preamble_total_seconds']:.1f}** |",
            "",
            "Reading inputs includes the imports that unpickling a fitted estimator triggers "
            "(scikit-learn modules), which the single process pays once.",
        ]
    lines.append("")
    return "\n".join(lines)


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value / scale:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, 1 repeat")
    parser.add_argument(
        "--rows", type=int, default=None, help=f"rows of synthetic data (default {FULL_ROWS:,})"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help=f"runs per path (default {FULL_REPEATS}; 1 with --quick)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-profile", action="store_true", help="skip the overhead breakdown")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="cap BLAS/OpenMP threads in both paths (default 1; 0 leaves the libraries' defaults)",
    )
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    # Internal: run one path in this interpreter (the benchmark starts itself this way).
    parser.add_argument("--measure", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        measure_main(args.measure, args.data, args.workdir, args.result_file)
        return 0
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    repeats = args.repeats or (1 if args.quick else FULL_REPEATS)
    if rows < 1_000:
        parser.error("--rows must be at least 1000")
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.blas_threads < 0:
        parser.error("--blas-threads must be 0 (library default) or more")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlstages-bench-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(rows, repeats, workdir, profile=not args.no_profile, blas_threads=args.blas_threads)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report["mode"] = "quick" if args.quick else "full"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "pipeline.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    (args.results_dir / "pipeline.md").write_text(text)
    print(text)
    missed = [name for name, target in report["targets"].items() if not target["met"]]
    return 1 if missed and args.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
