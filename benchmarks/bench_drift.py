"""monitor_drift beside Evidently's DataDriftPreset on the same reference and current data.

The data are seeded and synthetic: 30 numeric columns (normal, log-normal, uniform, exponential
and Poisson counts) and 10 categorical ones (3 to 20 categories), the same number of rows in the
reference and the current window. The current window drifts in some columns, by design on both
sides of the thresholds: large mean shifts, shifts just below and just above the Wasserstein
threshold of 0.1 training standard deviations, a change of scale, changed category mixes, and a new
category; the other columns do not change.

What is measured, each in a fresh interpreter (peak RSS is that process's VmHWM; the baseline is
the RSS after imports and after the Parquet files were read, before the clock starts):

- ``build_reference``: ours, once at training time: reference.json from the reference rows.
- ``monitor``: ours, every monitoring run: load reference.json, ``detect_drift`` on the current
  rows, and render the HTML and Markdown reports.
- ``evidently``: ``Report([DataDriftPreset()]).run(current, reference)`` with the column types
  given (no inference); its HTML is not rendered, which favours Evidently.

Both run their default tests, which at these sizes are the same on both sides: the Wasserstein
distance normed by the reference standard deviation (threshold 0.1) for numeric columns, the
Jensen-Shannon distance (threshold 0.1) for categorical ones. The verdicts are compared column by
column. Ours computes Wasserstein from the reference's 5,000-value stratified sample (Evidently from
all reference rows), and Jensen-Shannon from the same category counts as Evidently.

Evidently is run with DO_NOT_TRACK=1, and every measurement refuses connections to anything but
loopback.

Usage:
    .venv/bin/python benchmarks/bench_drift.py             # 100k and 1M rows
    .venv/bin/python benchmarks/bench_drift.py --quick     # 100k rows, one run each

Writes benchmarks/results/drift.json and benchmarks/results/drift.md.
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

import numpy as np
import pandas as pd

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL_SIZES = {"100k": 100_000, "1M": 1_000_000}
QUICK_SIZES = {"100k": 100_000}
SEED = 20240607
NUMERIC_COLUMNS = 30
CATEGORICAL_COLUMNS = 10
MIN_SPEEDUP = 5.0  # the target

# Numeric column i: (distribution, what the current window does to it).
# Shifts are in units of the column's standard deviation.
NUMERIC_DRIFT = {
    0: ("shift", 0.5),
    1: ("shift", 0.5),
    2: ("shift", 0.3),
    3: ("shift", 0.3),
    4: ("shift", 0.2),
    5: ("shift", 0.15),
    6: ("shift", 0.11),  # just above the threshold
    7: ("shift", 0.09),  # just below it
    8: ("shift", 0.05),
    9: ("shift", 0.03),
    10: ("scale", 1.5),
    11: ("scale", 1.1),
}
# Categorical column j: its shares move towards another mix by this weight, or gain a category.
CATEGORICAL_DRIFT = {0: ("mix", 0.6), 1: ("mix", 0.3), 2: ("mix", 0.15), 3: ("mix", 0.05), 4: ("new", 0.05)}
DISTRIBUTIONS = ("normal", "lognormal", "uniform", "exponential", "poisson")

# Run in a fresh interpreter per measurement. Prints one JSON line.
_MEASURE = r"""
import json, os, resource, socket, sys, time

os.environ["DO_NOT_TRACK"] = "1"
_connect = socket.socket.connect
def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(address, tuple) and host not in ("127.0.0.1", "::1", "localhost"):
        raise RuntimeError(f"benchmark refused a connection to {address!r}")
    return _connect(self, address)
socket.socket.connect = _loopback_only

def rss_bytes():
    # VmHWM starts afresh at exec; ru_maxrss carries the parent's peak over into the child.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

mode, workdir = sys.argv[1], sys.argv[2]
types = json.loads(open(os.path.join(workdir, "types.json")).read())
import pandas as pd
result = {}
if mode == "build":
    from mlstages.components.common.reference import build_reference, save_reference
    reference_df = pd.read_parquet(os.path.join(workdir, "reference.parquet"))
    baseline = rss_bytes()
    started = time.perf_counter()
    reference = build_reference(reference_df, None, types)
    path = save_reference(reference, workdir)
    seconds = time.perf_counter() - started
    result["reference_json_bytes"] = path.stat().st_size
elif mode == "monitor":
    from mlstages.components.common.reference import load_reference
    from mlstages.components.monitor_drift.monitor_drift import detect_drift
    from mlstages.components.monitor_drift.report import render_html, render_markdown
    import scipy.stats, scipy.spatial  # imports before the clock, as for Evidently
    current_df = pd.read_parquet(os.path.join(workdir, "current.parquet"))
    baseline = rss_bytes()
    started = time.perf_counter()
    reference = load_reference(workdir)
    outcome = detect_drift(reference, current_df)
    page, summary = render_html(outcome), render_markdown(outcome)
    seconds = time.perf_counter() - started
    result["columns"] = {
        f.column: {"method": f.method, "score": f.score, "threshold": f.threshold, "drifted": f.drifted}
        for f in outcome.features
    }
    result["drift_share"] = outcome.drift_share
elif mode == "evidently":
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    reference_df = pd.read_parquet(os.path.join(workdir, "reference.parquet"))
    current_df = pd.read_parquet(os.path.join(workdir, "current.parquet"))
    definition = DataDefinition(
        numerical_columns=[c for c, t in types.items() if t == "numeric"],
        categorical_columns=[c for c, t in types.items() if t == "categorical"],
    )
    baseline = rss_bytes()
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current_df, data_definition=definition),
        reference_data=Dataset.from_pandas(reference_df, data_definition=definition),
    )
    seconds = time.perf_counter() - started
    columns = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            columns[config["column"]] = {
                "method": config["method"], "score": float(metric["value"]), "threshold": config["threshold"]
            }
        elif config.get("type") == "evidently:metric_v2:DriftedColumnsCount":
            result["drift_share"] = metric["value"]["share"]
    result["columns"] = columns
else:
    raise SystemExit(f"unknown mode {mode}")
result.update({"seconds": seconds, "peak_rss_bytes": rss_bytes(), "baseline_rss_bytes": baseline})
print(json.dumps(result))
"""

MEASUREMENTS = {
    "build_reference": ("build", "ours, once at training: build_reference + save_reference (reference.json)"),
    "monitor": (
        "monitor",
        "ours, each monitoring run: load_reference + detect_drift + HTML and Markdown reports",
    ),
    "evidently": ("evidently", "Evidently: Report([DataDriftPreset()]).run(current, reference), no HTML"),
}
# Evidently's method names for the tests both sides have.
EVIDENTLY_METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "PSI": "psi",
}
P_VALUE_METHODS = {"ks", "chisquare", "z"}


def column_names() -> tuple[list[str], list[str]]:
    numeric = [f"num_{i:02d}_{DISTRIBUTIONS[i % len(DISTRIBUTIONS)]}" for i in range(NUMERIC_COLUMNS)]
    categorical = [f"cat_{j:02d}" for j in range(CATEGORICAL_COLUMNS)]
    return numeric, categorical


def _numeric(rng: np.random.Generator, kind: str, rows: int) -> np.ndarray:
    if kind == "normal":
        return rng.normal(50.0, 10.0, rows)
    if kind == "lognormal":
        return rng.lognormal(3.0, 0.6, rows)
    if kind == "uniform":
        return rng.uniform(0.0, 100.0, rows)
    if kind == "exponential":
        return rng.exponential(20.0, rows)
    return rng.poisson(12.0, rows).astype(np.int64)


def make_frames(rows: int, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded reference and current frames (same row count), drift as NUMERIC_DRIFT / CATEGORICAL_DRIFT."""
    rng = np.random.default_rng(seed)
    numeric, categorical = column_names()
    reference: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    for i, name in enumerate(numeric):
        kind = DISTRIBUTIONS[i % len(DISTRIBUTIONS)]
        ref = _numeric(rng, kind, rows)
        cur = _numeric(rng, kind, rows)
        change, amount = NUMERIC_DRIFT.get(i, (None, 0.0))
        if change == "shift":
            cur = cur + amount * ref.std()
        elif change == "scale":
            cur = ref.mean() + (cur - cur.mean()) * amount
        reference[name], current[name] = ref, cur
    for j, name in enumerate(categorical):
        size = 3 + (17 * j) // (CATEGORICAL_COLUMNS - 1)  # 3 to 20 categories
        labels = np.array([f"{name}_value_{k:02d}" for k in range(size)], dtype=object)
        # The category shares come from their own seed, so they are the same at every size.
        mixes = np.random.default_rng([seed, j])
        shares = mixes.dirichlet(np.full(size, 2.0))
        ref = labels[rng.choice(size, rows, p=shares)]
        change, amount = CATEGORICAL_DRIFT.get(j, (None, 0.0))
        current_labels, current_shares = labels, shares
        if change == "mix":
            current_shares = (1 - amount) * shares + amount * mixes.dirichlet(np.full(size, 2.0))
        elif change == "new":
            current_labels = np.append(labels, f"{name}_value_new")
            current_shares = np.append(shares * (1 - amount), amount)
        cur = current_labels[rng.choice(len(current_labels), rows, p=current_shares)]
        reference[name], current[name] = ref, cur
    return pd.DataFrame(reference), pd.DataFrame(current)


def measure(mode: str, workdir: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, mode, str(workdir)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"measurement {mode} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _verdict(method: str, score: float, threshold: float) -> bool:
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


def compare_verdicts(ours: dict, theirs: dict) -> dict:
    """Per-column verdicts side by side, and how often they agree where the tests are the same."""
    rows = []
    for column, mine in ours["columns"].items():
        other = theirs["columns"].get(column)
        their_method = EVIDENTLY_METHODS.get(other["method"]) if other else None
        their_drift = (
            None if other is None else _verdict(their_method or "", other["score"], other["threshold"])
        )
        rows.append(
            {
                "column": column,
                "ours_method": mine["method"],
                "ours_score": mine["score"],
                "ours_drift": mine["drifted"],
                "evidently_method": None if other is None else other["method"],
                "evidently_score": None if other is None else other["score"],
                "evidently_drift": their_drift,
                "same_test": their_method == mine["method"],
                "agree": their_drift == mine["drifted"],
            }
        )
    same = [r for r in rows if r["same_test"]]
    agreeing = [r for r in same if r["agree"]]
    differences = {
        method: max(
            (abs(r["ours_score"] - r["evidently_score"]) for r in same if r["ours_method"] == method),
            default=None,
        )
        for method in sorted({r["ours_method"] for r in same})
    }
    return {
        "columns": rows,
        "same_test_columns": len(same),
        "agreeing_columns": len(agreeing),
        "agreement": len(agreeing) / len(same) if same else None,
        "max_score_difference": differences,
        "ours_drift_share": ours["drift_share"],
        "evidently_drift_share": theirs.get("drift_share"),
    }


def summarize(runs: list[dict]) -> dict:
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_bytes": int(statistics.median(r["peak_rss_bytes"] for r in runs)),
        "baseline_rss_bytes": int(statistics.median(r["baseline_rss_bytes"] for r in runs)),
        "growth_bytes": int(statistics.median(r["peak_rss_bytes"] - r["baseline_rss_bytes"] for r in runs)),
        "runs": [{k: v for k, v in r.items() if k != "columns"} for r in runs],
    }


def run(sizes: dict[str, int], repeats: int, evidently_repeats: int, workdir: Path, run_mode: str) -> dict:
    numeric, categorical = column_names()
    types = {c: "numeric" for c in numeric} | {c: "categorical" for c in categorical}
    (workdir / "types.json").write_text(json.dumps(types))
    datasets = []
    for label, rows in sizes.items():
        started = time.perf_counter()
        reference_df, current_df = make_frames(rows)
        reference_df.to_parquet(workdir / "reference.parquet", index=False)
        current_df.to_parquet(workdir / "current.parquet", index=False)
        frame_bytes = int(current_df.memory_usage(deep=True).sum())
        del reference_df, current_df
        print(
            f"{label}: {rows:,} rows x {len(types)} columns, generated in {time.perf_counter() - started:.1f} s"
        )
        runs: dict[str, list[dict]] = {name: [] for name in MEASUREMENTS}
        for name, (mode, _) in MEASUREMENTS.items():
            count = evidently_repeats if name == "evidently" else repeats
            for repeat in range(count):
                outcome = measure(mode, workdir)
                runs[name].append(outcome)
                print(
                    f"  {name:<16} run {repeat + 1}: {outcome['seconds']:.2f} s, "
                    f"peak RSS {outcome['peak_rss_bytes'] / 1e6:.0f} MB",
                    flush=True,
                )
        results = {name: summarize(r) for name, r in runs.items()}
        verdicts = compare_verdicts(runs["monitor"][-1], runs["evidently"][-1])
        speedup = results["evidently"]["seconds"] / results["monitor"]["seconds"]
        datasets.append(
            {
                "name": label,
                "rows": rows,
                "frame_memory_bytes": frame_bytes,
                "reference_json_bytes": runs["build_reference"][-1]["reference_json_bytes"],
                "results": results,
                "speedup_monitor_vs_evidently": speedup,
                "speedup_including_build_vs_evidently": results["evidently"]["seconds"]
                / (results["monitor"]["seconds"] + results["build_reference"]["seconds"]),
                "verdicts": verdicts,
                "targets": {
                    "at_least_5x_faster": speedup >= MIN_SPEEDUP,
                    "same_verdicts_where_tests_are_the_same": verdicts["agreement"] == 1.0,
                },
            }
        )
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": run_mode,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": {
            name: package_metadata.version(name)
            for name in ("evidently", "pandas", "numpy", "scipy", "mlstages")
        },
        "repeats": repeats,
        "evidently_repeats": evidently_repeats,
        "statistic": "median",
        "measurements": {name: description for name, (_, description) in MEASUREMENTS.items()},
        "datasets": datasets,
    }


def markdown(report: dict) -> str:
    lines = [
        "# Drift: monitor_drift versus Evidently's DataDriftPreset",
        "",
        f"Generated {report['generated_at']} ({report['mode']} run) on {report['machine']['cpus']} CPUs, Python "
        f"{report['machine']['python']}, Evidently {report['versions']['evidently']}. Median of "
        f"{report['repeats']} runs of ours and {report['evidently_repeats']} of Evidently, each in a fresh "
        "interpreter; peak RSS is that process's VmHWM, the baseline its RSS after imports and after "
        "reading the Parquet data, before the clock starts. Seeded synthetic data: "
        f"{NUMERIC_COLUMNS} numeric and {CATEGORICAL_COLUMNS} categorical columns, reference and current "
        "window of the same size, drift in some columns on both sides of the thresholds "
        "(see the script's docstring).",
        "",
        "Measurements:",
        "",
    ]
    lines += [f"- `{name}`: {description}" for name, description in report["measurements"].items()]
    for dataset in report["datasets"]:
        results = dataset["results"]
        verdicts = dataset["verdicts"]
        lines += [
            "",
            f"## {dataset['name']} rows ({dataset['rows']:,} reference + {dataset['rows']:,} current)",
            "",
            f"Current window in memory: {dataset['frame_memory_bytes'] / 1e6:.0f} MB; reference.json: "
            f"{dataset['reference_json_bytes'] / 1e6:.1f} MB.",
            "",
            "| measurement | seconds | peak RSS (MB) | baseline RSS (MB) | growth (MB) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, result in results.items():
            lines.append(
                f"| `{name}` | {result['seconds']:.2f} | {result['peak_rss_bytes'] / 1e6:.0f} | "
                f"{result['baseline_rss_bytes'] / 1e6:.0f} | {result['growth_bytes'] / 1e6:.0f} |"
            )
        differences = ", ".join(
            f"{method} {value:.2g}"
            for method, value in verdicts["max_score_difference"].items()
            if value is not None
        )
        lines += [
            "",
            f"- monitoring speed-up over Evidently: **{dataset['speedup_monitor_vs_evidently']:.1f}x** "
            f"(target >= {MIN_SPEEDUP:g}x: {'met' if dataset['targets']['at_least_5x_faster'] else 'MISS'}); "
            f"with the one-time reference build included: {dataset['speedup_including_build_vs_evidently']:.1f}x",
            f"- per-column verdicts: **{verdicts['agreeing_columns']} of {verdicts['same_test_columns']}** agree "
            f"where both ran the same test ({verdicts['same_test_columns']} of {len(verdicts['columns'])} columns) "
            f"(target: all: {'met' if dataset['targets']['same_verdicts_where_tests_are_the_same'] else 'MISS'})",
            f"- largest score difference per test: {differences}",
            f"- drift share: ours {verdicts['ours_drift_share']:.3f}, Evidently {verdicts['evidently_drift_share']:.3f}",
            "",
            "| column | test | ours | Evidently | drift (ours / Evidently) |",
            "|---|---|---:|---:|---|",
        ]
        for row in verdicts["columns"]:
            theirs = "" if row["evidently_score"] is None else f"{row['evidently_score']:.4f}"
            drift = f"{'yes' if row['ours_drift'] else 'no'} / {'yes' if row['evidently_drift'] else 'no'}"
            if not row["agree"]:
                drift = f"**{drift}**"
            lines.append(
                f"| {row['column']} | {row['ours_method']} | {row['ours_score']:.4f} | {theirs} | {drift} |"
            )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows only, one run of each")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of ours per size; the median is reported"
    )
    parser.add_argument(
        "--evidently-repeats",
        type=int,
        default=1,
        help="runs of Evidently per size (minutes each at 1M rows)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    if repeats < 1 or args.evidently_repeats < 1:
        parser.error("--repeats and --evidently-repeats must be at least 1")
    try:
        package_metadata.version("evidently")
    except package_metadata.PackageNotFoundError:
        print("bench_drift needs Evidently to compare with: pip install evidently==0.7.23", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlstages-bench-drift-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(
            QUICK_SIZES if args.quick else FULL_SIZES,
            repeats,
            args.evidently_repeats,
            workdir,
            "quick" if args.quick else "full",
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results_dir / "drift.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
