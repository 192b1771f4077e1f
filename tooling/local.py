"""Run a pipeline on this machine through the real KFP local runner, with the embedded object store.

``run_pipeline`` starts fake-gcs-server (unless a real bucket is configured), uploads the built-in
dataset when no data URI is given, runs every task with ``kfp.local.SubprocessRunner`` in this
Python environment, and reads back what each task wrote from the run's folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlstages.components.common.errors import MlstagesError
from mlstages.tooling import catalog
from mlstages.tooling.task_processes import TaskSupervisor, supervised_tasks

DEFAULT_WORKDIR = Path(".mlstages")
LOCAL_BUCKET = "mlstages-local"
BUCKET_ENV = "MLSTAGES_BUCKET"
BUILTIN_DATASET_OBJECT = "datasets/penguins/penguins.csv"
BUILTIN_DATASET_NAME = "the built-in dataset (Palmer penguins)"


class PipelineFailed(MlstagesError):
    """A task of a local run failed: the task, the suite's message and where its log is."""


@dataclass
class TaskOutputs:
    name: str
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # output name → {uri, metadata}
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunReport:
    pipeline: str
    run_dir: Path
    tasks: list[TaskOutputs]
    data_uri: str
    elapsed_seconds: float
    # The image of every task container, in the order they finished (runs with containers only).
    task_images: list[str] = field(default_factory=list)

    def task(self, name: str) -> TaskOutputs:
        for item in self.tasks:
            if item.name == name:
                return item
        raise KeyError(f"no task {name!r} in run {self.run_dir}")


def load_params(path: Path | None, overrides: list[str] = ()) -> dict[str, Any]:
    """Parameters from a YAML file, then ``key=value`` overrides (values parsed as YAML)."""
    from mlstages.components.common.errors import ParameterError

    params: dict[str, Any] = {}
    if path is not None:
        try:
            params = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ParameterError(f"parameter file {path}: no such file") from exc
        except yaml.YAMLError as exc:
            raise ParameterError(f"parameter file {path} is not valid YAML: {exc}") from exc
        if not isinstance(params, dict):
            raise ParameterError(f"parameter file {path} must be a mapping of parameter names to values")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--set {item!r}: expected NAME=VALUE")
        params[key.strip()] = yaml.safe_load(value)
    return params


def check_params(pipeline_name: str, params: dict[str, Any]) -> None:
    """Refuse parameters the pipeline does not declare, before anything runs."""
    from mlstages.components.common.errors import ParameterError

    spec = catalog.pipeline(pipeline_name).component_spec
    declared = set(spec.inputs or {})
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) for pipeline {pipeline_name}: {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(declared))}"
        )
    missing = sorted(n for n, s in spec.inputs.items() if not s.optional and n not in params)
    if missing:
        raise ParameterError(f"pipeline {pipeline_name} needs parameter(s): {', '.join(missing)}")


def typed_params(pipeline_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the types the pipeline declares, so that kfp.local does not end the run
    in a traceback: YAML reads ``--set test_size=0`` as an integer where the pipeline takes a
    float, and a date or a number where it takes text. Any other mismatch is a ParameterError
    naming the parameter (as ``mlstages submit`` does)."""
    from google.protobuf.json_format import MessageToDict

    from mlstages.tooling.kfp_runs import typed_value

    root = MessageToDict(catalog.pipeline(pipeline_name).pipeline_spec)["root"]
    declared = root.get("inputDefinitions", {}).get("parameters", {})
    typed = {}
    for name, value in params.items():
        kind = declared.get(name, {}).get("parameterType")
        value = typed_value(name, value, kind) if kind else value
        if kind == "NUMBER_DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        typed[name] = value
    return typed


def declared_params(pipeline_name: str) -> set[str]:
    return set(catalog.pipeline(pipeline_name).component_spec.inputs or {})


def builtin_dataset() -> Any:
    """The Palmer penguins data as a DataFrame, shipped inside the palmerpenguins package (no
    download)."""
    import palmerpenguins

    return palmerpenguins.load_penguins()


def builtin_dataset_csv() -> bytes:
    """The built-in dataset as the CSV a local run uploads."""
    buffer = io.StringIO()
    builtin_dataset().to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


@contextlib.contextmanager
def object_store(workdir: Path, progress: Callable[[str], None]) -> Iterator[str]:
    """Yield the bucket to use: a real one named by MLSTAGES_BUCKET, or the embedded store's."""
    bucket = os.environ.get(BUCKET_ENV)
    if bucket:
        progress(f"Using bucket gs://{bucket} ({BUCKET_ENV}); credentials from the environment.")
        yield bucket
        return
    from mlstages.components.common.emulator import EmbeddedGCS

    root = workdir / "gcs"
    with EmbeddedGCS(root=root, buckets=[LOCAL_BUCKET]) as store:
        progress(f"Started the embedded object store (fake-gcs-server) at {store.endpoint}, data in {root}")
        yield LOCAL_BUCKET
    progress("Stopped the embedded object store.")


def run_pipeline(
    pipeline_name: str,
    params: dict[str, Any],
    *,
    workdir: Path = DEFAULT_WORKDIR,
    progress: Callable[[str], None] = print,
    bucket: str | None = None,
    containers: bool = False,
    verbose: bool = False,
    settings: Any = None,
) -> RunReport:
    """Run a pipeline locally and return what every task produced. With ``bucket``, the object
    store is already running (the caller's); otherwise it is started for this run. ``settings``
    (PlatformSettings) build the pipeline as ``mlstages compile --settings`` does: locally only
    caching and the search across pods (``trials``) make a difference.

    With ``containers``, every task runs in its own image through kfp.local's DockerRunner (the
    Docker API at DOCKER_HOST: Docker, or podman's service from containers.podman_socket) instead
    of in this Python environment."""
    import time
    import warnings

    from kfp import local

    # kfp.local warns that each task's custom image is ignored; running the suite's own
    # environment in place of the image is what SubprocessRunner(use_venv=False) is for here.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")

    from mlstages.components.common import storage

    workdir = Path(workdir).resolve()
    params = dict(params)
    check_params(pipeline_name, {k: v for k, v in params.items() if k != "data_uri"} | {"data_uri": ""})
    params = typed_params(pipeline_name, params)
    pipeline_root = workdir / "runs"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    store = contextlib.nullcontext(bucket) if bucket else object_store(workdir, progress)
    with store as bucket:
        if not params.get("data_uri"):
            data_uri = f"gs://{bucket}/{BUILTIN_DATASET_OBJECT}"
            storage.write_bytes(data_uri, builtin_dataset_csv())
            progress(f"Uploaded the built-in dataset (Palmer penguins) to {data_uri}")
            params["data_uri"] = data_uri
        if "model_registry" in declared_params(pipeline_name) and not params.get("model_registry"):
            params["model_registry"] = f"gs://{bucket}/models"
        if "output_uri" in declared_params(pipeline_name) and not params.get("output_uri"):
            # Batch predictions land in the store, where monitoring can read them as a window.
            params["output_uri"] = f"gs://{bucket}/predictions/{params.get('model_name') or 'model'}"
        supervisor = TaskSupervisor(verbose=verbose, progress=progress)
        if containers:
            from mlstages.tooling.container_tasks import docker_runner, exit_codes_kept

            runner, guard = docker_runner(pipeline_root), exit_codes_kept()
            supervised = contextlib.nullcontext(supervisor)
        else:
            runner, guard = local.SubprocessRunner(use_venv=False), contextlib.nullcontext([])
            supervised = supervised_tasks(supervisor)
        local.init(runner=runner, pipeline_root=str(pipeline_root))
        progress(f"Running pipeline {pipeline_name} with kfp.local ({type(runner).__name__}) ...")
        with guard as task_containers, supervised, local_run_environment(), run_names() as names:
            try:
                catalog.pipeline(pipeline_name, settings)(**params)
            except RuntimeError as exc:
                if not supervisor.failures:
                    raise
                failure = supervisor.failures[0]
                raise PipelineFailed(
                    f"task {failure.task} failed: {failure.message} (its log: {failure.log})"
                ) from exc
    # This run's own folder, by the name kfp.local gave it: never "the newest folder", which
    # another run in the same workdir may have made (issue 12 item 7).
    run_dir = pipeline_root / names[0] if names else supervisor.run_dir(pipeline_root)
    if run_dir is None or not run_dir.is_dir():
        raise RuntimeError(f"kfp.local wrote no run folder for this run under {pipeline_root}")
    return RunReport(
        pipeline=pipeline_name,
        run_dir=run_dir,
        tasks=read_run(run_dir),
        data_uri=params["data_uri"],
        elapsed_seconds=time.monotonic() - started,
        task_images=[container.image for container in task_containers],
    )


@contextlib.contextmanager
def local_run_environment() -> Iterator[None]:
    """Tell the tasks this is a local run, even inside a Kubernetes pod (a notebook server):
    deploy serves with cluster='none' on this machine's model server as asked."""
    from mlstages.components.deploy.config import LOCAL_RUN_ENV

    previous = os.environ.get(LOCAL_RUN_ENV)
    os.environ[LOCAL_RUN_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LOCAL_RUN_ENV, None)
        else:
            os.environ[LOCAL_RUN_ENV] = previous


@contextlib.contextmanager
def run_names() -> Iterator[list[str]]:
    """The names kfp.local gives the pipeline runs started within the block: each run's folder
    under the pipeline root (kfp.local returns no handle to it)."""
    from kfp.local import executor_input_utils

    original = executor_input_utils.get_local_pipeline_resource_name
    names: list[str] = []

    def recorded(pipeline_name: str) -> str:
        names.append(original(pipeline_name))
        return names[-1]

    executor_input_utils.get_local_pipeline_resource_name = recorded
    try:
        yield names
    finally:
        executor_input_utils.get_local_pipeline_resource_name = original


def read_run(run_dir: Path) -> list[TaskOutputs]:
    """What each task of a local run wrote, from its executor_output.json, in execution order."""
    tasks = []
    outputs = sorted(run_dir.glob("**/executor_output.json"), key=lambda p: p.stat().st_mtime)
    for path in outputs:
        data = json.loads(path.read_text(encoding="utf-8"))
        task = TaskOutputs(name=path.parent.relative_to(run_dir).as_posix())
        for name, group in (data.get("artifacts") or {}).items():
            for artifact in group.get("artifacts", []):
                task.artifacts[name] = {"uri": artifact.get("uri"), "metadata": artifact.get("metadata", {})}
        task.parameters = dict(data.get("parameterValues") or {})
        tasks.append(task)
    return tasks


# Artifacts whose file a person opens, in the order a report lists them.
_VIEWABLE = ("summary", "report", "search_results")


def format_report(report: RunReport) -> str:
    """The text `mlstages run` prints at the end: where everything is and the metrics."""
    lines = [
        "",
        f"Pipeline {report.pipeline} finished in {report.elapsed_seconds:.1f} s "
        f"({dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}).",
        f"Data: {report.data_uri}",
        f"Run folder: {report.run_dir}",
        "",
        "Artifacts:",
    ]
    for task in report.tasks:
        lines.append(f"  {task.name}")
        for name, artifact in task.artifacts.items():
            marker = "*" if name in _VIEWABLE else " "
            lines.append(f"   {marker} {name:<24} {artifact['uri']}")
        for name, value in task.parameters.items():
            lines.append(f"     {name:<24} = {value}")
    model_uris = [t.parameters["model_uri"] for t in report.tasks if t.parameters.get("model_uri")]
    if model_uris:
        lines += ["", f"Model: {model_uris[-1]}"]
    gate = next((t for t in report.tasks if t.name.endswith("validate-model")), None)
    if gate is not None:
        lines += ["", f"Blessing gate: {gate.parameters.get('reason', '')}"]
    deployed = next((t for t in report.tasks if t.name.endswith("deploy")), None)
    if deployed is not None:
        target = deployed.artifacts.get("inference_service", {}).get("metadata", {}).get("target")
        where = "the local KServe model server" if target == "local" else "KServe"
        state = "passed" if deployed.parameters.get("deployed") else "did NOT pass"
        lines.append(
            f"Deployed to {where} at {deployed.parameters.get('endpoint', '')}: the live endpoint check "
            f"{state}; it is now the champion."
            + (
                " (That server stopped with the task; `make serve` serves the champion again.)"
                if target == "local"
                else ""
            )
        )
    elif gate is not None:
        lines.append("Not deployed: the blessing gate did not bless this model.")
    scored = next((t for t in report.tasks if "batch-predict" in t.name and "rows" in t.parameters), None)
    if scored is not None:
        where = scored.artifacts.get("predictions", {}).get("metadata", {}).get("output_uri", "")
        lines += [
            "",
            f"Scored {scored.parameters['rows']:,} rows with model version {scored.parameters['model_version']}: "
            f"{scored.parameters['shards']} shard(s) under {where}",
        ]
    metrics = {}
    for task in report.tasks:
        if task.name.endswith("evaluate") and "metrics" in task.artifacts:
            metrics = task.artifacts["metrics"]["metadata"]
    if metrics:
        lines += ["", "Test-set metrics (evaluate):"]
        for name, value in metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            lines.append(f"  {name:<24} {shown}")
    lines += ["", "(* = a report to open in a browser or Markdown viewer; the Kubeflow UI shows the same.)"]
    return "\n".join(lines)


# --- monitoring ----------------------------------------------------------------------------------

MONITORING_PREFIX = "monitoring"
# The simulated drift: these numeric features move by DRIFT_SHIFT_STD training standard deviations,
# and the island mix moves towards the smaller islands (Biscoe is 49% of the penguins).
DRIFT_SHIFT_COLUMNS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
DRIFT_SHIFT_STD = 1.5
DRIFT_ISLAND_WEIGHTS = {"Biscoe": 0.2, "Dream": 1.0, "Torgersen": 3.0}
WINDOW_ROWS = 200


def simulate_window(*, drift: bool, seed: int = 7, rows: int = WINDOW_ROWS) -> Any:
    """A window of "current" data from the built-in dataset, labels included.

    Without drift: a seeded sample of the penguins rows (without replacement), the same population
    the model was trained on. With drift: a seeded sample weighted towards Torgersen and Dream
    (a changed island mix), with bill, flipper and body mass shifted by DRIFT_SHIFT_STD standard
    deviations (as if an instrument were recalibrated).
    """
    import palmerpenguins

    penguins = palmerpenguins.load_penguins()
    if not drift:
        return penguins.sample(n=min(rows, len(penguins)), random_state=seed).reset_index(drop=True)
    weights = penguins["island"].map(DRIFT_ISLAND_WEIGHTS).fillna(1.0)
    # With replacement, so the island mix can move far off Biscoe; the repeated rows this makes are
    # left out once when a retraining appends the window (training_data).
    window = penguins.sample(n=rows, replace=True, weights=weights, random_state=seed).reset_index(drop=True)
    for column in DRIFT_SHIFT_COLUMNS:
        window[column] = window[column] + DRIFT_SHIFT_STD * penguins[column].std()
    return window


def upload_window(window: Any, bucket: str, now: dt.datetime | None = None) -> str:
    """Write the window as Parquet to gs://<bucket>/monitoring/window-<UTC time>.parquet."""
    from mlstages.components.common import storage

    moment = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    uri = f"gs://{bucket}/{MONITORING_PREFIX}/window-{moment:%Y%m%dT%H%M%S%fZ}.parquet"
    buffer = io.BytesIO()
    window.to_parquet(buffer, index=False)
    storage.write_bytes(uri, buffer.getvalue(), if_absent=True)
    return uri


@dataclass
class MonitorReport:
    window_uri: str
    simulated: str  # "drifted", "stable" or "" (a window given with --data)
    training: RunReport | None  # the first training run, when there was no champion yet
    monitoring: RunReport

    @property
    def drift(self) -> TaskOutputs:
        return next(t for t in self.monitoring.tasks if t.name.endswith("monitor-drift"))

    @property
    def retrained(self) -> bool:
        return any(t.name.endswith("train") and "model_uri" in t.parameters for t in self.monitoring.tasks)


def monitor(
    params: dict[str, Any],
    *,
    data: str | None = None,
    drift: bool = True,
    seed: int = 7,
    workdir: Path = DEFAULT_WORKDIR,
    progress: Callable[[str], None] = print,
    verbose: bool = False,
) -> MonitorReport:
    """What `mlstages monitor` does: make sure there is a champion (training first when there is
    none), simulate a window from the built-in dataset unless ``data`` names one, and run the
    monitoring pipeline on it.

    ``params`` are the monitoring pipeline's; those the training pipeline also takes are used for
    the first training run too.
    """
    from mlstages.components.common import registry

    workdir = Path(workdir)
    params = dict(params)
    check_params("monitoring", {"current_uri": "", "data_uri": "", "model_registry": ""} | params)
    model_name = params.get("model_name", "model")
    with object_store(workdir, progress) as bucket:
        registry_uri = params.get("model_registry") or f"gs://{bucket}/models"
        params["model_registry"] = registry_uri
        training = None
        if registry.read_champion(registry_uri, model_name) is None:
            progress(
                f"No champion for {model_name!r} in {registry_uri}: running the training pipeline first, "
                "so there is a deployed model to monitor."
            )
            own_data = bool(params.get("data_uri"))
            training_params = load_params(
                catalog.pipeline_params_path("training")
                if own_data
                else catalog.builtin_params_path("training")
            )
            declared = declared_params("training")
            training_params.update({k: v for k, v in params.items() if k in declared})
            training = run_pipeline(
                "training",
                training_params,
                workdir=workdir,
                progress=progress,
                bucket=bucket,
                verbose=verbose,
            )
            if registry.read_champion(registry_uri, model_name) is None:
                from mlstages.components.common.errors import ValidationFailed

                raise ValidationFailed(
                    f"the training run did not deploy a champion for {model_name!r} (the blessing gate "
                    f"said: {_gate_reason(training) or 'nothing'}); there is no model to monitor. "
                    f"Run folder: {training.run_dir}"
                )
        simulated = ""
        if data:
            window_uri = data
            progress(f"Monitoring the window {window_uri}")
        else:
            simulated = "drifted" if drift else "stable"
            window = simulate_window(drift=drift, seed=seed)
            window_uri = upload_window(window, bucket)
            how = (
                f"island mix moved towards Torgersen and Dream, {', '.join(DRIFT_SHIFT_COLUMNS)} shifted by "
                f"+{DRIFT_SHIFT_STD} std"
                if drift
                else "a seeded sample of the same population, no shift"
            )
            progress(f"Simulated a {simulated} window of {len(window)} labelled rows ({how}): {window_uri}")
        params["current_uri"] = window_uri
        if not params.get("data_uri"):
            params["data_uri"] = f"gs://{bucket}/{BUILTIN_DATASET_OBJECT}"
            from mlstages.components.common import storage

            storage.write_bytes(params["data_uri"], builtin_dataset_csv())
        policy = params.get("window_policy", "append")
        progress(
            f"If it retrains, it learns from the window's labelled rows (window_policy={policy}"
            + (f", with data_uri = {params['data_uri']})" if policy == "append" else ")")
        )
        monitoring = run_pipeline(
            "monitoring", params, workdir=workdir, progress=progress, bucket=bucket, verbose=verbose
        )
    return MonitorReport(window_uri=window_uri, simulated=simulated, training=training, monitoring=monitoring)


def _gate_reason(report: RunReport) -> str:
    gate = next((t for t in report.tasks if t.name.endswith("validate-model")), None)
    return "" if gate is None else str(gate.parameters.get("reason", ""))


def _gate_scores(report: RunReport) -> list[str]:
    """The new model's and the champion's overall metrics on the same test rows, from the gate's
    blessing (one line per metric the gate compared)."""
    import json

    gate = next((t for t in report.tasks if t.name.endswith("validate-model")), None)
    uri = (gate.artifacts.get("blessing") or {}).get("uri", "") if gate else ""
    try:
        blessing = json.loads(Path(uri).read_text(encoding="utf-8")) if uri else {}
    except (OSError, ValueError):
        return []
    seen, lines = set(), []
    for check in blessing.get("checks") or []:
        metric = check.get("metric")
        if check.get("scope") != "overall" or check.get("baseline") is None or metric in seen:
            continue
        seen.add(metric)
        lines.append(
            f"{'scores:' if not lines else '':<13} {metric} {check['value']:.4f} (new) vs "
            f"{check['baseline']:.4f} (champion), on the same test rows"
        )
    return lines


def format_monitor_report(report: MonitorReport) -> str:
    """The text `mlstages monitor` prints: the monitoring run's artifacts (and, when it retrained,
    the new model, the blessing and the deployment), then the decision."""
    drift = report.drift
    lines = [format_report(report.monitoring), "", "Drift monitoring"]
    if report.training is not None:
        first = report.training
        model_uri = next((t.parameters["model_uri"] for t in first.tasks if "model_uri" in t.parameters), "")
        lines.append(
            f"  champion:     {model_uri} (trained and deployed first: there was none; run {first.run_dir})"
        )
    lines.append(
        f"  window:       {report.window_uri}"
        + (f" ({report.simulated}, simulated)" if report.simulated else "")
    )
    share = drift.parameters.get("drift_share")
    lines.append(
        f"  drift share:  {share:.2f}" if isinstance(share, (int, float)) else f"  drift share:  {share}"
    )
    retrain = bool(drift.parameters.get("retrain"))
    lines.append(f"  retrain:      {'yes' if retrain else 'no'}")
    reasons = str(drift.parameters.get("reasons", "")).strip()
    if reasons:
        lines.append("  reasons:")
        lines += [f"    - {reason}" for reason in reasons.split("; ")]
    else:
        lines.append("  reasons:      none: no drift and no performance decay beyond the thresholds")
    if "drift_report" in drift.artifacts:
        lines.append(f"  report:       {drift.artifacts['drift_report']['uri']}")
    if report.retrained:
        train = next(
            t for t in report.monitoring.tasks if t.name.endswith("train") and "model_uri" in t.parameters
        )
        deployed = any(
            t.name.endswith("deploy") and t.parameters.get("deployed") for t in report.monitoring.tasks
        )
        assembled = next((t for t in report.monitoring.tasks if t.name.endswith("training-data")), None)
        if assembled is not None and "data_uri" in assembled.parameters:
            lines.append(
                f"  retrained on: {assembled.parameters['data_uri']} ({assembled.parameters.get('rows')} rows, "
                "assembled from the window under window_policy: see training-data/summary)"
            )
        else:
            lines.append(f"  retrained on: {report.monitoring.data_uri}")
        lines.append(f"  new version:  {train.parameters['model_uri']}")
        lines += [f"  {line}" for line in _gate_scores(report.monitoring)]
        lines.append(f"  blessed:      {_gate_reason(report.monitoring)}")
        lines.append(
            f"  deployed:     {'yes, it is the champion now' if deployed else 'no, the champion is unchanged'}"
        )
    elif retrain:
        lines.append("  retraining was called for but did not run: see the run folder")
    else:
        lines.append("  no retraining: the champion stays")
    return "\n".join(lines)
