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
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlstages.components.common.errors import ParameterError
from mlstages.tooling.platform import PlatformSettings, check_kubernetes_name

if TYPE_CHECKING:
    from mlstages.tooling.kfp_connection import Connection
from mlstages.tooling.cron import kfp_cron, rfc3339
from mlstages.tooling.kfp_runs import (
    CompiledPipeline,
    PipelineVersion,
    compile_pipeline,
    prepare_parameters,
    submission_notes,
    version_name,
)
from mlstages.tooling.kfp_target import (
    DEFAULT_EXPERIMENT,
    DEFAULT_TIMEOUT,
    HOST_ENV,
    MAX_CONCURRENCY_RANGE,
    Auth,
    KubeflowError,
    check_host,
    pipeline_version_url,
    recurring_run_url,
    resolve_auth,
    run_url,
)


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
    # What the stages would refuse, refused now, and no champion served nowhere (cluster=none
    # would serve it inside the deploy pod). The data is not read here: the pods read it.
    from mlstages.tooling import precheck

    precheck.check_cluster_target(submission.pipeline, params)
    precheck.check_pipeline(submission.pipeline, params, read_local_files=False)
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
