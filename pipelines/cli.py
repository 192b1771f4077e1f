"""The `mlstages` command line: run pipelines locally and compile them for a cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlstages.pipelines import catalog


def _run(args: argparse.Namespace) -> int:
    from mlstages.pipelines import local

    params_file = args.params or catalog.pipeline_params_path(args.pipeline)
    params = local.load_params(params_file, args.set or [])
    if args.data:
        params["data_uri"] = args.data
    report = local.run_pipeline(args.pipeline, params, workdir=Path(args.workdir))
    print(local.format_report(report))
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from mlstages.pipelines import local

    params = local.load_params(args.params or catalog.pipeline_params_path("monitoring"), args.set or [])
    report = local.monitor(
        params,
        data=args.data,
        drift=not args.no_drift,
        seed=args.seed,
        workdir=Path(args.workdir),
    )
    print(local.format_monitor_report(report))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mlstages.components.common import registry
    from mlstages.components.serving.server import serve
    from mlstages.pipelines import local

    with local.object_store(Path(args.workdir), print) as bucket:
        model_uri = args.model
        if not model_uri:
            champion = registry.read_champion(f"gs://{bucket}/models", args.name)
            if champion is None:
                print(
                    f"mlstages: error: no model given and no champion for {args.name!r} in "
                    f"gs://{bucket}/models; run `make run` first or pass a model URI",
                    file=sys.stderr,
                )
                return 2
            model_uri = champion["model_uri"]
        base = f"http://{args.host}:{args.port}"
        print(f"Serving {model_uri} as {args.name!r} on {base} (Ctrl-C to stop)")
        json_header = "-H 'Content-Type: application/json'"
        print(f"  V1: curl -s {json_header} {base}/v1/models/{args.name}:predict -d @request-v1.json")
        print(f"  V2: curl -s {json_header} {base}/v2/models/{args.name}/infer -d @request-v2.json")
        print("  (request formats: README.md, 'The blessing gate and serving')")
        if args.prediction_log:
            print(f"  logging scored rows to {args.prediction_log} (Parquet shards)")
        serve(model_uri, args.name, host=args.host, http_port=args.port, prediction_log=args.prediction_log)
    return 0


def _compile(args: argparse.Namespace) -> int:
    from mlstages.pipelines import compile as compiling

    if args.check:
        stale = compiling.stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(catalog.REPO_ROOT)}")
        if stale:
            print("Run `mlstages compile` (or `make compile`) and commit the result.")
            return 1
        print("All compiled YAML and generated READMEs are up to date.")
        return 0
    if args.settings:
        for path in compiling.compile_for_cluster(args.settings, args.output_dir, registry=args.registry):
            print(f"wrote {path}")
        return 0
    changed = compiling.write_all(registry=args.registry)
    for path in changed:
        print(f"wrote {path.relative_to(catalog.REPO_ROOT)}")
    print(f"{len(changed)} file(s) changed.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mlstages.components import __version__

    parser = argparse.ArgumentParser(
        prog="mlstages",
        description="Kubeflow Pipelines components for every stage of the ML lifecycle.",
    )
    parser.add_argument("--version", action="version", version=f"mlstages {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a pipeline locally with kfp.local and the embedded object store",
        description="Run a pipeline on this machine through the KFP local runner. Without --data, "
        "the built-in dataset is uploaded to the embedded object store and read from gs://.",
    )
    run.add_argument("pipeline", nargs="?", default="training", choices=sorted(catalog.PIPELINES))
    run.add_argument("--params", type=Path, help="YAML parameter file (default: the pipeline's own)")
    run.add_argument(
        "--set", action="append", metavar="NAME=VALUE", help="override one parameter (repeatable)"
    )
    run.add_argument(
        "--data", metavar="URI", help="data to train on: a path, gs://, http(s):// or database URL"
    )
    run.add_argument("--workdir", default=".mlstages", help="folder for runs and the embedded store")
    run.set_defaults(handler=_run)

    mon = commands.add_parser(
        "monitor",
        help="run the monitoring pipeline locally: drift check, retrain when needed",
        description="Run the monitoring pipeline on this machine: compare a window of current data "
        "with the champion's training reference, and retrain through the training pipeline (blessing "
        "gate included) when it drifted. Without a champion, the training pipeline runs first. "
        "Without --data, a drifted window is simulated from the built-in dataset (shifted bill, "
        "flipper and body mass, a changed island mix); --no-drift simulates a stable one.",
    )
    mon.add_argument("--params", type=Path, help="YAML parameter file (default: params/monitoring.yaml)")
    mon.add_argument(
        "--set", action="append", metavar="NAME=VALUE", help="override one parameter (repeatable)"
    )
    window = mon.add_mutually_exclusive_group()
    window.add_argument("--data", metavar="URI", help="the window to monitor: a path, gs:// or http(s)://")
    window.add_argument(
        "--no-drift", action="store_true", help="simulate a window without drift (the stable case)"
    )
    mon.add_argument("--seed", type=int, default=7, help="seed of the simulated window")
    mon.add_argument("--workdir", default=".mlstages", help="folder for runs and the embedded store")
    mon.set_defaults(handler=_monitor)

    srv = commands.add_parser(
        "serve",
        help="serve a model with the suite's KServe model server on this machine",
        description="Serve a model directory (model.joblib + metadata.json) with the KServe model "
        "server the cluster runs: V1 and Open Inference Protocol V2 over HTTP. Without a model "
        "URI, serves the current champion of --name from the local registry.",
    )
    srv.add_argument("model", nargs="?", help="gs://bucket/models/NAME/VERSION or a local folder")
    srv.add_argument("--name", default="penguins", help="model name in the URL (and the registry)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    srv.add_argument("--port", type=int, default=8080, help="HTTP port")
    srv.add_argument("--workdir", default=".mlstages", help="folder of the embedded store")
    srv.add_argument(
        "--prediction-log",
        metavar="URI",
        help="append scored rows and predictions as Parquet shards under this gs:// prefix or folder",
    )
    srv.set_defaults(handler=_serve)

    comp = commands.add_parser(
        "compile", help="compile every component and pipeline to KFP YAML and regenerate READMEs"
    )
    comp.add_argument("--registry", help="image registry prefix to compile into the YAML")
    comp.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    comp.add_argument(
        "--settings",
        type=Path,
        help="platform settings YAML (resources, secrets, caching): compile the pipelines for a "
        "cluster into --output-dir instead of regenerating the committed files",
    )
    comp.add_argument("--output-dir", type=Path, default=Path("build"), help="where --settings output goes")
    comp.set_defaults(handler=_compile)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mlstages.components.common.errors import MlstagesError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except MlstagesError as exc:
        print(f"mlstages: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
