"""bench_scale's figures: per run, per stage (seconds, rows/s, peak RSS); over the runs, medians
and the targets; and the Markdown that quotes them."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from process_tree import kfp_task_seconds
from scale_paths import PATHS, PHASE_MARKER, PHASES, STAGES, task_stage

MIB = 1 << 20
# Issue 15's targets.
MAX_TASK_RSS_BYTES = 4 << 30
MAX_PEAK_OVER_DATASET_AT_1M = 2.0
MAX_WALL_RATIO = 1.25
TARGET_ROWS_FOR_PEAK = 1_000_000


# --- one run --------------------------------------------------------------------------------------


def task_processes(result: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    """The pipelines path's task processes that started during ``phase``."""
    window = result["phases"][phase]
    return [
        p
        for p in result.get("processes", [])
        if p["label"].startswith("task:") and window["start"] <= p["first_seen_monotonic"] <= window["end"]
    ]


def _task_name(process: dict[str, Any]) -> str:
    return process["label"].split()[0].removeprefix("task:")


def windows_of(result: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The spans whose tree peak is wanted: each phase, and each stage (a task process's lifetime,
    or the in-process stage's clock)."""
    windows = {phase: (item["start"], item["end"]) for phase, item in result["phases"].items()}
    if result["path"] == "pipelines":
        for phase in result["phases"]:
            for process in task_processes(result, phase):
                key = f"{phase}.{_task_name(process)}"
                start, end = process["first_seen_monotonic"], process["last_seen_monotonic"]
                if key in windows:  # the same stage twice in a phase: the span of both
                    start, end = min(start, windows[key][0]), max(end, windows[key][1])
                windows[key] = (start, end)
    else:
        windows.update({key: (item["start"], item["end"]) for key, item in result["stage_clock"].items()})
    return windows


def phase_logs(log_text: str) -> dict[str, str]:
    """The pipelines path's output split at the phase markers."""
    logs: dict[str, list[str]] = {}
    current = None
    for line in log_text.splitlines():
        if line.startswith(PHASE_MARKER):
            current = line[len(PHASE_MARKER) :].strip()
            logs[current] = []
        elif current is not None:
            logs[current].append(line)
    return {phase: "\n".join(lines) for phase, lines in logs.items()}


def analyze_run(result: dict[str, Any]) -> dict[str, Any]:
    """Per phase and stage: seconds, CPU seconds, the stage's own peak RSS and the tree's peak
    during it; per phase: wall seconds (the training phase from the interpreter's start) and the
    tree's peak."""
    pipelines = result["path"] == "pipelines"
    logs = (
        phase_logs(Path(result["log_file"]).read_text(encoding="utf-8", errors="replace"))
        if pipelines
        else {}
    )
    peaks = result.get("window_peaks") or {}
    stages: dict[str, dict[str, dict[str, Any]]] = {}
    for phase in PHASES:
        stages[phase] = {}
        seconds = {task_stage(k): v for k, v in kfp_task_seconds(logs.get(phase, "")).items()}
        processes = task_processes(result, phase) if pipelines else []
        for stage in STAGES[phase]:
            key = f"{phase}.{stage}"
            if pipelines:
                mine = [p for p in processes if _task_name(p) == stage]
                if not mine:
                    continue
                item = {
                    "seconds": seconds.get(stage),
                    "cpu_seconds": sum(p.get("cpu_seconds") or 0.0 for p in mine),
                    # The task process and everything it started, sampled together.
                    "peak_rss_bytes": max(p.get("subtree_peak_rss_bytes", p["peak_rss_bytes"]) for p in mine),
                }
            else:
                clock = result["stage_clock"].get(key)
                if clock is None:
                    continue
                item = {
                    "seconds": clock["seconds"],
                    "cpu_seconds": clock["cpu_seconds"],
                    # This process's VmHWM during the stage (reset before it); a model server the
                    # stage starts is in the tree's peak only.
                    "peak_rss_bytes": clock["process_peak_rss_bytes"],
                }
            item["tree_peak_rss_bytes"] = peaks.get(key)
            stages[phase][stage] = item
    started = result["started_monotonic"]
    training_end = result["phases"]["training"]["end"]
    walls = {
        "training": training_end - started,
        "inference": result["phases"]["inference"]["end"] - training_end,
    }
    return {
        "stages": stages,
        "phase_seconds": walls,
        "phase_tree_peak_rss_bytes": {phase: peaks.get(phase) for phase in PHASES},
    }


# --- over the runs ----------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _highest(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def task_rss_bound(allowance_mb: int | str | None) -> int:
    """A task's peak RSS bound: issue 15's 4 GiB, or the allowance the tasks were given
    (``MLSTAGES_MEMORY_MB``) when it is less: a task that outgrows its allowance would be killed at
    a pod's limit of that size."""
    allowance = int(allowance_mb) * MIB if allowance_mb else MAX_TASK_RSS_BYTES
    return min(MAX_TASK_RSS_BYTES, allowance)


def summarize(
    runs: dict[str, list[dict[str, Any]]], dataset: dict[str, Any], allowance_mb: int | str | None = None
) -> dict[str, Any]:
    """Medians over the runs of each path (peak RSS: the highest run, the stricter), rows/s, and
    the targets (a task's peak: ``task_rss_bound(allowance_mb)``)."""
    rows = runs["pipelines"][0]["rows"]
    per_path: dict[str, Any] = {}
    for path in PATHS:
        if not runs.get(path):  # a --pipelines-only run has no single-process path
            continue
        analyzed = [r["analysis"] for r in runs[path]]
        stages: dict[str, dict[str, Any]] = {}
        for phase in PHASES:
            stages[phase] = {}
            for stage in STAGES[phase]:
                items = [a["stages"][phase].get(stage) for a in analyzed]
                items = [i for i in items if i is not None]
                if not items:
                    continue
                seconds = _median([i["seconds"] for i in items])
                input_rows = rows[phase][stage]["input"]
                stages[phase][stage] = {
                    "seconds": seconds,
                    "cpu_seconds": _median([i["cpu_seconds"] for i in items]),
                    "rows_per_second": input_rows / seconds if input_rows and seconds else None,
                    "peak_rss_bytes": _highest([i["peak_rss_bytes"] for i in items]),
                    "tree_peak_rss_bytes": _highest([i["tree_peak_rss_bytes"] for i in items]),
                }
        per_path[path] = {
            "stages": stages,
            "phase_seconds": {p: _median([a["phase_seconds"][p] for a in analyzed]) for p in PHASES},
            "phase_tree_peak_rss_bytes": {
                p: _highest([a["phase_tree_peak_rss_bytes"][p] for a in analyzed]) for p in PHASES
            },
            "seconds": _median([r["seconds"] for r in runs[path]]),
            "process_seconds": _median([r["process_seconds"] for r in runs[path]]),
            "cpu_seconds": _median([r["cpu_seconds"] for r in runs[path]]),
            "tree_peak_rss_bytes": _highest([r["tree_peak_rss_bytes"] for r in runs[path]]),
            "largest_process_peak_rss_bytes": _highest(
                [max(p["peak_rss_bytes"] for p in r["processes"]) for r in runs[path]]
            ),
            "each_run_seconds": [r["process_seconds"] for r in runs[path]],
            "load_average_1min": [r["load_average_1min"] for r in runs[path]],
        }
    pairs = paired_ratios(runs)
    return {
        "rows": rows,
        "paths": per_path,
        "pairs": pairs,
        "paired_ratio_median": {p: _median([pair["ratio"][p] for pair in pairs]) for p in (*PHASES, "run")},
        "cpu_ratio": (
            per_path["pipelines"]["cpu_seconds"] / per_path["in_process"]["cpu_seconds"]
            if "in_process" in per_path
            else None
        ),
        "targets": targets(per_path, dataset, pairs, task_rss_bound(allowance_mb)),
    }


def paired_ratios(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run k of the pipelines beside run k in one process: the runs are interleaved, so each pair
    ran back to back, under about the same load; a ratio per pair drifts less with other people's
    work than a ratio of medians taken over the whole benchmark."""
    pairs = []
    for mine, theirs in zip(runs["pipelines"], runs.get("in_process", []), strict=False):
        seconds = {
            "pipelines": {**mine["analysis"]["phase_seconds"], "run": mine["process_seconds"]},
            "in_process": {**theirs["analysis"]["phase_seconds"], "run": theirs["process_seconds"]},
        }
        pairs.append(
            {
                "seconds": seconds,
                "ratio": {
                    p: seconds["pipelines"][p] / seconds["in_process"][p] for p in seconds["pipelines"]
                },
                "load_median": {
                    "pipelines": (mine["load_average_1min"].get("sampled") or {}).get("median"),
                    "in_process": (theirs["load_average_1min"].get("sampled") or {}).get("median"),
                },
            }
        )
    return pairs


def targets(
    per_path: dict[str, Any],
    dataset: dict[str, Any],
    pairs: list[dict[str, Any]],
    task_bound: int = MAX_TASK_RSS_BYTES,
) -> list[dict[str, Any]]:
    """Each of issue 15's targets: what, the value, the bound, met or not (None: not applicable)."""
    found: list[dict[str, Any]] = []
    pipelines, single = per_path["pipelines"], per_path.get("in_process")
    for phase in PHASES:
        for stage, item in pipelines["stages"][phase].items():
            peak = item["peak_rss_bytes"]
            found.append(
                {
                    "target": f"{phase} pipeline, task {stage}: peak RSS <= {_allowance_text(task_bound)}",
                    "value": peak,
                    "unit": "bytes",
                    "bound": task_bound,
                    "met": None if peak is None else peak <= task_bound,
                }
            )
    applies = dataset["rows"] == TARGET_ROWS_FOR_PEAK
    for phase in PHASES:
        peak = pipelines["phase_tree_peak_rss_bytes"][phase]
        ratio = peak / dataset["in_memory_bytes"] if peak else None
        found.append(
            {
                "target": f"{phase} pipeline: process tree peak <= {MAX_PEAK_OVER_DATASET_AT_1M:g}x the "
                "dataset in memory (at 1M rows)",
                "value": ratio,
                "unit": "ratio",
                "bound": MAX_PEAK_OVER_DATASET_AT_1M,
                "met": (ratio <= MAX_PEAK_OVER_DATASET_AT_1M) if applies and ratio is not None else None,
            }
        )
    for phase in PHASES:
        if single is None:
            continue  # no single-process path measured: no wall-time ratio
        mine, theirs = pipelines["phase_seconds"][phase], single["phase_seconds"][phase]
        ratio = _median([pair["ratio"][phase] for pair in pairs])
        found.append(
            {
                "target": f"{phase}: pipeline / single-process wall time <= {MAX_WALL_RATIO} (median of "
                "the paired runs' ratios)",
                "value": ratio,
                "unit": "ratio",
                "bound": MAX_WALL_RATIO,
                "met": None if ratio is None else ratio <= MAX_WALL_RATIO,
                "ratio_of_medians": mine / theirs if mine and theirs else None,
            }
        )
    return found


def same_outcome(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Differences between two runs' outcomes (the model, its test metrics, the decisions)."""
    problems = []
    for key in ("best_params", "blessed", "deployed", "scored_rows", "train_rows"):
        if first.get(key) != second.get(key):
            problems.append(f"{key} {first.get(key)} != {second.get(key)}")
    if abs((first.get("cv_score") or 0.0) - (second.get("cv_score") or 0.0)) > 1e-9:
        problems.append(f"cv_score {first.get('cv_score')} != {second.get('cv_score')}")
    for name, value in (first.get("test_metrics") or {}).items():
        other = (second.get("test_metrics") or {}).get(name)
        if (value is None) != (other is None) or (value is not None and abs(value - other) > 1e-9):
            problems.append(f"test metric {name}: {value} != {other}")
    return problems


def _allowance_text(bound: int) -> str:
    return "4 GiB" if bound == MAX_TASK_RSS_BYTES else f"the {bound // MIB:,} MiB allowance"
