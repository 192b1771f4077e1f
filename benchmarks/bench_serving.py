"""Model server throughput and latency: mlstages' KServe server on 127.0.0.1, one worker.

Three models are served, one at a time, each by ``serve_in_background`` (the server in its own
process, exactly as infra validation and local deploys start it):

- ``suite``: the model the suite exports for the penguins (preprocess → engineer_features → train,
  logistic regression): one scikit-learn Pipeline with mlstages' own transformers (the compiled
  preprocessing plan, derived features, positional selection, arrays into the estimator).
- ``plain``: a plain scikit-learn Pipeline on the same raw columns (ColumnTransformer of imputers,
  scaler and one-hot encoder, then logistic regression): the kind of model KServe's stock sklearn
  runtime serves.
- ``floor``: a DummyClassifier on the same raw columns, whose predict costs almost nothing: what is
  measured is the server's own cost (HTTP, JSON, validating rows, building the DataFrame).

For each: single-row and 100-row requests, V1 and V2, sent sequentially from one client thread over
one persistent HTTP/1.1 connection (``http.client``; the bodies are serialized before the clock
starts), plus a run with a few client threads (one connection each) for single-row V1. Beside them,
``model.predict`` called in-process on the same rows: the ceiling that no server can beat. Every
response is checked (HTTP 200, one prediction per row; the first answer of each run equals the
in-process prediction).

Latencies are client-side wall times per request; throughput is requests / wall time of the run.
The client shares the machine's cores with the server (and, here, with other work: the load average
at the start is recorded), so these numbers are a floor for a dedicated pod.

Usage:
    .venv/bin/python benchmarks/bench_serving.py            # 3,000 single-row requests per run
    .venv/bin/python benchmarks/bench_serving.py --quick    # 300

Writes benchmarks/results/serving.json and benchmarks/results/serving.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import pandas as pd
from palmerpenguins import load_penguins
from threadpoolctl import threadpool_limits

from mlstages.components.common.artifacts import save_estimator
from mlstages.components.common.datasets import column_types
from mlstages.components.common.model_card import InputFeature
from mlstages.components.serving.client import v1_request, v2_request
from mlstages.components.serving.infra import latency_summary
from mlstages.components.serving.model_dir import load_model_dir
from mlstages.components.serving.process import serve_in_background

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LABEL = "species"
# Targets from the issue, for single-row requests with one worker.
TARGET_P99_MS = 5.0
TARGET_REQUESTS_PER_SECOND = 700.0
CLIENT_THREADS = 4
SIZES = {
    "full": {"single": 3000, "batch": 300, "concurrent": 3000},
    "quick": {"single": 300, "batch": 50, "concurrent": 300},
}


def export_suite_model(directory: Path) -> Path:
    from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.export import export_model
    from mlstages.components.train.train import train

    penguins = load_penguins()
    prepared = preprocess(penguins, PreprocessConfig(label_column=LABEL, task="classification", seed=0))
    features = engineer_features(
        prepared.train,
        prepared.preprocessor,
        FeatureConfig(
            label_column=LABEL,
            task="classification",
            derived=(
                {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]},
            ),
        ),
    )
    result = train(
        prepared.train,
        features.feature_pipeline,
        TrainConfig(
            label_column=LABEL,
            task="classification",
            model_families=("logistic_regression",),
            cv_folds=2,
            search_space={"logistic_regression": {"C": [1.0]}},
        ),
    )
    export_model(result, directory, column_types(prepared.train[result.input_columns]))
    return directory


def export_plain_model(directory: Path) -> Path:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    penguins = load_penguins()
    raw = penguins.drop(columns=[LABEL])
    numeric = [c for c in raw.columns if pd.api.types.is_numeric_dtype(raw[c])]
    categorical = [c for c in raw.columns if c not in numeric]
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                        (
                            "cat",
                            make_pipeline(
                                SimpleImputer(strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore"),
                            ),
                            categorical,
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(raw, penguins[LABEL])
    types = column_types(raw)
    save_estimator(
        model,
        directory,
        "model",
        {
            "task": "classification",
            "label_column": LABEL,
            "classes": model.classes_.tolist(),
            "input_features": [{"name": c, "type": types[c]} for c in raw.columns],
            "input_columns": types,
        },
    )
    return directory


def export_floor_model(directory: Path) -> Path:
    from sklearn.dummy import DummyClassifier

    penguins = load_penguins()
    raw = penguins.drop(columns=[LABEL])
    model = DummyClassifier(strategy="most_frequent").fit(raw, penguins[LABEL])
    types = column_types(raw)
    save_estimator(
        model,
        directory,
        "model",
        {
            "task": "classification",
            "label_column": LABEL,
            "classes": model.classes_.tolist(),
            "input_features": [{"name": c, "type": types[c]} for c in raw.columns],
            "input_columns": types,
        },
    )
    return directory


def in_process(model: Any, rows: pd.DataFrame, requests: int) -> dict[str, float]:
    for _ in range(min(20, requests)):
        model.predict(rows)
    seconds = []
    started = time.perf_counter()
    for _ in range(requests):
        begin = time.perf_counter()
        model.predict(rows)
        seconds.append(time.perf_counter() - begin)
    return _summary(seconds, time.perf_counter() - started)


def _summary(seconds: list[float], wall: float) -> dict[str, float]:
    summary = latency_summary(seconds)
    summary["requests_per_second"] = len(seconds) / wall
    return summary


class _Connection:
    """One persistent HTTP/1.1 connection; raises on anything but HTTP 200."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)

    def post(self, path: str, body: bytes) -> dict:
        self.connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: HTTP {response.status}: {data[:300]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.connection.close()


def _predictions(answer: dict, protocol: str) -> list:
    if protocol == "v1":
        return answer["predictions"]
    return next(o for o in answer["outputs"] if o["name"] == "predict")["data"]


def _body(protocol: str, rows: pd.DataFrame, features: list[InputFeature]) -> bytes:
    request = v1_request(rows, features) if protocol == "v1" else v2_request(rows, features)
    return json.dumps(request, allow_nan=False).encode()


def sequential(server, protocol: str, bodies: list[bytes], size: int, expected: list, requests: int) -> dict:
    path = server.v1_predict_url if protocol == "v1" else server.v2_infer_url
    path = path.removeprefix(server.base_url)
    connection = _Connection(server.base_url)
    try:
        first = _predictions(connection.post(path, bodies[0]), protocol)
        if first != expected:
            raise RuntimeError(f"{protocol}: served {first[:5]} but the model predicts {expected[:5]}")
        for i in range(min(50, requests)):  # warm-up
            connection.post(path, bodies[i % len(bodies)])
        seconds = []
        started = time.perf_counter()
        for i in range(requests):
            begin = time.perf_counter()
            answer = connection.post(path, bodies[i % len(bodies)])
            seconds.append(time.perf_counter() - begin)
            if len(_predictions(answer, protocol)) != size:
                raise RuntimeError(f"{protocol}: wrong number of predictions")
        return _summary(seconds, time.perf_counter() - started)
    finally:
        connection.close()


def concurrent(server, bodies: list[bytes], requests: int, threads: int) -> dict:
    path = server.v1_predict_url.removeprefix(server.base_url)
    per_thread = requests // threads
    results: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def client(index: int) -> None:
        connection = _Connection(server.base_url)
        try:
            connection.post(path, bodies[0])
            barrier.wait()
            for i in range(per_thread):
                begin = time.perf_counter()
                connection.post(path, bodies[(index + i) % len(bodies)])
                results[index].append(time.perf_counter() - begin)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    summary = _summary([s for r in results for s in r], wall)
    summary["client_threads"] = threads
    return summary


def bench_model(kind: str, model_dir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    model, card = load_model_dir(str(model_dir))
    features = list(card.input_features)
    names = [f.name for f in features]
    data = load_penguins()[names]
    singles = [data.iloc[[i]] for i in range(0, len(data), 3)]
    batch = data.sample(n=100, random_state=0)
    results: dict[str, Any] = {"model": kind, "sha256": card.sha256, "runs": {}}
    runs = results["runs"]
    runs["in_process_single_row"] = in_process(model, singles[0], sizes["single"])
    runs["in_process_100_rows"] = in_process(model, batch, sizes["batch"])
    with serve_in_background(str(model_dir), "bench") as server:
        for protocol in ("v1", "v2"):
            bodies = [_body(protocol, row, features) for row in singles]
            runs[f"{protocol}_single_row"] = sequential(
                server, protocol, bodies, 1, model.predict(singles[0]).tolist(), sizes["single"]
            )
            runs[f"{protocol}_100_rows"] = sequential(
                server,
                protocol,
                [_body(protocol, batch, features)],
                100,
                model.predict(batch).tolist(),
                sizes["batch"],
            )
        v1_bodies = [_body("v1", row, features) for row in singles]
        runs["v1_single_row_concurrent"] = concurrent(server, v1_bodies, sizes["concurrent"], CLIENT_THREADS)
    single = runs["v1_single_row"]
    results["targets"] = {
        "p99_ms_single_row_v1": {
            "value": single["p99"],
            "target": f"< {TARGET_P99_MS}",
            "met": single["p99"] < TARGET_P99_MS,
        },
        "requests_per_second_single_row_v1": {
            "value": single["requests_per_second"],
            "target": f">= {TARGET_REQUESTS_PER_SECOND:.0f}",
            "met": single["requests_per_second"] >= TARGET_REQUESTS_PER_SECOND,
        },
    }
    return results


def environment() -> dict[str, Any]:
    versions = {
        name: package_metadata.version(name)
        for name in ("kserve", "uvicorn", "fastapi", "scikit-learn", "pandas")
    }
    return {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "versions": versions,
        "server": "serve_in_background: python -m mlstages.components.serving, one uvicorn worker, 127.0.0.1",
    }


RUN_LABELS = {
    "in_process_single_row": "model.predict in-process, 1 row (ceiling)",
    "v1_single_row": "V1, 1 row",
    "v2_single_row": "V2, 1 row",
    "v1_single_row_concurrent": f"V1, 1 row, {CLIENT_THREADS} client threads",
    "in_process_100_rows": "model.predict in-process, 100 rows (ceiling)",
    "v1_100_rows": "V1, 100 rows",
    "v2_100_rows": "V2, 100 rows",
}


def render_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        "# Model server throughput and latency",
        "",
        f"Generated {env['generated']} on {env['cpus']} CPUs (load average at start "
        f"{', '.join(f'{x:.2f}' for x in env['load_average_at_start'])}), Python {env['python']}, "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f". Mode: {report['mode']}.",
        "",
        "The server is mlstages' KServe model server in its own process (one uvicorn worker) on 127.0.0.1; "
        "the client sends requests one after another over one persistent HTTP/1.1 connection (plus one run "
        f"with {CLIENT_THREADS} client threads). Latency is client-side wall time per request, in milliseconds; "
        "the client shares the machine's cores with the server.",
        "",
    ]
    for result in report["models"]:
        lines += [
            f"## `{result['model']}` model",
            "",
            MODEL_NOTES[result["model"]],
            "",
            "| run | requests | requests/s | p50 ms | p99 ms | mean ms | max ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, label in RUN_LABELS.items():
            run = result["runs"][key]
            lines.append(
                f"| {label} | {run['requests']:,} | {run['requests_per_second']:,.0f} | {run['p50']:.2f} | "
                f"{run['p99']:.2f} | {run['mean']:.2f} | {run['max']:.2f} |"
            )
        targets = result["targets"]
        p99, rps = targets["p99_ms_single_row_v1"], targets["requests_per_second_single_row_v1"]
        server_ms = result["runs"]["v1_single_row"]["p50"] - result["runs"]["in_process_single_row"]["p50"]
        lines += [
            "",
            f"- single-row V1 p99: **{p99['value']:.2f} ms** (target {p99['target']} ms: {'met' if p99['met'] else 'NOT met'})",
            f"- single-row V1 throughput: **{rps['value']:,.0f} requests/s** (target {rps['target']}: "
            f"{'met' if rps['met'] else 'NOT met'})",
            f"- the server's own share of a single-row V1 request (p50 served - p50 in-process): {server_ms:.2f} ms",
        ]
        ceiling = result["runs"]["in_process_single_row"]
        if ceiling["p99"] >= TARGET_P99_MS or ceiling["requests_per_second"] < TARGET_REQUESTS_PER_SECOND:
            lines.append(
                f"- out of reach for any server: model.predict on one row in-process already takes "
                f"{ceiling['p50']:.2f} ms at p50 and {ceiling['p99']:.2f} ms at p99 "
                f"({ceiling['requests_per_second']:,.0f} calls/s)"
            )
        lines.append("")
    return "\n".join(lines)


MODEL_NOTES = {
    "suite": "The Pipeline the suite exports (preprocess + engineer_features + logistic regression): mlstages' "
    "compiled preprocessing plan and derived features (CandidateFeatures), positional selection, arrays "
    "into the estimator. Its predict alone sets the ceiling.",
    "plain": "A plain scikit-learn Pipeline on the same raw columns (imputers, scaler, one-hot encoder, logistic "
    "regression): the kind of model KServe's stock sklearn runtime serves.",
    "floor": "A DummyClassifier (most frequent class) on the same raw columns: its predict costs almost nothing, so "
    "these rows are the server's own cost: HTTP, JSON, validating the rows and building the DataFrame.",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="300 single-row requests per run instead of 3,000"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    report: dict[str, Any] = {
        "environment": environment(),
        "mode": "quick" if args.quick else "full",
        "sizes": sizes,
    }
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch, threadpool_limits(limits=1):
        report["models"] = []
        for kind, export in (
            ("suite", export_suite_model),
            ("plain", export_plain_model),
            ("floor", export_floor_model),
        ):
            model_dir = export(Path(scratch) / kind)
            print(f"benchmarking the {kind} model ...", flush=True)
            report["models"].append(bench_model(kind, model_dir, sizes))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    (args.results_dir / "serving.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
