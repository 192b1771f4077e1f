"""The `mlstages` command line: run pipelines locally, compile them for a cluster, submit and
schedule them on Kubeflow Pipelines, and look after the model registry."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlstages.tooling import catalog, cron, kfp_runs, kfp_target, registry_admin, workdir

if TYPE_CHECKING:
    from mlstages.tooling import kubeflow


def _run(args: argparse.Namespace) -> int:
    from mlstages.components.common.registry import model_name_for
    from mlstages.tooling import local, platform

    # Your data starts from defaults that fit any table; no data means the built-in dataset.
    default_file = catalog.pipeline_params_path if args.data else catalog.builtin_params_path
    params = local.load_params(args.params or default_file(args.pipeline), args.set or [])
    if args.data:
        params["data_uri"] = args.data
        if "model_name" not in params and "model_name" in local.declared_params(args.pipeline):
            params["model_name"] = model_name_for(args.data)
    settings = platform.load_settings(args.settings) if args.settings else None
    _precheck(args.pipeline, params)
    workdir.check_workdir(args.workdir)
    report = local.run_pipeline(
        args.pipeline, params, workdir=Path(args.workdir), verbose=args.verbose, settings=settings
    )
    print(local.format_report(report))
    return 0


def _precheck(pipeline: str, params: dict, filled_later: tuple[str, ...] = ("data_uri",)) -> None:
    """Every parameter a stage would refuse, refused before any task runs (one line, exit 2).

    ``filled_later``: the data parameters the command fills in itself when they are not given,
    with the built-in dataset (or a window simulated from it): its columns are checked instead."""
    from mlstages.tooling import local, precheck

    local.check_params(pipeline, dict.fromkeys(filled_later, "") | params)
    arguments, previews = local.typed_params(pipeline, params), {}
    for name in filled_later:
        if not arguments.get(name):
            arguments[name] = local.BUILTIN_DATASET_NAME
            label = arguments.get("label_column")
            previews[local.BUILTIN_DATASET_NAME] = precheck.preview_frame(
                local.BUILTIN_DATASET_NAME, local.builtin_dataset(), label if isinstance(label, str) else ""
            )
    precheck.check_pipeline(pipeline, arguments, previews)


def _monitor(args: argparse.Namespace) -> int:
    from mlstages.tooling import local

    params = local.load_params(args.params or catalog.pipeline_params_path("monitoring"), args.set or [])
    # The registry defaults to the embedded store's; the window and the training data to the
    # built-in dataset (a window simulated from it).
    given = {**params, **({"current_uri": args.data} if args.data else {})}
    _precheck("monitoring", {"model_registry": "", **given}, filled_later=("data_uri", "current_uri"))
    workdir.check_workdir(args.workdir)
    report = local.monitor(
        params,
        data=args.data,
        drift=not args.no_drift,
        seed=args.seed,
        workdir=Path(args.workdir),
        verbose=args.verbose,
    )
    print(local.format_monitor_report(report))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mlstages.components.common import registry, storage
    from mlstages.components.serving.ports import check_can_listen
    from mlstages.tooling import local

    # What can refuse the server is checked before the embedded store starts and the model loads,
    # each with one line naming the option to change.
    workdir.check_workdir(args.workdir)
    if args.prediction_log and not storage.is_gcs_uri(args.prediction_log):
        workdir.check_writable(storage.to_local_path(args.prediction_log), "--prediction-log")
    check_can_listen(args.host, args.port, port_option="--port", host_option="--host")
    from mlstages.components.serving.app import serve

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
        _show_model_log()
        serve(
            model_uri,
            args.name,
            host=args.host,
            http_port=args.port,
            prediction_log=args.prediction_log,
            port_option="--port",
            host_option="--host",
        )
    return 0


def _show_model_log() -> None:
    """Show the model server's own lines about the model (loaded from where, logging predictions
    where), which nothing else prints in this process: KServe configures only its own loggers."""
    import logging

    from mlstages.components.serving import model

    if not model.logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        model.logger.addHandler(handler)
        model.logger.setLevel(logging.INFO)


def _compile(args: argparse.Namespace) -> int:
    from mlstages.tooling import compile as compiling

    if args.check:
        stale = compiling.stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(catalog.REPO_ROOT)}")
        if stale:
            print("Run `mlstages compile` (or `make compile`) and commit the result.")
            return 1
        print("All compiled YAML, component READMEs and the component catalog are up to date.")
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


def _submission(args: argparse.Namespace) -> kubeflow.Submission:
    """The pipeline, parameters and settings of `submit` and `schedule`, read from the files."""
    from mlstages.tooling import kubeflow, local, platform

    params = local.load_params(args.params or catalog.pipeline_params_path(args.pipeline), args.set or [])
    if args.data:
        params["data_uri"] = args.data
    return kubeflow.Submission(
        pipeline=args.pipeline,
        params=params,
        settings=platform.load_settings(args.settings),
        settings_given=args.settings is not None,
        registry=args.registry,
        experiment=args.experiment,
        pipeline_name=args.pipeline_name,
        version_name=args.version_name,
        run_name=args.run_name,
        service_account=args.service_account,
        pipeline_root=args.pipeline_root,
    )


def _target(args: argparse.Namespace) -> kubeflow.Target:
    from mlstages.tooling import kubeflow

    return kubeflow.Target(
        host=args.host,
        namespace=args.namespace,
        timeout=args.timeout,
        token_env=args.token_env,
        token_file=args.token_file,
        ca_cert=args.ca_cert,
        ui_url=args.ui_url,
    )


def _positive(value: float, option: str) -> float:
    from mlstages.components.common.errors import ParameterError

    if not value > 0:
        raise ParameterError(f"{option} {value:g}: expected a number of seconds above 0")
    return value


def _submit(args: argparse.Namespace) -> int:
    from mlstages.tooling import kubeflow

    if args.wait:
        _positive(args.wait_timeout, "--wait-timeout")
        _positive(args.poll_interval, "--poll-interval")
    result = kubeflow.submit(_submission(args), _target(args))
    if not args.wait:
        return 0
    print(
        f"Waiting for the run to finish (at most {args.wait_timeout:g} s; Ctrl-C stops waiting, not the run)"
    )
    try:
        outcome = kfp_runs.wait_for_run(
            result.connection, result.run_id, timeout=args.wait_timeout, poll_interval=args.poll_interval
        )
    except KeyboardInterrupt:
        print(f"\nStopped waiting; the run goes on: {result.url}", file=sys.stderr)
        return 130
    if outcome.succeeded:
        print(f"Run {outcome.run_id} SUCCEEDED after {outcome.elapsed_seconds:.0f} s")
        return 0
    if outcome.timed_out:
        print(
            f"mlstages: error: gave up waiting after {outcome.elapsed_seconds:.0f} s (--wait-timeout); "
            f"the run is {outcome.state} and goes on: {result.url}",
            file=sys.stderr,
        )
        return 1
    print(
        f"mlstages: error: run {outcome.run_id} ended {outcome.state}"
        + (f": {outcome.error}" if outcome.error else ""),
        file=sys.stderr,
    )
    for task, error in outcome.failed_tasks:
        print(f"  task {task}: {error or 'failed'}", file=sys.stderr)
    print(f"  {result.url}", file=sys.stderr)
    return 1


def _schedule(args: argparse.Namespace) -> int:
    from mlstages.tooling import kubeflow

    plan = kubeflow.Schedule(
        cron=args.cron,
        max_concurrency=args.max_concurrency,
        no_catchup=args.no_catchup,
        start=cron.parse_time(args.start, "--start") if args.start else None,
        end=cron.parse_time(args.end, "--end") if args.end else None,
        replace=args.replace,
        enabled=not args.disabled,
    )
    kubeflow.schedule(_submission(args), _target(args), plan)
    return 0


def _add_kubeflow_options(command: argparse.ArgumentParser, default_pipeline: str) -> None:
    """The options `submit` and `schedule` share: what to compile and where to send it."""

    command.add_argument("pipeline", nargs="?", default=default_pipeline, choices=sorted(catalog.PIPELINES))
    where = command.add_argument_group("Kubeflow Pipelines")
    where.add_argument(
        "--host",
        help=f"the Kubeflow Pipelines API, e.g. https://kubeflow.example.com/pipeline or "
        f"http://localhost:8080 (default: ${kfp_target.HOST_ENV})",
    )
    where.add_argument("--namespace", help="the profile namespace (multi-user Kubeflow)")
    where.add_argument(
        "--experiment", default=kfp_target.DEFAULT_EXPERIMENT, help="experiment to run in; created if missing"
    )
    where.add_argument(
        "--run-name",
        help="name of the run (default: <pipeline name>-<UTC time>; for schedule, <pipeline name>-schedule)",
    )
    where.add_argument(
        "--pipeline-name", help="name of the pipeline in Kubeflow (default: the compiled name)"
    )
    where.add_argument(
        "--version-name",
        help="name of the pipeline version (default: suite version + the compiled spec's sha256, so an "
        "unchanged spec reuses its version)",
    )
    where.add_argument(
        "--timeout",
        type=float,
        default=kfp_target.DEFAULT_TIMEOUT,
        help="seconds to wait for a connection, and for each answer, on every API call (default: %(default)g)",
    )
    where.add_argument("--ca-cert", help="CA certificate file for an https host with a private CA")
    where.add_argument(
        "--ui-url",
        help=f"the Kubeflow Pipelines UI, for the printed links (default: ${kfp_target.UI_ENV}, or derived "
        "from --host: HOST/_/pipeline for HOST/pipeline, else the host)",
    )
    auth = where.add_mutually_exclusive_group()
    auth.add_argument(
        "--token-env",
        metavar="VAR",
        help=f"send the bearer token in environment variable VAR (default: ${kfp_target.DEFAULT_TOKEN_ENV} "
        "when set, else in a pod its service-account token, else none)",
    )
    auth.add_argument(
        "--token-file", metavar="PATH", help="send the bearer token in this file (read on every call)"
    )
    what = command.add_argument_group("pipeline")
    what.add_argument("--params", type=Path, help="YAML parameter file (default: the pipeline's own)")
    what.add_argument(
        "--set", action="append", metavar="NAME=VALUE", help="override one parameter (repeatable)"
    )
    what.add_argument("--data", metavar="URI", help="shorthand for --set data_uri=URI")
    what.add_argument(
        "--settings", type=Path, help="platform settings YAML: resources, secrets, caching, service account"
    )
    what.add_argument("--registry", help="image registry prefix to compile into the YAML")
    what.add_argument(
        "--service-account", help="the run's Kubernetes service account (overrides the settings)"
    )
    what.add_argument(
        "--pipeline-root", metavar="URI", help="where the run keeps artifacts (overrides the settings)"
    )


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
    run.add_argument(
        "--settings",
        type=Path,
        help="platform settings YAML; locally only caching and trials (the search across pods: "
        "trials: {across_pods: true}) make a difference",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show every task's output as it runs (always kept in its task.log)",
    )
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
    mon.add_argument(
        "--verbose",
        action="store_true",
        help="show every task's output as it runs (always kept in its task.log)",
    )
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

    registry_admin.add_parser(commands)

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

    sub = commands.add_parser(
        "submit",
        help="upload a pipeline to Kubeflow Pipelines and start a run",
        description="Compile a pipeline with the platform settings (what `mlstages compile --settings` "
        "writes), upload it to Kubeflow Pipelines (a new version only when the compiled spec changed), "
        "start a run with the parameters and print its page in the Kubeflow UI. With --wait, follow "
        "the run and exit 0 only when it succeeds. Exit codes: 0 done, 1 the run did not succeed (or "
        "--wait-timeout passed), 2 bad input or the API refused or did not answer. See docs/cluster.md.",
    )
    _add_kubeflow_options(sub, default_pipeline="training")
    follow = sub.add_argument_group("waiting")
    follow.add_argument("--wait", action="store_true", help="follow the run to its end")
    follow.add_argument(
        "--wait-timeout",
        type=float,
        default=kubeflow_defaults("DEFAULT_WAIT_TIMEOUT"),
        help="give up waiting after this many seconds (default: %(default)g)",
    )
    follow.add_argument(
        "--poll-interval",
        type=float,
        default=kubeflow_defaults("DEFAULT_POLL_INTERVAL"),
        help="seconds between looks at the run (default: %(default)g)",
    )
    sub.set_defaults(handler=_submit)

    sch = commands.add_parser(
        "schedule",
        help="create a recurring run on Kubeflow Pipelines (default: the monitoring pipeline)",
        description="Compile and upload a pipeline as `mlstages submit` does, and create a recurring "
        "run of that pipeline version on a cron schedule, in UTC. KFP's cron has six fields, seconds "
        "first ('0 0 * * * *' is hourly); a standard five-field expression ('0 * * * *') is converted "
        "by adding seconds=0. Descriptors work too: @hourly, @daily, @every 30m. See docs/cluster.md.",
    )
    _add_kubeflow_options(sch, default_pipeline="monitoring")
    when = sch.add_argument_group("schedule")
    when.add_argument(
        "--cron", required=True, help="when to run: 6 fields (seconds first), 5 fields, or @hourly"
    )
    when.add_argument(
        "--max-concurrency", type=int, default=1, help="runs of this schedule at once, 1-10 (default: 1)"
    )
    when.add_argument(
        "--no-catchup", action="store_true", help="after a pause, run once now instead of every missed time"
    )
    when.add_argument(
        "--start", metavar="TIME", help="first time it may run, ISO 8601 (UTC unless a zone is given)"
    )
    when.add_argument("--end", metavar="TIME", help="last time it may run, ISO 8601")
    when.add_argument(
        "--replace",
        action="store_true",
        help="delete a recurring run of the same name in the experiment first",
    )
    when.add_argument("--disabled", action="store_true", help="create it paused (enable it in the UI)")
    sch.set_defaults(handler=_schedule)
    return parser


def kubeflow_defaults(name: str) -> float:
    return getattr(kfp_target, name)


def main(argv: list[str] | None = None) -> int:
    from mlstages.components.common.errors import MlstagesError
    from mlstages.tooling.local import PipelineFailed

    args = build_parser().parse_args(argv)
    import threading

    # Only the main thread may set a signal handler (a test may call main from another).
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        # The running task's process group, the embedded store and any server were stopped on the
        # way out (task_processes, the store's and the server's context managers).
        sys.stdout.flush()
        print("mlstages: stopped: the running task and everything it started were stopped", file=sys.stderr)
        return 130
    except PipelineFailed as exc:
        # The run started and a task failed: its message and log, one line, the last one printed.
        sys.stdout.flush()
        print(f"mlstages: error: {exc}", file=sys.stderr)
        return 1
    except MlstagesError as exc:
        print(f"mlstages: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A disk that filled up, or a folder made read-only, while the command was writing: one
        # line naming the file; any other OSError is the suite's bug and keeps its traceback.
        if exc.errno not in workdir.WRITE_ERRNOS or not exc.filename:
            raise
        sys.stdout.flush()
        print(f"mlstages: error: {_write_error(args, exc)}", file=sys.stderr)
        return 1
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _write_error(args: argparse.Namespace, exc: OSError) -> str:
    """The one line for a refused write (or read); it names --workdir when the file was in it."""
    path = Path(exc.filename).absolute()
    folder = getattr(args, "workdir", None)
    option = "--workdir" if folder is not None and path.is_relative_to(Path(folder).absolute()) else None
    if exc.errno in (errno.EACCES, errno.EPERM):
        # Unlike a full or read-only disk, a permission is refused to a read too (a --params file).
        elsewhere = f"pass {option} with a folder you can write to" if option else "choose another file"
        return f"permission denied: {path}; {elsewhere}, or change its permissions"
    return str(workdir.write_error(path, exc, option))


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a timeout, a pod being stopped) stops a run as Ctrl-C does."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
