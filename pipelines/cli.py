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
