"""The compiled pipeline and its typed parameters, and the runs Kubeflow Pipelines gives back."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog
from mlstages.tooling.platform import PlatformSettings

if TYPE_CHECKING:
    from mlstages.tooling.kfp_connection import Connection
from mlstages.tooling.kfp_target import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    TERMINAL_STATES,
    WAIT_POLL_FAILURES,
    KubeflowError,
)


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


def typed_value(name: str, value: Any, kind: str) -> Any:
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
    return {name: typed_value(name, value, declared[name]["parameterType"]) for name, value in params.items()}


# The data parameters of each pipeline whose ingest task also takes the `snapshot` parameter
# (monitoring's retraining reads data_uri without one).
_SNAPSHOTTED = {"training": ("data_uri",), "monitoring": ("current_uri",)}


def submission_notes(
    compiled: CompiledPipeline, params: Mapping[str, Any], settings: PlatformSettings, *, settings_given: bool
) -> list[str]:
    """Things about this submission a user may not have meant, as warnings (none stops it)."""
    from mlstages.components.ingest.ingest import SQL_SCHEMES, source_scheme

    notes = []
    for name in ("data_uri", "current_uri", "model_registry"):
        value = params.get(name)
        if isinstance(value, str) and value and source_scheme(value) == "file":
            notes.append(
                f"{name}={value!r} is a path on this machine; the run's pods read it from their own "
                "filesystem (use gs://, http(s):// or a database URL)"
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
