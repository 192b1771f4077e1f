"""bench_scale's results as Markdown: an overview of the sizes, then one section per size."""

from __future__ import annotations

import json
from typing import Any

from scale_paths import PATHS, PHASES, STAGES
from scale_report import MIB, task_rss_bound

# The size a 50M-row run's disk estimate is made for.
LARGEST_ROWS = 50_000_000


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1, comma: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value / scale:,.{digits}f}" if comma else f"{value / scale:.{digits}f}"


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("**PASS**" if met else "**MISS**")


def _value(target: dict[str, Any]) -> str:
    if target["value"] is None:
        return "n/a"
    if target["unit"] == "bytes":
        return f"{target['value'] / MIB:,.0f} MiB"
    return f"{target['value']:.2f}"


def markdown(document: dict[str, Any]) -> str:
    sizes = document["sizes"]
    lines = ["# Data larger than memory: the pipelines at scale (issue 15)", ""]
    if document.get("mode") == "quick":
        lines += [
            "**Quick smoke run** (`--quick`): check that the benchmark works; do not quote these figures.",
            "",
        ]
    lines += [
        "`benchmarks/bench_scale.py`: the training pipeline and batch inference through kfp.local beside "
        "the same component bodies in one process, on a seeded synthetic table of 25 columns. Each size "
        "below comes from its own run of the benchmark (its date, commit and machine load are in its "
        "section): quote figures and ratios of one size from its section. The machines are 2 shared CPUs: "
        "wall times carry other people's work; the load during each run is listed.",
        "",
        "| rows | dataset in memory (MiB) | training: pipeline s | / single process (paired) | inference: "
        "pipeline s | / single process (paired) | highest task peak RSS (MiB) | training tree peak / dataset | "
        "batch_predict rows/s | targets missed |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for report in sizes.values():
        summary = report["summary"]
        pipelines = summary["paths"]["pipelines"]
        tasks = [(s, i["peak_rss_bytes"]) for p in PHASES for s, i in pipelines["stages"][p].items()]
        task, peak = max(tasks, key=lambda item: item[1] or 0)
        data = report["dataset"]["in_memory_bytes"]
        training_peak = pipelines["phase_tree_peak_rss_bytes"]["training"]
        missed = [t["target"] for t in summary["targets"] if t["met"] is False]
        batch = pipelines["stages"]["inference"].get("batch_predict", {})
        ratio = summary["paired_ratio_median"]
        lines.append(
            f"| {report['dataset']['rows']:,} | {data / MIB:,.0f} | {pipelines['phase_seconds']['training']:,.1f} "
            f"| {_fmt(ratio['training'], digits=2)} | {pipelines['phase_seconds']['inference']:,.1f} | "
            f"{_fmt(ratio['inference'], digits=2)} | {_fmt(peak, MIB, 0)} ({task}) | "
            f"{_fmt(training_peak / data if training_peak else None, digits=2)} | "
            f"{_fmt(batch.get('rows_per_second'), digits=0)} | {len(missed)} of {len(summary['targets'])} |"
        )
    for report in sizes.values():
        lines += ["", *section(report)]
    lines.append("")
    return "\n".join(lines)


def section(report: dict[str, Any]) -> list[str]:
    dataset, summary = report["dataset"], report["summary"]
    rows = dataset["rows"]
    data_bytes = dataset["in_memory_bytes"]
    pipelines = summary["paths"]["pipelines"]
    # A --pipelines-only run measured no single-process path: its columns read n/a.
    single = summary["paths"].get("in_process") or {"stages": {p: {} for p in PHASES}}
    params = report["training_parameters"]
    code = report["code"]
    outcome = report["outcome"]
    metrics = outcome.get("test_metrics") or {}
    lines = [
        f"## {rows:,} rows",
        "",
        f"Generated {report['generated_at']} on {report['machine']['cpus']} CPUs, "
        f"{report['machine']['memory_bytes'] / 2**30:.0f} GiB, Python {report['machine']['python']}; "
        + ", ".join(f"{name} {version}" for name, version in report["versions"].items())
        + f". Code: commit {code['commit']}"
        + (f" with uncommitted changes to {', '.join(code['uncommitted'])}" if code["uncommitted"] else "")
        + f". {report['repeats']} run(s) of each path, interleaved, each in a fresh interpreter: seconds "
        "are medians, peak RSS the highest run. Every process ran with "
        f"`MLSTAGES_MEMORY_MB={report['memory_allowance_mb']}` and {report['blas_threads']} BLAS/OpenMP "
        "thread(s).",
        "",
        f"Dataset: {rows:,} seeded synthetic rows (`benchmarks/synthetic_data.py`, written "
        f"{dataset['chunk_rows']:,} rows at a time), {dataset['numeric_columns']} numeric and "
        f"{dataset['categorical_columns']} categorical columns, "
        f"{dataset['missing_share_of_feature_values']:.1%} of feature values missing, binary label "
        f"({dataset['positive_label_share']:.0%} positive). Parquet {dataset['parquet_bytes'] / MIB:,.0f} MiB in "
        f"{dataset['parts']} part(s); in memory about **{data_bytes / MIB:,.0f} MiB**: "
        f"{dataset['in_memory_method']}.",
        "",
        f"Training parameters: {', '.join(params['model_families'])} with "
        f"{json.dumps(params['search_space'][params['model_families'][0]])} ({params['search']} search, "
        f"{params['cv_folds']}-fold CV on a {params['max_search_rows']:,}-row sample); selection "
        f"{params['selection']}; {len(params['derived_features'])} derived features; outliers "
        f"{params['outliers']}, scaling {params['scaling']}, encoding {params['encoding']}; slices by "
        f"{', '.join(params['slice_columns'])}; gate {json.dumps(params['thresholds'])} with quality floor "
        f"{params['quality_floor']}, so that deploy (local model server) makes the model the champion; "
        + (
            f"max_fit_rows left to the memory allowance, max_train_rows {params['max_train_rows']:,}. "
            if params.get("max_train_rows")
            else "max_fit_rows and max_train_rows left to the memory allowance. "
        )
        + "Inference: the champion, "
        "`batch_rows` 65,536, shards to the embedded object store.",
        "",
        (
            (
                "Every run gave the same "
                if len(report["paths"]) == 1
                else "Every run of both paths gave the same "
            )
            if report["same_model"]
            else "**The runs differ**: "
        )
        + f"model (C={(outcome.get('best_params') or {}).get('C')}, trained on {outcome.get('train_rows') or 0:,} "
        f"rows, CV f1_macro {outcome.get('cv_score') or 0:.4f}, test accuracy {metrics.get('accuracy') or 0:.4f}, "
        f"ROC-AUC {metrics.get('roc_auc') or 0:.4f}), blessed {outcome.get('blessed')}, deployed "
        f"{outcome.get('deployed')}, {outcome.get('scored_rows') or 0:,} rows scored in "
        f"{outcome.get('scored_shards')} shards.",
        "",
        "Paths:",
        "",
        *[f"- `{name}`: {text}" for name, text in report["paths"].items()],
    ]
    if "in_process" not in report["paths"]:
        lines += [
            "",
            "Only the pipelines ran at this size (`--pipelines-only`: both paths would not fit the time "
            "at hand): its in-process columns read n/a and it has no wall-time ratio.",
        ]
    if report["model_differences"]:
        lines += ["", "Differences: " + "; ".join(report["model_differences"])]
    bound = task_rss_bound(report.get("memory_allowance_mb"))
    bound_name = "4 GiB" if bound == 4 << 30 else f"the {bound // MIB:,} MiB allowance"
    lines += ["", "### Per stage", ""]
    lines += [
        f"| pipeline | stage | rows in | rows held | task s | rows/s | task peak RSS (MiB) | of {bound_name} | "
        "in-process s | in-process rows/s | in-process peak RSS (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for phase in PHASES:
        for stage in STAGES[phase]:
            mine = pipelines["stages"][phase].get(stage)
            theirs = single["stages"][phase].get(stage) or {}
            if mine is None and not theirs:
                continue
            mine = mine or {}
            counts = summary["rows"][phase][stage]
            peak = mine.get("peak_rss_bytes")
            share = f"{peak / bound:.0%}" + ("" if peak <= bound else " **MISS**") if peak else "n/a"
            lines.append(
                f"| {phase} | {stage} | {_fmt(counts['input'], digits=0)} | {_fmt(counts['held'], digits=0)} | "
                f"{_fmt(mine.get('seconds'))} | {_fmt(mine.get('rows_per_second'), digits=0)} | "
                f"{_fmt(peak, MIB, 0)} | {share} | {_fmt(theirs.get('seconds'))} | "
                f"{_fmt(theirs.get('rows_per_second'), digits=0)} | {_fmt(theirs.get('peak_rss_bytes'), MIB, 0)} |"
            )
    lines += [
        "",
        "Rows in: the rows the stage reads through (the dataset, the train or the test split, the rows "
        "scored); rows held: the rows it holds at once (ingest and validate_data: the whole table, until "
        "they stream; preprocess and engineer_features: the seeded sample they fit on; train: the rows it "
        "searches and refits on). rows/s = rows in / seconds. A task's seconds are kfp.local's, from "
        "'Executing task' to 'finished' (interpreter start, imports and reading inputs included); its peak "
        "RSS is that of its process and every process it started (a model server), sampled together every "
        f"{int(report['sample_interval_seconds'] * 1000)} ms. In-process: the component body's own clock, "
        "and the process's peak RSS (VmHWM, reset before each stage; the model servers validate_model and "
        "deploy start are separate processes, counted in the tree peak below).",
        "",
        "### Per pipeline",
        "",
        "| | pipelines: wall s (median) | in-process: wall s (median) | ratio of the medians | "
        "median of the paired ratios | pipelines: tree peak (MiB) | / dataset | in-process: tree peak "
        "(MiB) | / dataset |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    paired = summary["paired_ratio_median"]
    for phase in PHASES:
        mine, theirs = pipelines["phase_seconds"][phase], (single.get("phase_seconds") or {}).get(phase)
        peak_mine = pipelines["phase_tree_peak_rss_bytes"][phase]
        peak_theirs = (single.get("phase_tree_peak_rss_bytes") or {}).get(phase)
        lines.append(
            f"| {phase} | {mine:,.1f} | {_fmt(theirs)} | {_fmt(mine / theirs if theirs else None, digits=2)} | "
            f"**{_fmt(paired[phase], digits=2)}** | "
            f"{_fmt(peak_mine, MIB, 0)} | {_fmt(peak_mine / data_bytes if peak_mine else None, digits=2)} | "
            f"{_fmt(peak_theirs, MIB, 0)} | {_fmt(peak_theirs / data_bytes if peak_theirs else None, digits=2)} |"
        )
    theirs_seconds, theirs_peak = single.get("process_seconds"), single.get("tree_peak_rss_bytes")
    lines.append(
        f"| whole run | {pipelines['process_seconds']:,.1f} | {_fmt(theirs_seconds)} | "
        f"{_fmt(pipelines['process_seconds'] / theirs_seconds if theirs_seconds else None, digits=2)} | "
        f"{_fmt(paired['run'], digits=2)} | "
        f"{_fmt(pipelines['tree_peak_rss_bytes'], MIB, 0)} | {pipelines['tree_peak_rss_bytes'] / data_bytes:.2f} | "
        f"{_fmt(theirs_peak, MIB, 0)} | {_fmt(theirs_peak / data_bytes if theirs_peak else None, digits=2)} |"
    )
    lines += [
        "",
        "Training wall time counts from the path's interpreter start (imports and the object store's "
        "start included) to the end of the training pipeline; inference from there to its end, which "
        "for the in-process path includes starting the fresh interpreter its inference stages run in "
        "(with their imports), as a scoring script pays them: each pipeline is a separate run. The tree "
        "is the path's process and all its descendants (for the pipelines: the kfp.local driver, the "
        "object store and the running task), RSS summed (shared pages count once per process). CPU "
        f"seconds of the whole tree (user + system): pipelines {pipelines['cpu_seconds']:,.1f}, in-process "
        f"{_fmt(single.get('cpu_seconds'))} (ratio **{_fmt(summary['cpu_ratio'], digits=2)}**: CPU time is much "
        "less disturbed by other work than wall time).",
        "",
        "The runs alternate (pipelines, in-process, in-process, pipelines, ...), so run k of each path ran "
        "back to back with the other's: the ratio of each such pair (wall time of the whole phase) is "
        "less at the mercy of the machine's load, which changed during the benchmark, than the ratio of "
        "medians taken over all runs; the target below is the median of the paired ratios.",
        "",
        "| pair | training ratio | inference ratio | whole run ratio | load (median): pipelines run | "
        "in-process run |",
        "|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {number} | {pair['ratio']['training']:.2f} | {pair['ratio']['inference']:.2f} | "
            f"{pair['ratio']['run']:.2f} | {_fmt(pair['load_median']['pipelines'])} | "
            f"{_fmt(pair['load_median']['in_process'])} |"
            for number, pair in enumerate(summary["pairs"], start=1)
        ],
        "",
        "### Targets (issue 15)",
        "",
    ]
    for target in summary["targets"]:
        bound = target["bound"] if target["unit"] == "ratio" else f"{_fmt(target['bound'], MIB, 0)} MiB"
        medians = target.get("ratio_of_medians")
        aside = f"; ratio of the medians {medians:.2f}" if medians is not None else ""
        lines.append(
            f"- {target['target']}: {_value(target)} (bound {bound}{aside}): {_verdict(target['met'])}"
        )
    lines += ["", "### Machine load", ""]
    for path in PATHS:
        item = summary["paths"].get(path)
        if item is None:
            continue
        for number, (seconds, load) in enumerate(
            zip(item["each_run_seconds"], item["load_average_1min"], strict=True), start=1
        ):
            sampled = load.get("sampled") or {}
            lines.append(
                f"- `{path}` run {number}: {seconds:,.1f} s; 1-minute load average "
                f"{_fmt(sampled.get('min'))} to {_fmt(sampled.get('max'))} (median {_fmt(sampled.get('median'))}) "
                f"on {report['machine']['cpus']} CPUs"
            )
    lines += [
        "",
        "The load includes this benchmark's own processes (up to about 1 on its own); above 2, other work "
        "shared the cores and stretched the wall times (CPU seconds much less).",
        "",
        "### Disk",
        "",
    ]
    disk = report["disk"]
    per_row = disk["largest_run_folder_bytes"] / rows
    parquet_per_row = disk["dataset_parquet_bytes"] / rows
    lines.append(
        f"The dataset: {disk['dataset_parquet_bytes'] / 1e9:,.2f} GB; the largest run folder (the run's "
        f"datasets and models, the object store with the prediction shards): "
        f"{disk['largest_run_folder_bytes'] / 1e9:,.2f} GB ({per_row:,.0f} bytes a row). At "
        f"{LARGEST_ROWS:,} rows that is about {parquet_per_row * LARGEST_ROWS / 1e9:,.0f} GB of data and "
        f"{per_row * LARGEST_ROWS / 1e9:,.0f} GB per run (one run folder at a time: each is deleted after it "
        f"is measured); {disk['free_bytes_before'] / 1e9:,.0f} GB were free under `{disk['workdir']}` "
        "before this run."
    )
    return lines
