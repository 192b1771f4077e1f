"""Submit and schedule the suite's pipelines on Kubeflow Pipelines, through the real kfp client.

``submit`` compiles a pipeline with the platform settings (exactly what ``mlstages compile
--settings`` writes), uploads it the first time and as a new version whenever the compiled spec
changes, creates a run in an experiment and returns its page in the Kubeflow UI; ``wait_for_run``
follows a run to its end. ``schedule`` does the same up to the upload and creates a recurring run
with a cron schedule.

Everything a user can get wrong is checked here before the first network call: parameter names
and types, the settings file, the token source, the host, the cron expression, times. The calls
themselves go through ``kfp_connection.Connection``, where every request is bounded in time and
every failure becomes a ``KubeflowError`` naming the host and what was being done.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlstages.components.common.errors import MlstagesError, ParameterError
from mlstages.tooling import catalog
from mlstages.tooling.platform import PlatformSettings, check_kubernetes_name

if TYPE_CHECKING:
    from mlstages.tooling.kfp_connection import Connection

DEFAULT_TOKEN_ENV = "MLSTAGES_KFP_TOKEN"
# kfp's own variables: the API endpoint, the UI's address, and where a pod's audience-bound
# Kubeflow Pipelines token is (a projected volume, as Kubeflow's PodDefaults mount it).
HOST_ENV = "KF_PIPELINES_ENDPOINT"
UI_ENV = "KF_PIPELINES_UI_ENDPOINT"
KFP_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
KFP_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
SERVICE_ACCOUNT_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

DEFAULT_TIMEOUT = 30.0
DEFAULT_WAIT_TIMEOUT = 6 * 3600.0
DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_EXPERIMENT = "mlstages"
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
# KFP's API server refuses a recurring run's max_concurrency outside 1..10.
MAX_CONCURRENCY_RANGE = (1, 10)
# While waiting for a run, this many failed polls in a row (network, 5xx) end the wait; one
# blip in a run of hours should not.
WAIT_POLL_FAILURES = 3


class KubeflowError(MlstagesError):
    """The Kubeflow Pipelines API could not be reached, did not answer in time, or refused a
    request. ``status`` is the HTTP status when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- credentials ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Auth:
    """Where the bearer token comes from. ``description`` is what messages show; the token itself
    is never shown (``repr`` leaves it out)."""

    description: str
    token: str | None = field(default=None, repr=False)
    token_path: str | None = None  # read again on every request: projected tokens rotate

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of kfp.Client for these credentials."""
        if self.token is not None:
            return {"existing_token": self.token}
        if self.token_path is not None:
            from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

            return {"credentials": ServiceAccountTokenVolumeCredentials(self.token_path)}
        return {}


def _readable_token_file(path: str) -> bool:
    try:
        return bool(Path(path).read_text(encoding="utf-8").strip())
    except OSError:
        return False


def resolve_auth(
    token_env: str | None = None,
    token_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    in_cluster_token_paths: tuple[str, ...] | None = None,
) -> Auth:
    """The credentials to send, in this order: ``token_file``; the environment variable
    ``token_env`` (which must then be set); MLSTAGES_KFP_TOKEN when set; in a pod, the Kubeflow
    Pipelines token (KF_PIPELINES_SA_TOKEN_PATH or /var/run/secrets/kubeflow/pipelines/token),
    then the pod's service-account token; otherwise none."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = str(token_file)
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ParameterError(f"--token-file {path}: no such file") from None
        except OSError as exc:
            raise ParameterError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
        if not token:
            raise ParameterError(f"--token-file {path} is empty")
        return Auth(f"the token in {path} (--token-file)", token_path=path)
    if token_env is not None:
        token = environ.get(token_env, "").strip()
        if not token:
            raise ParameterError(
                f"--token-env {token_env}: the environment variable {token_env} is not set or empty"
            )
        return Auth(f"the token in ${token_env} (--token-env)", token=token)
    token = environ.get(DEFAULT_TOKEN_ENV, "").strip()
    if token:
        return Auth(f"the token in ${DEFAULT_TOKEN_ENV}", token=token)
    if in_cluster_token_paths is None:
        in_cluster_token_paths = (
            environ.get(KFP_TOKEN_PATH_ENV) or KFP_TOKEN_PATH,
            SERVICE_ACCOUNT_TOKEN_PATH,
        )
    for path in in_cluster_token_paths:
        if _readable_token_file(path):
            return Auth(f"this pod's service-account token ({path})", token_path=path)
    return Auth("no token")


# --- addresses -----------------------------------------------------------------------------------


def check_host(host: str | None) -> str:
    """The API address without a trailing slash; refuses what the kfp client would silently
    rewrite (no scheme → https://) or cannot use."""
    if not host:
        raise ParameterError(
            f"no Kubeflow Pipelines address: give --host URL (or set {HOST_ENV}), for example "
            "https://kubeflow.example.com/pipeline or http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"
        )
    parts = urllib.parse.urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ParameterError(f"--host {host!r}: expected an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ParameterError(f"--host {host!r}: expected an address without a query or #fragment")
    return host.rstrip("/")


def ui_base(host: str, ui_url: str | None = None) -> str:
    """Where the Kubeflow Pipelines UI is for API address ``host``. A full Kubeflow serves the
    API at https://HOST/pipeline and shows the pipelines UI inside its central dashboard at
    https://HOST/_/pipeline/; a port-forwarded ml-pipeline-ui serves both at its root."""
    if ui_url:
        return ui_url.rstrip("/")
    parts = urllib.parse.urlsplit(host)
    path = parts.path.rstrip("/")
    if path.endswith("/pipeline"):
        path = path[: -len("/pipeline")] + "/_/pipeline"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def run_url(ui: str, run_id: str) -> str:
    return f"{ui}/#/runs/details/{run_id}"


def recurring_run_url(ui: str, recurring_run_id: str) -> str:
    return f"{ui}/#/recurringrun/details/{recurring_run_id}"


def pipeline_version_url(ui: str, pipeline_id: str, version_id: str) -> str:
    return f"{ui}/#/pipelines/details/{pipeline_id}/version/{version_id}"


# --- cron and times ------------------------------------------------------------------------------

# robfig/cron v1, which KFP's scheduled-workflow controller parses schedules with: seconds first,
# then the five usual fields; names for months and weekdays; `?` like `*`.
_CRON_FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    ),
    ("day of week", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_GO_DURATION = re.compile(
    r"^(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*$"
)


def _cron_value(text: str, name: str, low: int, high: int, names: Mapping[str, int], expr: str) -> int:
    value = names.get(text.lower()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise ParameterError(f"--cron {expr!r}: {name} {text!r} is not in {low}-{high}")
    return value


def _check_cron_field(text: str, name: str, low: int, high: int, names: Mapping[str, int], expr: str) -> None:
    for item in text.split(","):
        span, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ParameterError(f"--cron {expr!r}: {name} step {step!r} must be a whole number above 0")
        if span in ("*", "?"):
            continue
        first, dash, last = span.partition("-")
        start = _cron_value(first, name, low, high, names, expr)
        if dash and _cron_value(last, name, low, high, names, expr) < start:
            raise ParameterError(f"--cron {expr!r}: {name} range {span!r} runs backwards")


def kfp_cron(expression: str) -> str:
    """The cron expression as KFP runs it: six fields, seconds first (robfig/cron v1), or a
    descriptor (@hourly, @every 30m). A standard five-field expression is converted by adding
    a seconds field of 0: KFP would otherwise read its first field as seconds, so "0 * * * *"
    (hourly) would run every minute."""
    expr = " ".join(expression.split())
    if not expr:
        raise ParameterError("--cron is empty")
    if expr.startswith("@"):
        word, _, rest = expr.partition(" ")
        if word == "@every":
            if not _GO_DURATION.match(rest) or not re.search(r"[1-9]", rest):
                raise ParameterError(
                    f"--cron {expression!r}: @every takes a positive duration such as 30m or 1h30m"
                )
            return expr
        if word in _CRON_DESCRIPTORS and not rest:
            return expr
        raise ParameterError(
            f"--cron {expression!r}: unknown descriptor; use one of {', '.join(_CRON_DESCRIPTORS)} or @every DURATION"
        )
    fields = expr.split(" ")
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ParameterError(
            f"--cron {expression!r}: expected 5 fields (minute hour day month weekday) or 6 (seconds first), "
            f"got {len(fields)}"
        )
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        _check_cron_field(text, name, low, high, names, expression)
    return " ".join(fields)


def parse_time(value: str, option: str) -> dt.datetime:
    """An ISO 8601 time; without a zone it is taken as UTC (KFP schedules in UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(
            f"{option} {value!r}: expected an ISO 8601 time such as 2025-01-31T06:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the compiled pipeline and its parameters ----------------------------------------------------


@dataclass(frozen=True)
class CompiledPipeline:
    """A pipeline compiled with platform settings: the YAML ``mlstages compile --settings``
    writes, and what is uploaded."""

    name: str  # catalog name: training, monitoring
    text: str

    @functools.cached_property
    def documents(self) -> list[dict[str, Any]]:
        # libyaml when present: the pure-Python loader takes about a second for these specs.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return [d for d in yaml.load_all(self.text, Loader=loader) if d is not None]

    @property
    def spec(self) -> dict[str, Any]:
        return self.documents[0]

    @property
    def display_name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    @property
    def description(self) -> str:
        return self.spec["pipelineInfo"].get("description", "")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return self.spec["root"].get("inputDefinitions", {}).get("parameters", {})

    def as_server_struct(self) -> dict[str, Any]:
        """The spec as the API server returns a version's pipeline_spec: the pipeline spec alone,
        or {pipeline_spec, platform_spec} when there is a platform document."""
        documents = self.documents
        if len(documents) == 1:
            return documents[0]
        return {"pipeline_spec": documents[0], "platform_spec": documents[1]}


def compile_pipeline(name: str, settings: PlatformSettings, registry: str | None = None) -> CompiledPipeline:
    """Compile pipeline ``name`` with ``settings``, as ``mlstages compile --settings`` does."""
    from mlstages.components.common.images import REGISTRY_ENV
    from mlstages.tooling.compile import pipeline_yaml

    if name not in catalog.PIPELINES:
        raise ParameterError(f"unknown pipeline {name!r}; pipelines: {', '.join(sorted(catalog.PIPELINES))}")
    previous = os.environ.get(REGISTRY_ENV)
    if registry:
        os.environ[REGISTRY_ENV] = registry
    try:
        compiled = CompiledPipeline(name, pipeline_yaml(name, settings))
    finally:
        if registry and previous is None:
            del os.environ[REGISTRY_ENV]
        elif registry:
            os.environ[REGISTRY_ENV] = previous
    if registry:
        # Image names are fixed when the component modules are imported; a process that imported
        # them before the registry was set would upload images from another registry.
        prefix = registry.rstrip("/") + "/"
        images = sorted(
            {
                executor["container"]["image"]
                for executor in compiled.spec.get("deploymentSpec", {}).get("executors", {}).values()
                if "container" in executor
            }
        )
        foreign = [image for image in images if not image.startswith(prefix)]
        if foreign:
            raise ParameterError(
                f"--registry {registry}: the components were loaded earlier in this process with other "
                f"images ({foreign[0]}); set {REGISTRY_ENV} before importing mlstages, or run the command "
                "in a new process"
            )
    return compiled


def version_name(compiled: CompiledPipeline) -> str:
    """The default pipeline version name: the suite's version and the spec's digest, so the same
    spec is one version however often it is submitted."""
    from mlstages.components import __version__

    return f"{__version__}-{compiled.sha256[:12]}"


_PARAMETER_TYPES = {
    "STRING": "a string",
    "NUMBER_INTEGER": "a whole number",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "LIST": "a list",
    "STRUCT": "a mapping",
}


def _typed(name: str, value: Any, kind: str) -> Any:
    """``value`` as the JSON the run's parameter of type ``kind`` takes, or a ParameterError."""
    ok = {
        "STRING": isinstance(value, str),
        "NUMBER_INTEGER": isinstance(value, int) and not isinstance(value, bool),
        "NUMBER_DOUBLE": isinstance(value, (int, float)) and not isinstance(value, bool),
        "BOOLEAN": isinstance(value, bool),
        "LIST": isinstance(value, list),
        "STRUCT": isinstance(value, dict),
    }.get(kind, True)
    if ok:
        return value
    # --set values are read as YAML: 2025-01-31 becomes a date and 42 a number even where the
    # pipeline takes a string. Give those back the text the user wrote.
    if kind == "STRING" and isinstance(value, (dt.date, int, float)) and not isinstance(value, bool):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    raise ParameterError(
        f"parameter {name}={value!r}: the pipeline takes {_PARAMETER_TYPES.get(kind, kind)} ({kind})"
    )


def prepare_parameters(compiled: CompiledPipeline, params: Mapping[str, Any]) -> dict[str, Any]:
    """The run's parameters, checked against the compiled pipeline: unknown names and missing
    required ones are refused (naming them and listing what the pipeline takes), and values
    must have the declared type. Everything else keeps the pipeline's defaults."""
    declared = compiled.parameters
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) for pipeline {compiled.name}: {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(declared))}"
        )
    missing = sorted(n for n, spec in declared.items() if not spec.get("isOptional") and n not in params)
    if missing:
        raise ParameterError(
            f"pipeline {compiled.name} needs parameter(s): {', '.join(missing)} (--set NAME=VALUE or --params FILE)"
        )
    return {name: _typed(name, value, declared[name]["parameterType"]) for name, value in params.items()}


# The data parameters of each pipeline whose ingest task also takes the `snapshot` parameter
# (monitoring's retraining reads data_uri without one).
_SNAPSHOTTED = {"training": ("data_uri",), "monitoring": ("current_uri",)}


def submission_notes(
    compiled: CompiledPipeline, params: Mapping[str, Any], settings: PlatformSettings, *, settings_given: bool
) -> list[str]:
    """Things about this submission a user may not have meant, as warnings (none stops it)."""
    from mlstages.components.ingest.ingest import SQL_SCHEMES, source_scheme

    declared = compiled.parameters
    notes = []
    for name in ("data_uri", "current_uri", "model_registry"):
        value = params.get(name)
        if isinstance(value, str) and value and source_scheme(value) == "file":
            notes.append(
                f"{name}={value!r} is a path on this machine; the run's pods read it from their own "
                "filesystem (use gs://, http(s):// or a database URL)"
            )
    default_cluster = declared.get("cluster", {}).get("defaultValue")
    if "cluster" in declared and params.get("cluster", default_cluster) == "none":
        notes.append(
            "cluster=none: deploy serves the model inside its own pod and applies no InferenceService; "
            "set cluster=in-cluster to deploy on this cluster"
        )
    ingest_caching = settings.for_stage("ingest").caching
    if ingest_caching:
        for name in ("data_uri", "current_uri"):
            value = params.get(name)
            if not isinstance(value, str) or not value:
                continue
            scheme = source_scheme(value)
            moving = scheme in ("http", "https") or scheme in SQL_SCHEMES
            snapshot = params.get("snapshot") if name in _SNAPSHOTTED.get(compiled.name, ()) else None
            if moving and not snapshot:
                kind = "an HTTP" if scheme.startswith("http") else "a database"
                notes.append(
                    f"the settings turn caching on for ingest, and {name} is {kind} source with no "
                    "snapshot: a later run would be handed the cached copy; set snapshot to a value that "
                    "changes with the data"
                )
    if not settings_given:
        notes.append(
            "no --settings: tasks get no resources, node selectors, secrets or service account "
            "(pipelines/settings/cluster.example.yaml is an example)"
        )
    return notes


# --- what the API gives back --------------------------------------------------------------------


@dataclass
class PipelineVersion:
    pipeline_id: str
    version_id: str
    name: str
    outcome: str  # "new pipeline", "new version" or "existing version"


@dataclass
class RunOutcome:
    run_id: str
    state: str
    error: str = ""
    failed_tasks: list[tuple[str, str]] = field(default_factory=list)  # (task, error)
    elapsed_seconds: float = 0.0
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


def run_outcome(run: Any, elapsed: float = 0.0) -> RunOutcome:
    """What a finished (or last seen) run says about itself: state, error, failed tasks."""
    error = getattr(getattr(run, "error", None), "message", None) or ""
    failed = []
    for task in getattr(getattr(run, "run_details", None), "task_details", None) or []:
        if str(task.state) in ("FAILED", "CANCELED"):
            failed.append((task.display_name or task.task_id, getattr(task.error, "message", "") or ""))
    return RunOutcome(run.run_id, str(run.state), error, failed, elapsed)


def wait_for_run(
    connection: Connection,
    run_id: str,
    *,
    timeout: float = DEFAULT_WAIT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    progress: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """Poll the run until it reaches a terminal state or ``timeout`` seconds pass, reporting each
    change of state. A poll that fails (network, timeout, 5xx) is retried; WAIT_POLL_FAILURES in a
    row end the wait with the last error."""
    started = clock()
    state = None
    failures = 0
    while True:
        try:
            run = connection.get_run(run_id)
            failures = 0
        except KubeflowError as exc:
            failures += 1
            # Credentials and a vanished run do not come back by asking again.
            if failures >= WAIT_POLL_FAILURES or exc.status in (401, 403, 404):
                raise
            progress(f"  [{_clock_text(clock() - started)}] could not read the run ({exc}); trying again")
            run = None
        if run is not None and str(run.state) != state:
            state = str(run.state)
            progress(f"  [{_clock_text(clock() - started)}] {state}")
        if state in TERMINAL_STATES:
            return run_outcome(run, clock() - started)
        elapsed = clock() - started
        if elapsed >= timeout:
            outcome = RunOutcome(run_id, state or "UNKNOWN", elapsed_seconds=elapsed, timed_out=True)
            return outcome
        sleep(min(poll_interval, max(timeout - elapsed, 0.0)))


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --- submit and schedule -------------------------------------------------------------------------


@dataclass
class Target:
    """Where and how to talk to Kubeflow Pipelines (the options submit and schedule share)."""

    host: str | None
    namespace: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    token_env: str | None = None
    token_file: str | None = None
    ca_cert: str | None = None
    ui_url: str | None = None


@dataclass
class Submission:
    """A pipeline, its parameters and settings, and where it goes in Kubeflow."""

    pipeline: str
    params: dict[str, Any]
    settings: PlatformSettings = field(default_factory=PlatformSettings)
    settings_given: bool = False
    registry: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    pipeline_name: str | None = None
    version_name: str | None = None
    run_name: str | None = None
    service_account: str | None = None  # overrides the settings'
    pipeline_root: str | None = None  # overrides the settings'


@dataclass
class Prepared:
    """A submission checked and compiled, before any network call."""

    submission: Submission
    compiled: CompiledPipeline
    params: dict[str, Any]
    pipeline_name: str
    version_name: str
    version_name_given: bool
    service_account: str | None
    pipeline_root: str | None
    auth: Auth
    host: str
    notes: list[str]


def prepare(submission: Submission, target: Target) -> Prepared:
    """Everything that can be checked without the network: the host, the credentials' source,
    the compiled pipeline, the parameters and the run-level settings."""
    host = check_host(target.host or os.environ.get(HOST_ENV))
    if target.timeout <= 0:
        raise ParameterError(f"--timeout {target.timeout:g}: expected a number of seconds above 0")
    auth = resolve_auth(target.token_env, target.token_file)
    compiled = compile_pipeline(submission.pipeline, submission.settings, submission.registry)
    params = prepare_parameters(compiled, submission.params)
    settings = submission.settings
    service_account = submission.service_account or settings.service_account
    if service_account is not None:
        check_kubernetes_name(service_account, "--service-account")
    pipeline_root = submission.pipeline_root or settings.pipeline_root
    if pipeline_root is not None and "://" not in pipeline_root:
        raise ParameterError(
            f"--pipeline-root {pipeline_root!r}: expected a URI such as gs://bucket/pipeline-root"
        )
    if target.ca_cert is not None and not Path(target.ca_cert).is_file():
        raise ParameterError(f"--ca-cert {target.ca_cert}: no such file")
    if not submission.experiment.strip():
        raise ParameterError("--experiment is empty")
    pipeline_name = submission.pipeline_name or compiled.display_name
    if not pipeline_name.strip():
        raise ParameterError("--pipeline-name is empty")
    return Prepared(
        submission=submission,
        compiled=compiled,
        params=params,
        pipeline_name=pipeline_name,
        version_name=submission.version_name or version_name(compiled),
        version_name_given=submission.version_name is not None,
        service_account=service_account,
        pipeline_root=pipeline_root,
        auth=auth,
        host=host,
        notes=submission_notes(compiled, params, settings, settings_given=submission.settings_given),
    )


def _version_description(prepared: Prepared) -> str:
    from mlstages.components import __version__

    return f"mlstages {__version__}; compiled spec sha256 {prepared.compiled.sha256}"


def _upload(prepared: Prepared, connection: Connection, progress: Callable[[str], None]) -> PipelineVersion:
    version = connection.ensure_version(
        prepared.compiled,
        pipeline_name=prepared.pipeline_name,
        name=prepared.version_name,
        name_given=prepared.version_name_given,
        description=_version_description(prepared),
    )
    what = {
        "new pipeline": f"uploaded new pipeline {prepared.pipeline_name!r} (first version {version.name!r})",
        "new version": f"uploaded version {version.name!r} of pipeline {prepared.pipeline_name!r}",
        "existing version": f"pipeline {prepared.pipeline_name!r} already has this spec as version {version.name!r}",
    }[version.outcome]
    progress(f"Pipeline: {what}")
    progress(f"  {pipeline_version_url(connection.ui, version.pipeline_id, version.version_id)}")
    return version


def _connect(prepared: Prepared, target: Target, progress: Callable[[str], None]) -> Connection:
    for note in prepared.notes:
        progress(f"note: {note}")
    from mlstages.tooling.kfp_connection import Connection

    connection = Connection(
        prepared.host,
        auth=prepared.auth,
        timeout=target.timeout,
        namespace=target.namespace,
        ca_cert=target.ca_cert,
        ui_url=target.ui_url,
    )
    progress(connection.describe())
    return connection


@dataclass
class SubmitResult:
    run_id: str
    url: str
    version: PipelineVersion
    experiment_id: str
    connection: Connection


def submit(
    submission: Submission, target: Target, *, progress: Callable[[str], None] = print
) -> SubmitResult:
    """Compile, upload (once per distinct spec) and run ``submission`` on Kubeflow Pipelines.
    Raises ParameterError before any network call for bad input, KubeflowError for what the API
    or the network did."""
    prepared = prepare(submission, target)
    connection = _connect(prepared, target, progress)
    version = _upload(prepared, connection, progress)
    experiment_id = connection.ensure_experiment(submission.experiment)
    run_name = (
        submission.run_name or f"{prepared.pipeline_name}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"
    )
    run_id = connection.create_run(
        version,
        experiment_id=experiment_id,
        run_name=run_name,
        params=prepared.params,
        pipeline_root=prepared.pipeline_root,
        service_account=prepared.service_account,
    )
    url = run_url(connection.ui, run_id)
    progress(f"Run {run_name!r} created in experiment {submission.experiment!r} (run id {run_id})")
    progress(f"  {url}")
    return SubmitResult(run_id, url, version, experiment_id, connection)


@dataclass
class Schedule:
    cron: str
    max_concurrency: int = 1
    no_catchup: bool = False
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    replace: bool = False
    enabled: bool = True

    def check(self, now: dt.datetime | None = None) -> Schedule:
        """The schedule with the cron in KFP's form; ParameterError for what KFP would refuse or
        never run."""
        low, high = MAX_CONCURRENCY_RANGE
        if not low <= self.max_concurrency <= high:
            raise ParameterError(f"--max-concurrency {self.max_concurrency}: KFP takes {low} to {high}")
        now = now or dt.datetime.now(dt.timezone.utc)
        if self.end is not None and self.end <= now:
            raise ParameterError(f"--end {rfc3339(self.end)} is in the past: the schedule would never run")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ParameterError(f"--end {rfc3339(self.end)} is not after --start {rfc3339(self.start)}")
        return dataclasses.replace(self, cron=kfp_cron(self.cron))


@dataclass
class ScheduleResult:
    recurring_run_id: str
    url: str
    cron: str
    version: PipelineVersion
    replaced: list[str]


def schedule(
    submission: Submission, target: Target, plan: Schedule, *, progress: Callable[[str], None] = print
) -> ScheduleResult:
    """Compile and upload ``submission`` and create a recurring run of that pipeline version on
    the cron schedule. A recurring run of the same name in the experiment is refused unless
    ``plan.replace``, which deletes it first."""
    given = plan.cron
    plan = plan.check()
    prepared = prepare(submission, target)
    if plan.cron != " ".join(given.split()):
        progress(
            f"cron {given!r} has five fields (minute first); KFP's has six (seconds first): scheduling {plan.cron!r}"
        )
    connection = _connect(prepared, target, progress)
    version = _upload(prepared, connection, progress)
    experiment_id = connection.ensure_experiment(submission.experiment)
    name = submission.run_name or f"{prepared.pipeline_name}-schedule"
    existing = connection.existing_recurring_runs(experiment_id, name)
    replaced = []
    if existing and not plan.replace:
        ids = ", ".join(r.recurring_run_id for r in existing)
        raise KubeflowError(
            f"experiment {submission.experiment!r} already has a recurring run named {name!r} ({ids}); "
            "give --replace to delete it and create this one, or another --run-name"
        )
    for old in existing:
        connection.delete_recurring_run(old.recurring_run_id)
        replaced.append(old.recurring_run_id)
        progress(f"Deleted recurring run {name!r} ({old.recurring_run_id})")
    recurring_run_id = connection.create_recurring_run(
        version,
        experiment_id=experiment_id,
        name=name,
        cron=plan.cron,
        params=prepared.params,
        max_concurrency=plan.max_concurrency,
        no_catchup=plan.no_catchup,
        start=plan.start,
        end=plan.end,
        pipeline_root=prepared.pipeline_root,
        service_account=prepared.service_account,
        enabled=plan.enabled,
    )
    url = recurring_run_url(connection.ui, recurring_run_id)
    progress(
        f"Recurring run {name!r} created in experiment {submission.experiment!r}: cron {plan.cron!r} (UTC), "
        f"version {version.name!r} (id {recurring_run_id})"
    )
    progress(f"  {url}")
    return ScheduleResult(recurring_run_id, url, plan.cron, version, replaced)
