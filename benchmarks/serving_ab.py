"""The model server of two checkouts side by side: server CPU time and throughput per request.

Wall-clock requests/s is noisy on a shared machine (other work takes the cores in bursts); the CPU
time the server process spends per request much less so (a server that waits for a core uses
none; what remains is the cost of caches shared with the other work). So
the main figure here is the server's CPU milliseconds per request: utime + stime of the server and
every process below it, read from ``/proc/<pid>/stat`` just before and after a batch of requests
(plus the cutime + cstime of children it has reaped). Wall-clock throughput is reported beside it.

Each checkout must have its own ``.venv`` (``make install``); its server runs with that
interpreter (``serve_in_background(..., python=...)``: ``python -m mlstages.components.serving``,
one worker, 127.0.0.1), so it serves with that checkout's code. In a pair both servers run at once
on the same model, bench_serving's ``export_suite_model`` and ``export_floor_model``, trained once
by this checkout. For each protocol, each server's first answer is checked and it is warmed up
(bench_serving's ``sequential``), then one client sends single-row requests (V1:
``/v1/models/NAME:predict`` with one instance; V2: ``/v2/models/NAME/infer``) over one persistent
connection per server, ``BLOCK_REQUESTS`` to one server and then as many to the other, the leading
server alternating from block to block and from pair to pair. A server is idle while the other
answers, so its CPU time over the run is that of its own requests, and both see the same load on
the machine at the same time: a burst of other work lands on both sides of the ratio. A pair's
ratio is after / before for each figure; the medians of the pair ratios are reported.

Usage:
    .venv/bin/python benchmarks/serving_ab.py --before /work/wt-before --after .
    .venv/bin/python benchmarks/serving_ab.py --before ../old --pairs 2 --requests 500 --no-write

Writes benchmarks/results/serving_ab.json and serving_ab.md (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
sys.path.insert(0, str(HERE))

import bench_serving  # noqa: E402  (this folder is no package)

from mlstages.components.serving.process import serve_in_background  # noqa: E402

PROTOCOLS = ("v1", "v2")
WARM_UP_REQUESTS = 200
# Requests sent to one server before the client turns to the other.
BLOCK_REQUESTS = 100
# Ticks of /proc/<pid>/stat's CPU times.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_ticks(pid: int, with_reaped: bool) -> int:
    """utime + stime of ``pid`` (and cutime + cstime of its reaped children), in clock ticks."""
    with open(f"/proc/{pid}/stat") as handle:
        # The command name (field 2) may hold spaces; the fields after it are plain numbers.
        fields = handle.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15, cutime and cstime 16, 17.
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by the server ``pid`` and every process below it."""
    import psutil

    ticks = _stat_ticks(pid, with_reaped=True)
    for child in psutil.Process(pid).children(recursive=True):
        try:
            ticks += _stat_ticks(child.pid, with_reaped=True)
        except (FileNotFoundError, ProcessLookupError):
            pass  # exited between the listing and the read: its time is in its parent's cutime
    return ticks / CLOCK_TICKS


def _bodies(model_dir: Path) -> tuple[dict[str, list[bytes]], list]:
    """Each protocol's single-row bodies (every third penguin) and the prediction expected for the
    first, made with this checkout's client and model."""
    from palmerpenguins import load_penguins

    from mlstages.components.serving.model_dir import load_model_dir

    model, card = load_model_dir(str(model_dir))
    features = list(card.input_features)
    data = load_penguins()[[f.name for f in features]]
    singles = [data.iloc[[i]] for i in range(0, len(data), 3)]
    bodies = {p: [bench_serving._body(p, row, features) for row in singles] for p in PROTOCOLS}
    return bodies, model.predict(singles[0]).tolist()


def interleaved_run(checkouts: dict[str, Path], model_dir: Path, requests: int, first: str) -> dict[str, Any]:
    """Both checkouts' servers at once on ``model_dir``; for each protocol, blocks of
    ``BLOCK_REQUESTS`` requests go to one and then the other (``first`` leads the odd blocks, the
    other the even ones) until each has answered ``requests``. A server is idle while the other
    answers, so its CPU time over the whole run is the CPU time of its own requests, and both see
    the same load on the machine."""
    bodies, expected = _bodies(model_dir)
    sides = list(checkouts)
    results: dict[str, Any] = {side: {} for side in sides}
    with ExitStack() as stack:
        servers = {
            side: stack.enter_context(
                serve_in_background(
                    str(model_dir), "bench", python=checkouts[side] / ".venv" / "bin" / "python"
                )
            )
            for side in sides
        }
        for protocol in PROTOCOLS:
            connections, paths = {}, {}
            for side, server in servers.items():
                # Checks the first answer against the in-process prediction, then warms up.
                bench_serving.sequential(server, protocol, bodies[protocol], 1, expected, WARM_UP_REQUESTS)
                url = server.v1_predict_url if protocol == "v1" else server.v2_infer_url
                paths[side] = url.removeprefix(server.base_url)
                connections[side] = stack.enter_context(closing(bench_serving._Connection(server.base_url)))
            seconds: dict[str, list[float]] = {side: [] for side in sides}
            walls = dict.fromkeys(sides, 0.0)
            cpu_before = {side: server_cpu_seconds(server.pid) for side, server in servers.items()}
            order = [first, *(s for s in sides if s != first)]
            for block in range(-(-requests // BLOCK_REQUESTS)):
                for side in order if block % 2 == 0 else order[::-1]:
                    count = min(BLOCK_REQUESTS, requests - block * BLOCK_REQUESTS)
                    started = time.perf_counter()
                    for i in range(block * BLOCK_REQUESTS, block * BLOCK_REQUESTS + count):
                        begin = time.perf_counter()
                        answer = connections[side].post(
                            paths[side], bodies[protocol][i % len(bodies[protocol])]
                        )
                        seconds[side].append(time.perf_counter() - begin)
                        if len(bench_serving._predictions(answer, protocol)) != 1:
                            raise RuntimeError(f"{side} {protocol}: wrong number of predictions")
                    walls[side] += time.perf_counter() - started
            for side, server in servers.items():
                cpu = server_cpu_seconds(server.pid) - cpu_before[side]
                summary = bench_serving._summary(seconds[side], walls[side])
                summary["cpu_ms_per_request"] = cpu * 1000 / requests
                results[side][protocol] = summary
    return results


def _git(checkout: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _commit(checkout: Path) -> str:
    line = _git(checkout, "log", "-1", "--format=%h %s") or "unknown"
    return line if len(line) <= 90 else line[:89] + "…"


# bench_serving's exporters. "suite": the model the suite exports, trained once with this checkout;
# its transformers run each checkout's own code, so their speed counts too. "floor": a
# DummyClassifier on the raw columns (plain scikit-learn, the same in both), whose figures are the
# server's own cost: HTTP, routing, middleware, logging, decoding the rows.
MODELS = ("suite", "floor")


def compare(before: Path, after: Path, pairs: int, requests: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "requests_per_run": requests,
        "checkouts": {
            side: {
                "path": str(path),
                "commit": _commit(path),
                "dirty": bool(_git(path, "status", "--porcelain", "--untracked-files=no")),
            }
            for side, path in (("before", before), ("after", after))
        },
        "pairs": [],
    }
    exporters = {"suite": bench_serving.export_suite_model, "floor": bench_serving.export_floor_model}
    with tempfile.TemporaryDirectory(prefix="serving-ab-") as scratch:
        model_dirs = {model: exporters[model](Path(scratch) / model) for model in MODELS}
        for index in range(pairs):
            order = ("before", "after") if index % 2 == 0 else ("after", "before")
            pair: dict[str, Any] = {"order": list(order), "load_average_at_start": os.getloadavg()[0]}
            for model in MODELS:
                runs = interleaved_run(
                    {"before": before, "after": after}, model_dirs[model], requests, order[0]
                )
                for protocol in PROTOCOLS:
                    b, a = runs["before"][protocol], runs["after"][protocol]
                    runs[f"{protocol}_cpu_ratio"] = a["cpu_ms_per_request"] / b["cpu_ms_per_request"]
                    runs[f"{protocol}_rps_ratio"] = a["requests_per_second"] / b["requests_per_second"]
                pair[model] = runs
                print(_pair_line(index + 1, model, order, runs), flush=True)
            report["pairs"].append(pair)
    report["medians"] = {model: _medians([p[model] for p in report["pairs"]]) for model in MODELS}
    return report


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    medians = {}
    for protocol in PROTOCOLS:
        for side in ("before", "after"):
            for figure, key in (("cpu_ms", "cpu_ms_per_request"), ("rps", "requests_per_second")):
                medians[f"{protocol}_{side}_{figure}"] = statistics.median(
                    r[side][protocol][key] for r in runs
                )
        for figure in ("cpu", "rps"):
            medians[f"{protocol}_{figure}_ratio"] = statistics.median(
                r[f"{protocol}_{figure}_ratio"] for r in runs
            )
    return medians


def _pair_line(number: int, model: str, order: tuple[str, ...], runs: dict[str, Any]) -> str:
    parts = [f"pair {number}, {model} ({' then '.join(order)}):"]
    for protocol in PROTOCOLS:
        b, a = runs["before"][protocol], runs["after"][protocol]
        parts.append(
            f"{protocol} cpu {b['cpu_ms_per_request']:.3f} -> {a['cpu_ms_per_request']:.3f} ms "
            f"({runs[f'{protocol}_cpu_ratio']:.2f}), {b['requests_per_second']:.0f} -> "
            f"{a['requests_per_second']:.0f} req/s ({runs[f'{protocol}_rps_ratio']:.2f});"
        )
    return " ".join(parts)


def _table(report: dict[str, Any], model: str) -> list[str]:
    lines = [
        "| pair | order | V1 CPU ms before | after | ratio | V1 req/s before | after | ratio "
        "| V2 CPU ms before | after | ratio | V2 req/s before | after | ratio |",
        "|---|---|" + "---:|" * 12,
    ]
    for number, pair in enumerate(report["pairs"], 1):
        runs = pair[model]
        cells = [str(number), " → ".join(pair["order"])]
        for protocol in PROTOCOLS:
            b, a = runs["before"][protocol], runs["after"][protocol]
            cells += [
                f"{b['cpu_ms_per_request']:.3f}",
                f"{a['cpu_ms_per_request']:.3f}",
                f"{runs[f'{protocol}_cpu_ratio']:.2f}",
                f"{b['requests_per_second']:.0f}",
                f"{a['requests_per_second']:.0f}",
                f"{runs[f'{protocol}_rps_ratio']:.2f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    medians = report["medians"][model]
    cells = ["**median**", ""]
    for protocol in PROTOCOLS:
        cells += [
            f"{medians[f'{protocol}_before_cpu_ms']:.3f}",
            f"{medians[f'{protocol}_after_cpu_ms']:.3f}",
            f"**{medians[f'{protocol}_cpu_ratio']:.2f}**",
            f"{medians[f'{protocol}_before_rps']:.0f}",
            f"{medians[f'{protocol}_after_rps']:.0f}",
            f"**{medians[f'{protocol}_rps_ratio']:.2f}**",
        ]
    lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    checkouts = report["checkouts"]
    loads = [p["load_average_at_start"] for p in report["pairs"]]
    lines = [
        "# Model server, two checkouts side by side (`serving_ab.py`)",
        "",
        f"Generated {report['generated']} on {report['cpus']} CPUs shared with other work (1-minute load "
        f"average {min(loads):.1f} to {max(loads):.1f} at the start of the pairs). **before**: "
        f"`{checkouts['before']['commit']}`; **after**: `{checkouts['after']['commit']}`"
        + (" (with uncommitted changes)" if checkouts["after"]["dirty"] else "")
        + f". {len(report['pairs'])} pairs; in each, both checkouts' servers (one worker each, 127.0.0.1) "
        f"run at once and answer {report['requests_per_run']:,} single-row V1 requests (one instance) "
        f"each and then {report['requests_per_run']:,} single-row V2 requests each, after "
        f"{WARM_UP_REQUESTS} of each to warm up, from one client over one persistent connection per "
        f"server, in blocks of {BLOCK_REQUESTS} that alternate between the two servers (the order "
        "column says which led the first block).",
        "",
        "CPU ms/request: the server process tree's utime + stime over the run (`/proc/<pid>/stat`) / "
        "requests; it moves much less with the machine's load than wall time does, and the interleaved "
        "blocks give both sides the same load. Ratios are after / "
        "before within a pair; the last row holds the medians of each column and of the pair ratios.",
        "",
    ]
    notes = {
        "suite": "The penguins model the suite exports (trained once, by the after checkout); each checkout "
        "unpickles it with its own transformers, so their speed is part of the figures.",
        "floor": "A DummyClassifier on the same raw columns (plain scikit-learn, identical in both): its "
        "predict costs almost nothing, so these figures are the server's own cost per request.",
    }
    for model in MODELS:
        lines += [f"## `{model}` model", "", notes[model], "", *_table(report, model), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="the checkout to compare against (with its .venv)")
    parser.add_argument(
        "--after", type=Path, default=HERE.parent, help="the checkout measured (default: this one)"
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="requests per protocol per run")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true", help="print the table, write no results")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="print the Markdown of a serving_ab.json again"
    )
    args = parser.parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(args.render.read_text())))
        return 0
    if args.before is None:
        parser.error("--before CHECKOUT is required")
    report = compare(args.before.resolve(), args.after.resolve(), args.pairs, args.requests)
    markdown = render_markdown(report)
    if not args.no_write:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        (args.results_dir / "serving_ab.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.results_dir / "serving_ab.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
