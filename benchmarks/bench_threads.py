"""The train stage's time with the machine idle and busy: the suite's thread choice, the whole
allowance, and 1 thread.

Every task caps BLAS, OpenMP and joblib threads at its CPU allowance (components/common/threads.py):
the pod's CPU limit, the cgroup quota, ``$MLSTAGES_CPUS`` or the CPUs the process may run on. This
benchmark shows what that allowance costs or saves when other processes compete for the same
cores, which is the normal state of a laptop or a shared node.

Each measurement is a fresh interpreter that does what the train component does: ``limit_threads()``
first, then preprocess's split and transformer, then ``train()`` (the search, the baselines and
the refit), timed from the start of ``train()``. Two workloads:

- ``penguins``: the built-in dataset (about 240 training rows), default settings: every family,
  halving search. Small fits, where threads hardly help.
- ``synthetic``: seeded synthetic regression rows (20 numeric, 3 categorical columns), the
  gradient_boosting family only (OpenMP-parallel HistGradientBoosting), halving over 4 candidates.

Conditions: ``idle`` (nothing else started by the benchmark: other users of a shared machine are
not controlled, so quote the ratios of one run) and ``busy`` (one pure-Python busy loop per CPU of
the allowance, started a minute before each measurement, so that the load average sees them, and
stopped after it). Threads: ``auto`` (the default: the allowance, or fewer when the load average
leaves fewer CPUs idle), ``allowance`` (``MLSTAGES_CPUS`` set to the allowance: every thread it
permits, whatever the load) and ``1`` (``MLSTAGES_CPUS=1``).

Usage:
    .venv/bin/python benchmarks/bench_threads.py              # 1 run per cell, 50,000 synthetic rows
    .venv/bin/python benchmarks/bench_threads.py --repeats 3  # the median of 3 runs per cell
    .venv/bin/python benchmarks/bench_threads.py --quick      # 5,000 synthetic rows, no penguins

Writes benchmarks/results/threads.json and threads.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKLOADS = ("penguins", "synthetic")
THREADS = ("auto", "allowance", "1")
BUSY_WARMUP_SECONDS = 60.0
CONDITIONS = ("idle", "busy")
# A busy loop that ends with the benchmark, even when the benchmark is killed: it checks its
# parent every million iterations.
BUSY_LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6):\n        pass\n"


def _penguins() -> tuple[Any, str, dict[str, Any]]:
    import io

    import pandas as pd

    from mlstages.tooling.local import builtin_dataset_csv

    return pd.read_csv(io.BytesIO(builtin_dataset_csv())), "species", {}


def _synthetic(rows: int) -> tuple[Any, str, dict[str, Any]]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    numeric = rng.normal(size=(rows, 20))
    df = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(20)])
    for i, levels in enumerate((5, 20, 60)):
        df[f"c{i}"] = rng.integers(0, levels, size=rows).astype(str)
    df["y"] = (
        numeric[:, 0] * 2
        + np.sin(numeric[:, 1] * 3)
        + numeric[:, 2] * numeric[:, 3]
        + df["c1"].astype(int) / 10
        + rng.normal(scale=0.5, size=rows)
    )
    settings = {"model_families": ("gradient_boosting",), "n_iter": 4}
    return df, "y", settings


def child(workload: str, rows: int) -> dict[str, Any]:
    """One measurement, in this (fresh) interpreter, as the train component runs."""
    from mlstages.components.common.threads import limit_threads

    cpus = limit_threads()
    from mlstages.components.common.labels import detect_task
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.train import train

    df, label, settings = _penguins() if workload == "penguins" else _synthetic(rows)
    task = detect_task(df[label])
    prepared = preprocess(df, PreprocessConfig(label_column=label, task=task))
    started = time.perf_counter()
    result = train(
        prepared.train, prepared.preprocessor, TrainConfig(label_column=label, task=task, **settings)
    )
    return {
        "seconds": time.perf_counter() - started,
        "threads": cpus,
        "train_rows": result.train_rows,
        "best_family": result.best_family,
    }


def measure(workload: str, rows: int, threads: str, condition: str, allowance: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("MLSTAGES_CPUS", None)
    if threads != "auto":
        env["MLSTAGES_CPUS"] = "1" if threads == "1" else str(allowance)
    burners = []
    if condition == "busy":
        burners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(allowance)]
        time.sleep(BUSY_WARMUP_SECONDS)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", workload, "--rows", str(rows)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    return json.loads(out.strip().splitlines()[-1])


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# The train stage, machine idle and busy (issue 12 item 8)",
        "",
        f"Measured {meta['when']} on {meta['platform']} ({meta['cpus']} CPUs allowed; allowance "
        f"{meta['allowance']} threads), median of {meta['repeats']} run(s) per cell, each in a fresh "
        "interpreter that calls `limit_threads()` and then preprocess and `train()` as the component does. "
        "busy: one busy loop per allowed CPU. Seconds of `train()` (search, baselines, refit).",
        "",
        "| workload | train rows | threads | threads used (idle, busy) | idle s | busy s | busy / idle |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["cells"]:
        lines.append(
            f"| {row['workload']} | {row['train_rows']:,} | {row['threads']} | {row['idle_threads']}, "
            f"{row['busy_threads']} | {row['idle']:.1f} | {row['busy']:.1f} | {row['busy'] / row['idle']:.2f} |"
        )
    lines += ["", "Against one thread (seconds / seconds at 1 thread):", ""]
    for workload in WORKLOADS:
        cells = {r["threads"]: r for r in result["cells"] if r["workload"] == workload}
        for threads in ("auto", "allowance"):
            if threads in cells and "1" in cells:
                a, one = cells[threads], cells["1"]
                lines.append(
                    f"- {workload}, {threads}: idle {a['idle'] / one['idle']:.2f}, "
                    f"busy {a['busy'] / one['busy']:.2f}"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell (the median is kept)")
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
        return 0

    from mlstages.components.common.threads import cpu_allowance

    allowance = cpu_allowance()
    rows = 5_000 if args.quick else 50_000
    repeats = max(1, args.repeats)
    cells = []
    for workload in ("synthetic",) if args.quick else WORKLOADS:
        for threads in THREADS:
            cell: dict[str, Any] = {"workload": workload, "threads": threads}
            for condition in CONDITIONS:
                runs = [measure(workload, rows, threads, condition, allowance) for _ in range(repeats)]
                cell[condition] = statistics.median(r["seconds"] for r in runs)
                cell[f"{condition}_runs"] = [round(r["seconds"], 2) for r in runs]
                cell["train_rows"] = runs[0]["train_rows"]
                cell[f"{condition}_threads"] = runs[0]["threads"]
                print(f"{workload} threads={threads} {condition}: {cell[condition]:.1f}s", flush=True)
            cells.append(cell)
    result = {
        "meta": {
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "allowance": allowance,
            "repeats": repeats,
            "quick": args.quick,
        },
        "cells": cells,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "threads.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = render(result)
    (RESULTS_DIR / "threads.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
