"""validate_data's statistics on a table larger than a task wants to hold: the whole table in
pandas (before issue 15) beside the statistics streamed a row group at a time (after).

The data: a seeded synthetic table of 25 columns, written with ``dataset_files.write_batches`` one
chunk of 500,000 rows at a time (the table is never whole in the writer either): 14 float columns
of different distributions and scales with 0 to 8% missing values (one with a few infinities), 3
integer count columns, 4 string categories of 4, 30, 300 and 20,000 levels with skewed
frequencies, one boolean, one datetime, one free-text column of 3 to 8 words and one
near-unique string key; 1% of the rows repeat an earlier row.

What is measured, each in a fresh interpreter (peak RSS is the process's VmHWM; the baseline is
its RSS after imports, before the clock starts):

- ``whole``: ``read_dataset`` of the folder and the statistics as they were computed before the
  statistics streamed (``tests/statistics_before_streaming.py``, the previous
  ``compute_statistics``, unchanged), which is what validate_data did;
- ``streamed``: ``StatisticsAccumulator`` fed by ``iter_batches`` (131,072-row batches), what
  validate_data does now;
- ``validate``: the whole of ``validate_dataset`` (statistics, inferred schema, anomaly checks, the
  type checks' 100,000-row sample), for the task's end-to-end figures.

Then the streamed figures are checked against the whole table's: exact counts equal, mean and std
to a relative 1e-9, and every sketched quantile's true rank (computed on the whole column) within
the rank error the document states.

The whole-table path needs about 9 GiB at 10M rows (the table is 5 GiB in pandas); at 50M rows it
cannot run on an ordinary machine, so ``--streamed-only`` measures the streamed paths alone and
adds them to the results as a scale row, leaving the full comparison in place.

Usage:
    .venv/bin/python benchmarks/bench_streaming_statistics.py             # 10M rows, ~15 min
    .venv/bin/python benchmarks/bench_streaming_statistics.py --rows 1000000
    .venv/bin/python benchmarks/bench_streaming_statistics.py --quick     # 1M rows
    .venv/bin/python benchmarks/bench_streaming_statistics.py --rows 50000000 --streamed-only

Writes benchmarks/results/streaming_statistics.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SEED = 20261204
CHUNK_ROWS = 500_000
FULL_ROWS = 10_000_000
QUICK_ROWS = 1_000_000
TARGET_PEAK_BYTES = 4 << 30  # the budget for a task at 50M rows x 25 columns


def chunks(rows: int, seed: int = SEED) -> Iterator[pd.DataFrame]:
    """The synthetic table, CHUNK_ROWS rows at a time, from one seeded generator."""
    rng = np.random.default_rng(seed)
    levels = {
        n: np.array([f"{prefix}{i}" for i in range(n)], dtype=object)
        for n, prefix in ((4, "r"), (30, "c"), (300, "p"), (20_000, "s"))
    }
    weights = {n: 1.0 / np.arange(1, n + 1) ** 0.8 for n in levels}
    weights = {n: w / w.sum() for n, w in weights.items()}
    words = np.array(
        "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split(), dtype=object
    )
    previous: pd.DataFrame | None = None
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        floats = {
            "f_normal": rng.normal(50, 10, n),
            "f_lognormal": rng.lognormal(3, 1, n),
            "f_exponential": rng.exponential(2.0, n),
            "f_uniform": rng.uniform(-1, 1, n),
            "f_gamma": rng.gamma(2.0, 3.0, n),
            "f_beta": rng.beta(2, 5, n),
            "f_t": rng.standard_t(3, n),
            "f_weibull": rng.weibull(1.5, n) * 100,
            "f_small": rng.normal(0, 1e-6, n),
            "f_large": rng.normal(1e9, 1e6, n),
            "f_bimodal": np.where(rng.random(n) < 0.3, rng.normal(-5, 1, n), rng.normal(5, 2, n)),
            "f_zeros": np.where(rng.random(n) < 0.6, 0.0, rng.exponential(1.0, n)),
            "f_rounded": np.round(rng.normal(100, 15, n), 1),
            "f_price": np.round(rng.lognormal(4, 0.7, n), 2),
        }
        for index, name in enumerate(floats):
            floats[name][rng.random(n) < 0.01 * (index % 9)] = np.nan
        floats["f_t"][rng.random(n) < 1e-5] = np.inf
        frame = pd.DataFrame(floats)
        frame["i_visits"] = rng.poisson(8, n)
        frame["i_items"] = rng.poisson(2, n)
        frame["i_year"] = rng.integers(1990, 2026, n)
        for size, name in ((4, "c_region"), (30, "c_country"), (300, "c_product"), (20_000, "c_store")):
            frame[name] = levels[size][rng.choice(size, n, p=weights[size])]
        frame["b_member"] = rng.random(n) < 0.35
        frame["d_seen"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
            rng.integers(0, 5 * 365 * 24 * 3600, n), unit="s"
        )
        count = rng.integers(3, 9, n)
        picks = words[rng.integers(0, len(words), (n, 8))]
        frame["t_note"] = [" ".join(row[:k]) for row, k in zip(picks, count, strict=True)]
        frame["k_order"] = [f"O{v:012d}" for v in rng.integers(0, 10**12, n)]
        if previous is not None:  # 1% of the rows repeat a row of the chunk before
            repeat = np.flatnonzero(rng.random(n) < 0.01)
            source = rng.integers(0, len(previous), len(repeat))
            for name in frame.columns:
                column = frame[name].to_numpy(copy=True)
                column[repeat] = previous[name].to_numpy()[source]
                frame[name] = column
        previous = frame
        yield frame


def write_table(path: Path, rows: int) -> dict:
    from mlstages.components.common.dataset_files import write_batches

    return write_batches(chunks(rows), path)


# Run in a fresh interpreter per measurement; prints one JSON line.
_MEASURE = r"""
import json, os, resource, sys, time

def peak_rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def current_rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

mode, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(sys.argv[4], "tests"))
import numpy as np, pandas as pd
from mlstages.components.common.dataset_files import iter_batches, read_dataset
from mlstages.components.validate_data.config import ValidationConfig
from mlstages.components.validate_data.streaming import StatisticsAccumulator
from mlstages.components.validate_data.validate_data import validate_dataset
from statistics_before_streaming import compute_statistics as statistics_before
baseline = current_rss()
cpu, started = time.process_time(), time.perf_counter()
extra = {}
if mode == "whole":
    frame = read_dataset(path)
    document = statistics_before(frame)
elif mode == "streamed":
    accumulator = StatisticsAccumulator()
    for batch in iter_batches(path):
        accumulator.update(batch, start=int(batch.index[0]))
    document = accumulator.result()
elif mode == "validate":
    result = validate_dataset(path, ValidationConfig(policy="warn"))
    document = result.statistics
    extra = {"anomalies": [f"{a.kind}:{a.column}" for a in result.anomalies], "value_check_rows": result.value_check_rows}
seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
with open(out, "w") as handle:
    json.dump(document, handle, allow_nan=False)
print(json.dumps({"mode": mode, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss": peak_rss(), "baseline_rss": baseline, **extra}))
"""

# Checks the streamed document against the whole table, column by column (one column in memory
# at a time); prints one JSON line.
_ACCURACY = r"""
import json, sys
import numpy as np, pandas as pd
path, whole_file, streamed_file = sys.argv[1:4]
whole = json.load(open(whole_file)); streamed = json.load(open(streamed_file))
levels = {"p01": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99}
report = {"exact_equal": [], "differs": [], "mean_rel": 0.0, "std_rel": 0.0, "quantile_rank_excess": 0.0,
          "worst_rank_error_used": 0.0, "stated_rank_error_max": 0.0, "distinct_rel": {}, "histogram_within": True,
          "outliers_within": True, "duplicates": [whole["dataset"]["duplicate_rows"], streamed["dataset"]["duplicate_rows"]]}
exact_keys = ("logical_type", "dtype", "count", "missing", "missing_share", "infinite", "min", "max", "zeros_share")
for name, w in whole["columns"].items():
    s = streamed["columns"][name]
    same = all(w.get(k) == s.get(k) for k in exact_keys if k in w)
    (report["exact_equal"] if same else report["differs"]).append(name)
    if w["distinct"]:
        report["distinct_rel"][name] = abs(s["distinct"] - w["distinct"]) / w["distinct"]
    if w["logical_type"] != "numeric" or w["mean"] is None:
        if "top_values" in w and w["top_values"] != s["top_values"]:
            error = s.get("estimates", {}).get("top_values", {}).get("count_error", 0)
            true = {t["value"]: t["count"] for t in w["top_values"]}
            for t in s["top_values"]:
                if t["value"] in true and not (true[t["value"]] - error <= t["count"] <= true[t["value"]]):
                    report["differs"].append(name + ".top_values")
        continue
    report["mean_rel"] = max(report["mean_rel"], abs(s["mean"] - w["mean"]) / abs(w["mean"]))
    report["std_rel"] = max(report["std_rel"], abs(s["std"] - w["std"]) / abs(w["std"]))
    values = pd.read_parquet(path, columns=[name])[name].to_numpy(dtype="float64")
    values = np.sort(values[np.isfinite(values)])
    n = len(values)
    stated = s.get("estimates", {}).get("quantiles", {}).get("rank_error", 0.0)
    report["stated_rank_error_max"] = max(report["stated_rank_error_max"], stated)
    for key, level in levels.items():
        value = s["quantiles"][key]
        below, at_most = np.searchsorted(values, value, "left"), np.searchsorted(values, value, "right")
        # The distance from the level to the value's rank interval, as a share of the values; an
        # exact quantile interpolates between two neighbours, so it may miss by one value (1 / n).
        miss = max(0.0, below / n - level, level - at_most / n)
        report["worst_rank_error_used"] = max(report["worst_rank_error_used"], miss)
        report["quantile_rank_excess"] = max(report["quantile_rank_excess"], miss - max(stated, 1.0 / n))
    if "histogram" in s.get("estimates", {}):
        true_counts = np.histogram(values, bins=s["histogram"]["edges"])[0]
        error = np.abs(np.array(s["histogram"]["counts"]) - true_counts).max()
        report["histogram_within"] &= bool(error <= s["estimates"]["histogram"]["count_error"])
    if s.get("outlier_bounds") and "outliers" in s.get("estimates", {}):
        lower, upper = s["outlier_bounds"]["lower"], s["outlier_bounds"]["upper"]
        true = int(((values < lower) | (values > upper)).sum()) + s["infinite"]
        report["outliers_within"] &= bool(abs(true - s["outliers"]) <= s["estimates"]["outliers"]["count_error"])
print(json.dumps(report))
"""


def run(code: str, *args: str, python: str = sys.executable) -> dict:
    completed = subprocess.run(
        [python, "-c", code, *args], capture_output=True, text=True, env={**os.environ, "MLSTAGES_CPUS": "1"}
    )
    if completed.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _mib(value: float) -> str:
    return f"{value / (1 << 20):,.0f} MiB"


def write_results(results: dict) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "streaming_statistics.json").write_text(json.dumps(results, indent=2) + "\n")
    runs = results["runs"]
    whole, streamed, validate = runs["whole"], runs["streamed"], runs["validate"]
    accuracy = results["accuracy"]
    lines = [
        "# Streaming statistics (issue 15 item 2)",
        "",
        *(["**Quick smoke run**", ""] if results.get("mode") == "quick" else []),
        f"{results['date']}, {results['machine']}; {results['rows']:,} rows x 25 columns "
        f"({results['parquet_bytes'] / (1 << 20):,.0f} MiB of Parquet, {results['pandas_bytes'] / (1 << 30):.1f} GiB "
        "as a pandas DataFrame); `MLSTAGES_CPUS=1`; one run of each, in a fresh interpreter.",
        "",
        f"Load average (1 min) at the start and end: {results['load'][0]:.1f}, {results['load'][1]:.1f} on "
        "2 shared cores: other work ran beside the benchmark, so wall times are noisy; CPU times are the "
        "steadier figure.",
        "",
        "| path | wall time | CPU time | peak RSS | above baseline |",
        "|---|---|---|---|---|",
    ]
    for label, item in (
        ("whole table: read_dataset + compute_statistics before streaming", whole),
        ("streamed: StatisticsAccumulator over iter_batches", streamed),
        ("validate_dataset end to end (statistics, schema, checks, sample)", validate),
    ):
        lines.append(
            f"| {label} | {item['seconds']:.0f} s | {item['cpu_seconds']:.0f} s | {_mib(item['peak_rss'])} | "
            f"{_mib(item['peak_rss'] - item['baseline_rss'])} |"
        )
    verdict = "MET" if validate["peak_rss"] < TARGET_PEAK_BYTES else "MISS"
    lines += [
        "",
        f"Peak RSS streamed / whole: {streamed['peak_rss'] / whole['peak_rss']:.2f}; wall time streamed / whole: "
        f"{streamed['seconds'] / whole['seconds']:.2f}. Target (issue 15: under 4 GiB at 50M x 25): {verdict} at "
        f"{results['rows']:,} rows for validate_dataset ({_mib(validate['peak_rss'])}).",
        "",
        "## Accuracy of the streamed figures against the whole table",
        "",
        f"- exact figures (type, dtype, count, missing, infinite, min, max, zeros) equal on "
        f"{len(accuracy['exact_equal'])} of 25 columns{'; differ: ' + ', '.join(accuracy['differs']) if accuracy['differs'] else ''};",
        f"- duplicate rows: whole {accuracy['duplicates'][0]:,}, streamed {accuracy['duplicates'][1]:,};",
        f"- mean: largest relative difference {accuracy['mean_rel']:.1e}; std: {accuracy['std_rel']:.1e} (Chan's "
        "combination against numpy's two-pass figures);",
        f"- quantiles p01..p99: stated rank error at most {accuracy['stated_rank_error_max']:.2e} of the values; the "
        f"worst true rank distance found {accuracy['worst_rank_error_used']:.2e} "
        f"({'within' if accuracy['quantile_rank_excess'] <= 0 else 'OUTSIDE'} the stated bound);",
        f"- histogram counts within their stated error: {accuracy['histogram_within']}; outlier counts: "
        f"{accuracy['outliers_within']};",
        "- distinct counts, largest relative difference: "
        + (f"{max(accuracy['distinct_rel'].values()):.2%}" if accuracy["distinct_rel"] else "n/a")
        + " (the estimate's stated relative standard error is 0.78%).",
        "",
        f"Anomalies found by validate_dataset: {', '.join(validate.get('anomalies') or []) or 'none'}; its type "
        f"checks read {validate.get('value_check_rows') or 'every'} rows.",
        "",
        "Reproduce: `.venv/bin/python benchmarks/bench_streaming_statistics.py"
        + (f" --rows {results['rows']}" if results["rows"] != FULL_ROWS else "")
        + "`.",
        "",
    ]
    scale = results.get("scale") or {}
    if scale:
        lines += [
            "## Larger tables, streamed only",
            "",
            "The same table generator; the whole-table path is not run: above, it peaked at "
            f"{whole['peak_rss'] / results['pandas_bytes']:.2f} x the table's pandas size.",
            "",
            "| rows | Parquet | as pandas | path | wall time | CPU time | peak RSS | load average |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for rows, item in sorted(scale.items(), key=lambda pair: int(pair[0])):
            for mode in ("streamed", "validate"):
                run_ = item["runs"][mode]
                lines.append(
                    f"| {int(rows):,} | {item['parquet_bytes'] / (1 << 30):.1f} GiB | "
                    f"{item['pandas_bytes'] / (1 << 30):.0f} GiB | {mode} | {run_['seconds']:.0f} s | "
                    f"{run_['cpu_seconds']:.0f} s | {_mib(run_['peak_rss'])} | {item['load'][0]:.1f}, {item['load'][1]:.1f} |"
                )
        lines += [
            "",
            "Reproduce: `.venv/bin/python benchmarks/bench_streaming_statistics.py --rows ROWS --streamed-only` "
            f"({', '.join(f'{int(r):,}' for r in sorted(scale, key=int))}); measured {', '.join(i['date'] for i in scale.values())}.",
            "",
        ]
    (RESULTS_DIR / "streaming_statistics.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    parser.add_argument("--workdir", help="keep the dataset here (default: a temporary folder)")
    parser.add_argument(
        "--streamed-only",
        action="store_true",
        help="measure the streamed paths only and add them to the existing results as a scale row",
    )
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else args.rows
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-stats-"))
    data = workdir / "data"
    try:
        if not (data / "_dataset.json").exists():
            print(f"writing {rows:,} rows to {data} ...", flush=True)
            write_table(data, rows)
        parquet_bytes = sum(p.stat().st_size for p in data.glob("*.parquet"))
        head = next(iter(chunks(min(rows, 100_000))))
        pandas_bytes = int(head.memory_usage(deep=True, index=False).sum() / len(head) * rows)
        load = [os.getloadavg()[0]]
        runs = {}
        for mode in ("streamed", "validate") if args.streamed_only else ("streamed", "whole", "validate"):
            print(f"measuring {mode} ...", flush=True)
            runs[mode] = run(_MEASURE, mode, str(data), str(workdir / f"{mode}.json"), str(ROOT))
            print(json.dumps(runs[mode]), flush=True)
        load.append(os.getloadavg()[0])
        if args.streamed_only:
            results = json.loads((RESULTS_DIR / "streaming_statistics.json").read_text())
            results.setdefault("scale", {})[str(rows)] = {
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                "parquet_bytes": parquet_bytes,
                "pandas_bytes": pandas_bytes,
                "runs": runs,
                "load": load,
            }
            write_results(results)
            print((RESULTS_DIR / "streaming_statistics.md").read_text())
            return
        accuracy = run(_ACCURACY, str(data), str(workdir / "whole.json"), str(workdir / "streamed.json"))
        results = {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "rows": rows,
            "parquet_bytes": parquet_bytes,
            "pandas_bytes": pandas_bytes,
            "runs": runs,
            "accuracy": accuracy,
            "load": load,
            "mode": "quick" if args.quick else "full",
        }
        write_results(results)
        print((RESULTS_DIR / "streaming_statistics.md").read_text())
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
