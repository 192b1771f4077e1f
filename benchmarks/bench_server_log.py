"""Bytes of server log written per 1,000 bad requests (issue 13 item 5), request log on and off.

The model server runs as in production (``python -m mlstages.components.serving``, started by
``serve_in_background``) on the suite's penguins model; 1,000 client errors are sent: a V1 row of
the wrong width (400), a V2 INT64 tensor holding 2008.5 (400) and an unknown model (404), in turn.
The log written while they are answered is measured, and one good request checks the server.

Before the bounded log, KServe 0.21 wrote about 2.8 KB of traceback and three lines per 4xx.

Usage:
    .venv/bin/python benchmarks/bench_server_log.py           # 1,000 requests per setting
    .venv/bin/python benchmarks/bench_server_log.py --quick   # 100

Writes benchmarks/results/server_log.json and server_log.md.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def penguins_model(directory: Path) -> tuple[Path, object]:
    import pandas as pd

    from mlstages.components.common.datasets import column_types
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.export import export_model
    from mlstages.components.train.train import train
    from mlstages.tooling.local import builtin_dataset_csv

    df = pd.read_csv(io.BytesIO(builtin_dataset_csv()))
    prepared = preprocess(df, PreprocessConfig(label_column="species", task="classification"))
    config = TrainConfig(
        label_column="species", task="classification", model_families=("logistic_regression",), n_iter=1
    )
    result = train(prepared.train, prepared.preprocessor, config)
    export_model(result, directory, column_types(prepared.train[result.input_columns]))
    return directory, prepared.test[result.input_columns]


def measure(model_dir: Path, rows, count: int, request_log: bool) -> dict[str, float]:
    from mlstages.components.common.model_card import InputFeature
    from mlstages.components.serving.client import v1_request, v2_request
    from mlstages.components.serving.process import local_session, serve_in_background

    features = list(rows.columns)
    kinds = [InputFeature(n, "categorical" if rows[n].dtype == object else "numeric") for n in features]
    v2_bad = v2_request(rows.head(1), kinds)
    for tensor in v2_bad["inputs"]:
        if tensor["name"] == "year":
            tensor.update(datatype="INT64", data=[2008.5])
    with tempfile.TemporaryDirectory() as logs, local_session() as http:
        with serve_in_background(str(model_dir), "penguins", log_dir=logs, request_log=request_log) as server:
            before = server.log_path.stat().st_size
            statuses = []
            for i in range(count):
                if i % 3 == 0:
                    answer = http.post(server.v1_predict_url, json={"instances": [[1, 2]]}, timeout=30)
                elif i % 3 == 1:
                    answer = http.post(server.v2_infer_url, json=v2_bad, timeout=30)
                else:
                    answer = http.get(f"{server.base_url}/v1/models/no-such-model", timeout=30)
                statuses.append(answer.status_code)
            good = http.post(server.v1_predict_url, json=v1_request(rows.head(1), features), timeout=30)
            written = server.log_path.stat().st_size - before
    assert all(400 <= s < 500 for s in statuses) and good.status_code == 200, (set(statuses), good.text)
    return {"requests": count, "bytes": written, "bytes_per_1000": written * 1000 / count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    count = 100 if args.quick else 1000
    with tempfile.TemporaryDirectory() as scratch:
        model_dir, rows = penguins_model(Path(scratch) / "model")
        results = {setting: measure(model_dir, rows, count, setting == "on") for setting in ("on", "off")}
    meta = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
    }
    (RESULTS_DIR / "server_log.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    lines = [
        "# Server log per 1,000 bad requests (issue 13 item 5)",
        "",
        f"Measured {meta['when']} on {meta['platform']}: {count:,} client errors (400 wrong row width, 400 "
        "INT64 holding 2008.5, 404 unknown model, in turn) to `python -m mlstages.components.serving`.",
        "KServe 0.21 alone wrote a ~2.8 KB traceback and three lines per 4xx (about 3 MB per 1,000).",
        "",
        "| request log | bytes written | bytes per 1,000 bad requests |",
        "|---|---|---|",
        *(f"| {k} | {v['bytes']:,} | {v['bytes_per_1000']:,.0f} |" for k, v in results.items()),
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS_DIR / "server_log.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
