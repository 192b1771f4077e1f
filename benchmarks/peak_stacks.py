"""Where each stage's memory goes: the in-process path of bench_scale (the components' function
bodies in one process) with a thread that samples this process's RSS every 10 ms and, whenever a
stage's RSS grows by another ``--step-mb`` or reaches a new peak, records the Python stack the
main thread is in. So a stage's peak comes with the line that reached it, and its growth with the
lines that made it.

Usage (after bench_scale.py has cached the data; one run, a few minutes at 1M rows):
    .venv/bin/python benchmarks/peak_stacks.py --rows 1000000
    .venv/bin/python benchmarks/peak_stacks.py --rows 1000000 --stage train --stage preprocess

Prints, per stage: RSS at its start, its peak and the stack there, and each growth step. The
RSS is this process's only (a model server validate_model or deploy starts is not in it). Before
each stage glibc is asked to give the memory earlier stages freed back to the system
(malloc_trim), so a stage's growth shows; what a stage reuses of memory still held does not.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from process_tree import THREAD_VARIABLES
from scale_paths import StageClock, run_in_process
from synthetic_data import write_chunked

_PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
# The libraries whose frames are worth naming; the rest (threading, runpy) are noise.
_LIBRARIES = ("sklearn", "pandas", "pyarrow", "numpy", "joblib")
# The suite's own code: the repository's components/ (an editable install maps mlstages there).
_SUITE = str(Path(__file__).resolve().parent.parent) + os.sep


def _malloc_trim() -> None:
    """glibc's malloc_trim(0): return the heap's free memory to the system (no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss() -> int:
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[1]) * _PAGE


def _stack(frame: Any, suite_depth: int = 4, library_depth: int = 2) -> list[str]:
    """The innermost ``suite_depth`` frames of the suite's code and the innermost
    ``library_depth`` frames of its libraries below them, outermost first."""
    frames = traceback.extract_stack(frame)
    suite = [
        i
        for i, f in enumerate(frames)
        if f.filename.startswith(_SUITE)
        and not any(part in f.filename for part in ("/.venv/", "/benchmarks/"))
    ]
    last = suite[-1] if suite else -1
    libraries = [f for f in frames[last + 1 :] if any(f"/{name}/" in f.filename for name in _LIBRARIES)]
    kept = [frames[i] for i in suite[-suite_depth:]] + libraries[-library_depth:]
    return [f"{_short(f.filename)}:{f.lineno} {f.name}: {(f.line or '').strip()}" for f in kept]


def _short(filename: str) -> str:
    for name in _LIBRARIES:
        marker = f"/{name}/"
        if marker in filename:
            return name + "/" + filename.split(marker, 1)[1]
    return filename.removeprefix(_SUITE)


class PeakRecorder(StageClock):
    """A StageClock whose stages are watched by a sampling thread (module docstring)."""

    def __init__(self, step_bytes: int, wanted: set[str]) -> None:
        super().__init__()
        self.step_bytes = step_bytes
        self.wanted = wanted
        self.current: str | None = None
        self.report: dict[str, dict[str, Any]] = {}
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def run(self, key: str, function: Any) -> Any:
        stage = key.split(".", 1)[1]
        watched = not self.wanted or stage in self.wanted
        _malloc_trim()  # what earlier stages freed goes back to the system: each stage starts lower
        if watched:
            self.report[key] = {"start_rss": _rss(), "peak_rss": 0, "peak_stack": [], "steps": []}
            self.current = key
        try:
            return super().run(key, function)
        finally:
            self.current = None

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            key = self.current
            if key is None:
                continue
            item = self.report[key]
            rss = _rss()
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            last = item["steps"][-1]["rss"] if item["steps"] else item["start_rss"]
            if rss >= last + self.step_bytes:
                item["steps"].append({"rss": rss, "stack": _stack(frame, 2, 1)})
            if rss > item["peak_rss"]:
                item["peak_rss"] = rss
                item["peak_stack"] = _stack(frame)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stage", action="append", default=[], help="watch only these stages (repeatable)")
    parser.add_argument(
        "--step-mb", type=int, default=100, help="record the stack every time RSS grows this much"
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "mlstages-bench-scale"
    )
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLSTAGES_MEMORY_MB", str(args.memory_mb))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    data_path, _ = write_chunked(args.workdir / "data", args.rows)
    recorder = PeakRecorder(args.step_mb * MIB, set(args.stage))
    with tempfile.TemporaryDirectory(prefix="peak-stacks-", dir=args.workdir) as scratch:
        run_in_process(data_path, Path(scratch), time.monotonic(), clock=recorder)
    recorder.stop()
    for key, item in recorder.report.items():
        print(
            f"\n== {key}: {item['start_rss'] / MIB:,.0f} MiB at its start, peak {item['peak_rss'] / MIB:,.0f} MiB "
            f"(+{(item['peak_rss'] - item['start_rss']) / MIB:,.0f})"
        )
        print("   at the peak:")
        for line in item["peak_stack"]:
            print(f"     {line}")
        for step in item["steps"]:
            print(f"   reached {step['rss'] / MIB:,.0f} MiB in: {' <- '.join(reversed(step['stack']))}")
    if args.json:
        args.json.write_text(json.dumps(recorder.report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
