"""Run every benchmark in this folder (each ``bench_*.py``), one after another: `make bench`.

Each benchmark runs in its own interpreter with ``--quick`` passed through when given, writes its
results under benchmarks/results/, and prints them. A benchmark that misses a target still exits 0
(its results say MISS); one that fails (a crash, a non-zero exit) makes this script exit 1 after
the others have run.

Usage:
    .venv/bin/python benchmarks/run_all.py                     # every benchmark, full size
    .venv/bin/python benchmarks/run_all.py --quick             # every benchmark, smoke size
    .venv/bin/python benchmarks/run_all.py --only pipeline     # bench_pipeline.py only
    make bench ARGS="--quick --only gcs_ingest --only pipeline"
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent


def discover(directory: Path = BENCHMARKS_DIR) -> list[Path]:
    """The benchmark scripts in ``directory``, by name."""
    return sorted(directory.glob("bench_*.py"))


def benchmark_name(script: Path) -> str:
    return script.stem.removeprefix("bench_")


def select(scripts: list[Path], only: list[str]) -> list[Path]:
    """The scripts named by ``only`` (with or without the bench_ prefix); all when it is empty."""
    if not only:
        return scripts
    by_name = {benchmark_name(s): s for s in scripts}
    wanted = [name.removeprefix("bench_").removesuffix(".py") for name in only]
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise SystemExit(
            f"--only: no benchmark named {', '.join(map(repr, unknown))} in {BENCHMARKS_DIR}; "
            f"there are: {', '.join(sorted(by_name))}"
        )
    return [by_name[name] for name in dict.fromkeys(wanted)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark (e.g. pipeline or bench_pipeline); repeatable",
    )
    args = parser.parse_args(argv)
    scripts = select(discover(), args.only)
    if not scripts:
        print(f"no bench_*.py in {BENCHMARKS_DIR}", file=sys.stderr)
        return 1
    outcomes: list[tuple[str, int, float]] = []
    for script in scripts:
        command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"\n=== {script.name}{' --quick' if args.quick else ''}", flush=True)
        started = time.monotonic()
        returncode = subprocess.run(command, check=False).returncode
        outcomes.append((script.name, returncode, time.monotonic() - started))
    print("\n=== summary")
    for name, returncode, seconds in outcomes:
        status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
        print(f"{name:<28} {status:<20} {seconds:7.1f} s")
    print(f"Results: {BENCHMARKS_DIR / 'results'}")
    return 0 if all(returncode == 0 for _, returncode, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
