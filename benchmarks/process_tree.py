"""Measuring a process tree from /proc: peak RSS and CPU time of a command and all its children."""

from __future__ import annotations

import array
import bisect
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_paths import SAMPLE_INTERVAL_SECONDS

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far: user + system) of every process in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces; fields follow the ')'.
        # fields[0] is field 3 (state): the parent is field 4, utime and stime fields 14 and 15.
        fields = stat[stat.rfind(b")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return table


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def _process_label(pid: int) -> str:
    """A short name for a process of the tree: the kfp task it runs, or its program."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return "?"
    if "--function_to_execute" in argv:
        index = argv.index("--function_to_execute")
        if index + 1 < len(argv):
            program = "python" if "python" in Path(argv[0]).name else Path(argv[0]).name
            return f"task:{argv[index + 1]} ({program})"
    if not argv:
        return "?"
    return Path(argv[0]).name + (f" {argv[1]}" if len(argv) > 1 and argv[1].startswith("-m") else "")


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants until stopped.

    Also keeps, per process, its label, its peak RSS, when it was first and last seen (on
    ``time.monotonic``, the same clock in every process), and its CPU seconds at the last sample
    (so up to one interval of CPU before it exits is missed). A kfp task's process (label
    ``task:...``) also gets ``subtree_peak_rss_bytes``: the highest summed RSS of it and every
    process it started (a model server, joblib workers), sampled together, so a task's peak is
    the task's whatever process holds it. Summed RSS counts pages shared between processes
    (libraries, copy-on-write pages) once per process, so it slightly overstates the tree's
    memory. The machine's 1-minute load average is kept at every sample (``loads``).
    """

    def __init__(self, root_pid: int, interval: float = SAMPLE_INTERVAL_SECONDS) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval = interval
        self.peak_bytes = 0
        self.peak_processes: list[dict[str, Any]] = []
        self.samples = 0
        self.processes: dict[int, dict[str, Any]] = {}
        self.loads: list[float] = []
        # Every sample's time (time.monotonic) and summed RSS, compactly: hours of samples.
        self.times = array.array("d")
        self.totals = array.array("q")
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak_between(self, start: float, end: float) -> int | None:
        """The highest summed RSS sampled between two ``time.monotonic`` times (None: no sample)."""
        first = bisect.bisect_left(self.times, start)
        last = bisect.bisect_right(self.times, end)
        return max(self.totals[first:last]) if last > first else None

    def sample(self) -> None:
        now = time.monotonic()
        children: dict[int, list[int]] = {}
        table = _process_table()
        for pid, (parent, _) in table.items():
            children.setdefault(parent, []).append(pid)
        # Each process with the kfp task process it descends from (itself, for a task), if any.
        tree: list[tuple[int, int | None]] = []
        queue: list[tuple[int, int | None]] = [(self.root_pid, None)]
        while queue:
            pid, task = queue.pop()
            record = self.processes.get(pid)
            if record is None:
                record = {"label": "?", "peak_rss_bytes": 0, "first_seen": now, "last_seen": now}
                self.processes[pid] = record
            if not record["label"].startswith("task:"):
                # Read again until it names a task: a process caught between fork and exec still
                # shows its parent's command line.
                label = _process_label(pid) if pid in table else "?"
                record["label"] = label if label != "?" else record["label"]
            if record["label"].startswith("task:"):
                task = pid
            tree.append((pid, task))
            queue.extend((child, task) for child in children.get(pid, ()))
        total = 0
        current = []
        task_totals: dict[int, int] = {}
        for pid, task in tree:
            rss = _rss_bytes(pid)
            if rss is None:
                continue
            total += rss
            record = self.processes[pid]
            record["peak_rss_bytes"] = max(record["peak_rss_bytes"], rss)
            record["last_seen"] = now
            if pid in table:
                record["cpu_seconds"] = table[pid][1]
            if task is not None:
                task_totals[task] = task_totals.get(task, 0) + rss
            current.append((pid, rss))
        for task, task_total in task_totals.items():
            record = self.processes[task]
            record["subtree_peak_rss_bytes"] = max(record.get("subtree_peak_rss_bytes", 0), task_total)
        self.loads.append(os.getloadavg()[0])
        self.times.append(now)
        self.totals.append(total)
        self.samples += 1
        if total > self.peak_bytes:
            self.peak_bytes = total
            self.peak_processes = [
                {"label": self.processes[pid]["label"], "rss_bytes": rss} for pid, rss in current
            ]


# Variables that cap the threads of numpy's BLAS (OpenBLAS, MKL) and of OpenMP.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def measure(
    path: str,
    data_path: Path,
    workdir: Path,
    blas_threads: int = 1,
    *,
    script: str = "bench_pipeline.py",
    extra_environment: dict[str, str] | None = None,
    windows_of: Callable[[dict[str, Any]], dict[str, tuple[float, float]]] | None = None,
) -> dict[str, Any]:
    """Run one path in a fresh interpreter, sampling its process tree; return its measurements.

    The path runs as ``<script> --measure PATH --data ... --workdir ... --result-file ...`` (a
    script in this folder). ``blas_threads`` > 0 caps BLAS/OpenMP threads in the path's processes
    (every kfp.local task inherits the environment); 0 leaves the libraries' defaults.
    ``extra_environment`` is set in the path's environment too. ``windows_of(result)`` names
    spans of ``time.monotonic`` in the path's result; ``window_peaks`` then holds the tree's peak
    summed RSS in each.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    result_file = workdir / "result.json"
    log_file = workdir / "output.log"
    script_path = Path(__file__).resolve().parent / script
    command = [sys.executable, str(script_path), "--measure", path, "--data", str(data_path)]
    command += ["--workdir", str(workdir), "--result-file", str(result_file)]
    environment = {k: v for k, v in os.environ.items() if k != "MLSTAGES_BUCKET"}
    environment["PYTHONUNBUFFERED"] = "1"
    if blas_threads > 0:
        environment.update({name: str(blas_threads) for name in THREAD_VARIABLES})
    environment.update(extra_environment or {})
    load_before = os.getloadavg()[0]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with open(log_file, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        sampler = TreeSampler(process.pid)
        sampler.start()
        returncode = process.wait()
        sampler.stop()
    process_seconds = time.monotonic() - started
    # RUSAGE_CHILDREN covers every descendant reaped so far: the path's process, its kfp.local
    # tasks and the object store, all waited for before the path's process exits.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"the {path} path failed (exit code {returncode}); log {log_file}:\n{tail}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["process_seconds"] = process_seconds
    result["cpu_seconds"] = (usage.ru_utime - usage_before.ru_utime) + (
        usage.ru_stime - usage_before.ru_stime
    )
    result["minor_page_faults"] = usage.ru_minflt - usage_before.ru_minflt
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    result["load_average_1min"]["sampled"] = _spread(sampler.loads)
    result["started_monotonic"] = started
    result["tree_peak_rss_bytes"] = sampler.peak_bytes
    result["tree_at_peak"] = sampler.peak_processes
    result["samples"] = sampler.samples
    result["processes"] = [
        {
            "label": record["label"],
            "peak_rss_bytes": record["peak_rss_bytes"],
            "seen_seconds": record["last_seen"] - record["first_seen"],
            "cpu_seconds": record.get("cpu_seconds"),
            "first_seen_offset": record["first_seen"] - started,
            "first_seen_monotonic": record["first_seen"],
            "last_seen_monotonic": record["last_seen"],
            **(
                {"subtree_peak_rss_bytes": record["subtree_peak_rss_bytes"]}
                if "subtree_peak_rss_bytes" in record
                else {}
            ),
        }
        for record in sorted(sampler.processes.values(), key=lambda r: r["first_seen"])
        if record["peak_rss_bytes"] > 0
    ]
    if windows_of is not None:  # after the processes: a window may be a process's lifetime
        result["window_peaks"] = {
            name: sampler.peak_between(start, end) for name, (start, end) in windows_of(result).items()
        }
    if path == "pipeline":
        result["task_seconds"] = kfp_task_seconds(log_file.read_text(encoding="utf-8", errors="replace"))
    result["log_file"] = str(log_file)
    return result


def _spread(values: list[float]) -> dict[str, float] | None:
    """Lowest, median and highest of the samples."""
    if not values:
        return None
    ordered = sorted(values)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


_KFP_LOG = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d{3}) - INFO - (Executing task|Task) '?([\w-]+)'?(.*)$")


def kfp_task_seconds(log_text: str) -> dict[str, float]:
    """Each task's wall time from kfp.local's log ('Executing task X' to 'Task X finished')."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for line in _ANSI.sub("", log_text).splitlines():
        match = _KFP_LOG.match(line.strip())
        if not match:
            continue
        hours, minutes, secs, kind, task, rest = match.groups()
        stamp = int(hours) * 3600 + int(minutes) * 60 + float(secs)
        if kind == "Executing task":
            started[task] = stamp
        elif "finished with status" in rest and task in started:
            seconds[task] = (stamp - started[task]) % 86400
    return seconds
