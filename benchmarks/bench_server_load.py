"""The model server under 200 concurrent clients (issue 13): requests/s, latency, errors, log bytes.

The server runs as in production (``python -m mlstages.components.serving``, started by
``serve_in_background``, request log on) on the penguins model the suite exports (preprocess,
engineer_features and a logistic regression: bench_serving's ``suite`` model, whose feature
pipeline takes its compiled fast path). 200 asyncio clients, each
on its own connection, send requests back to back for a fixed time: 70% good V1 single rows, 10%
good V2 single rows, and 20% bad requests (a V1 row of the wrong width, a V2 INT64 tensor holding
2008.5, an unknown model), as a public endpoint sees them. Reported: requests/s, p50/p99 latency
of the good requests, 5xx answers, connection errors, and the bytes of log written.

The clients share the machine's cores with the server (2 here), so requests/s is a floor for the
server, not its ceiling.

Usage:
    .venv/bin/python benchmarks/bench_server_load.py           # 200 clients, 30 s
    .venv/bin/python benchmarks/bench_server_load.py --quick   # 200 clients, 5 s

Writes benchmarks/results/server_load.json and server_load.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from bench_serving import LABEL, export_suite_model

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLIENTS = 200


def request_mix(rows) -> list[tuple[str, str, dict | None, bool]]:
    """(method, path, body, good) for 30 requests in the proportions of the module docstring."""
    from mlstages.components.common.model_card import InputFeature
    from mlstages.components.serving.client import v1_request, v2_request

    features = list(rows.columns)
    kinds = [InputFeature(n, "categorical" if rows[n].dtype == object else "numeric") for n in features]
    v1 = v1_request(rows.head(1), features)
    v2 = v2_request(rows.head(1), kinds)
    v2_bad = json.loads(json.dumps(v2))
    for tensor in v2_bad["inputs"]:
        if tensor["name"] == "year":
            tensor.update(datatype="INT64", data=[2008.5])
    bad = [
        ("POST", "/v1/models/penguins:predict", {"instances": [[1, 2]]}, False),
        ("POST", "/v2/models/penguins/infer", v2_bad, False),
        ("GET", "/v1/models/no-such-model", None, False),
    ]
    return (
        [("POST", "/v1/models/penguins:predict", v1, True)] * 21
        + [("POST", "/v2/models/penguins/infer", v2, True)] * 3
        + bad * 2
    )


async def _client(http, base: str, mix, stop_at: float, results: list, offset: int) -> None:
    import aiohttp

    i = offset
    while time.monotonic() < stop_at:
        method, path, body, good = mix[i % len(mix)]
        i += 1
        began = time.perf_counter()
        try:
            async with http.request(method, base + path, json=body) as answer:
                await answer.read()
                results.append((good, answer.status, time.perf_counter() - began))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            results.append((good, type(exc).__name__, time.perf_counter() - began))


async def _load(base: str, mix, seconds: float) -> tuple[list, float]:
    import aiohttp

    results: list = []
    # One connection per client, as 200 separate callers would hold.
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        started = time.monotonic()
        await asyncio.gather(
            *(_client(http, base, mix, started + seconds, results, k) for k in range(CLIENTS))
        )
    return results, time.monotonic() - started


def measure(model_dir: Path, rows, seconds: float) -> dict:
    from mlstages.components.serving.process import serve_in_background

    mix = request_mix(rows)
    with tempfile.TemporaryDirectory() as logs:
        with serve_in_background(str(model_dir), "penguins", log_dir=logs) as server:
            before = server.log_path.stat().st_size
            results, elapsed = asyncio.run(_load(server.base_url, mix, seconds))
            log_bytes = server.log_path.stat().st_size - before
    statuses = [status for _, status, _ in results]
    good = np.array([latency for ok, status, latency in results if ok and status == 200]) * 1000
    wrong_good = sum(1 for ok, status, _ in results if ok and status != 200)
    wrong_bad = sum(
        1 for ok, status, _ in results if not ok and not (isinstance(status, int) and 400 <= status < 500)
    )
    return {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "requests": len(results),
        "requests_per_second": round(len(results) / elapsed, 1),
        "good_p50_ms": round(float(np.percentile(good, 50)), 1) if len(good) else None,
        "good_p99_ms": round(float(np.percentile(good, 99)), 1) if len(good) else None,
        "server_errors_5xx": sum(1 for s in statuses if isinstance(s, int) and s >= 500),
        "connection_errors": sum(1 for s in statuses if not isinstance(s, int)),
        "good_not_200": wrong_good,
        "bad_not_4xx": wrong_bad,
        "log_bytes": log_bytes,
        "log_bytes_per_1000_requests": round(log_bytes * 1000 / max(len(results), 1)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else 30.0
    from palmerpenguins import load_penguins

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = export_suite_model(Path(scratch) / "model")
        rows = load_penguins().drop(columns=[LABEL]).dropna().reset_index(drop=True).head(20)
        result = measure(model_dir, rows, seconds)
    meta = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "server_load.json").write_text(
        json.dumps({"meta": meta, "result": result}, indent=2) + "\n"
    )
    rows_md = "\n".join(f"| {key} | {value} |" for key, value in result.items())
    text = (
        "# The model server under 200 concurrent clients (issue 13)\n\n"
        f"Measured {meta['when']} on {meta['platform']} ({meta['cpus']} CPUs, load average after "
        f"{meta['load_average_after']}): {CLIENTS} asyncio clients for {result['seconds']} s, 70% good V1 "
        "single rows, 10% good V2, 20% bad requests (wrong row width, INT64 holding 2008.5, unknown "
        "model), request log on. The clients share the cores with the server. Latency is for the good "
        "requests, client side.\n\n| measure | value |\n|---|---|\n" + rows_md + "\n"
    )
    (RESULTS_DIR / "server_load.md").write_text(text)
    print(text)
    return 0 if result["server_errors_5xx"] == 0 and result["connection_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
