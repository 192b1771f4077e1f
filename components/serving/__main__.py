"""``python -m mlstages.components.serving``: serve one model directory with KServe's model server.

    python -m mlstages.components.serving --model_uri gs://bucket/models/penguins/VERSION \\
        --model_name penguins [--http_port 8080] [--grpc_port 8081] [--host 0.0.0.0]

KServe's conventions are honoured, because the ``mlstages-sklearn`` ServingRuntime starts this
module with them: ``--model_dir`` names the model directory (KServe's storage initializer
downloads the InferenceService's ``storageUri`` into ``/mnt/models`` and the runtime passes
``--model_dir=/mnt/models``), ``--model_name`` the name in the routes, ``--http_port`` the port.
With neither ``--model_uri`` nor ``--model_dir``, the model is read from $STORAGE_URI, else from
/mnt/models; a local ``--model_dir`` that does not exist while $STORAGE_URI is set (the image run
without KServe's storage initializer) also reads $STORAGE_URI directly.

The host defaults to $MLSTAGES_SERVING_HOST, else 127.0.0.1; the serving image sets 0.0.0.0.

``--prediction_log gs://bucket/prefix`` (default: $MLSTAGES_PREDICTION_LOG, which the ServingRuntime
can set; off when neither is given) logs every scored request there as Parquet shards, the
"current" data that monitoring reads (see prediction_log.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

KSERVE_MODEL_DIR = "/mnt/models"
STORAGE_URI_ENV = "STORAGE_URI"
HOST_ENV = "MLSTAGES_SERVING_HOST"
REQUEST_LOG_ENV = "MLSTAGES_REQUEST_LOG"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from mlstages.components.serving.app import DEFAULT_HTTP_PORT, DEFAULT_MAX_BODY_BYTES
    from mlstages.components.serving.log_format import PREDICTION_LOG_ENV
    from mlstages.components.serving.prediction_log import DEFAULT_MAX_ROWS, DEFAULT_MAX_SECONDS

    parser = argparse.ArgumentParser(
        prog="python -m mlstages.components.serving",
        description="Serve an mlstages model directory (model.joblib + metadata.json) with KServe.",
        allow_abbrev=False,
    )
    parser.add_argument("--model_uri", help="the model directory: gs://bucket/prefix, file:// or a path")
    parser.add_argument("--model_dir", help="KServe's name for the same (the runtime passes /mnt/models)")
    parser.add_argument("--model_name", default="model", help="the model's name in the routes")
    parser.add_argument("--http_port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument(
        "--grpc_port", type=int, default=None, help="enable KServe's V2 gRPC server (only with host 0.0.0.0)"
    )
    parser.add_argument("--host", default=os.environ.get(HOST_ENV, "127.0.0.1"), help="interface to bind")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--prediction_log",
        default=os.environ.get(PREDICTION_LOG_ENV, "").strip() or None,
        help=f"log scored requests as Parquet shards under this gs:// prefix or folder (${PREDICTION_LOG_ENV})",
    )
    parser.add_argument(
        "--prediction_log_max_rows", type=int, default=DEFAULT_MAX_ROWS, help="rows per shard at most"
    )
    parser.add_argument(
        "--prediction_log_max_seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="a shard is written at least this often while requests arrive",
    )
    parser.add_argument(
        "--request_log",
        choices=("on", "off"),
        default=os.environ.get(REQUEST_LOG_ENV, "on").strip() or "on",
        help=f"one log line per request (on), or only server errors (off) (${REQUEST_LOG_ENV})",
    )
    args = parser.parse_args(argv)
    if args.request_log not in ("on", "off"):  # a default from the environment is not checked by argparse
        parser.error(f"${REQUEST_LOG_ENV}={args.request_log!r} must be 'on' or 'off'")
    return args


def resolve_model_uri(args: argparse.Namespace, environ: dict[str, str] | None = None) -> str:
    """Where the model is: --model_uri, --model_dir, $STORAGE_URI, then /mnt/models."""
    from mlstages.components.common import storage

    environ = dict(os.environ) if environ is None else environ
    storage_uri = environ.get(STORAGE_URI_ENV, "").strip()
    chosen = args.model_uri or args.model_dir
    if not chosen:
        return storage_uri or KSERVE_MODEL_DIR
    if storage_uri and not storage.is_gcs_uri(chosen) and not storage.to_local_path(chosen).exists():
        return storage_uri
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    from mlstages.components.common.errors import MlstagesError
    from mlstages.components.serving.app import serve

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model_uri = resolve_model_uri(args)
    try:
        serve(
            model_uri,
            args.model_name,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            workers=args.workers,
            max_body_bytes=args.max_body_bytes,
            prediction_log=args.prediction_log,
            prediction_log_max_rows=args.prediction_log_max_rows,
            prediction_log_max_seconds=args.prediction_log_max_seconds,
            request_log=args.request_log == "on",
            port_option="--http_port",
            host_option="--host",
        )
    except MlstagesError as exc:
        print(f"mlstages serving: cannot serve {model_uri}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
