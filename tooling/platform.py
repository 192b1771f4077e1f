"""Platform configuration of pipeline tasks for a cluster, from a settings file rather than code.

A settings file (YAML) says, for every task or per stage: CPU and memory requests and limits, node
selectors, tolerations, timeouts, retries, caching, image pull secrets, and where the GCS
credentials come from. Credentials are only ever referenced by Kubernetes secret NAME (mounted by
kfp-kubernetes) or come from workload identity; no credential value enters the compiled YAML.

    defaults:                       # every task
      cpu_request: "500m"
      memory_request: 1Gi
      retries: 1
    stages:
      train: {cpu_limit: "4", memory_limit: 8Gi, node_selector: {pool: highmem}}
      ingest: {caching: false}
    gcs_credentials_secret: gcs-key   # a secret holding a service-account key file; omit for
                                      # workload identity
    gcs_credentials_key: key.json
    image_pull_secrets: [regcred]
    trials:                           # the search across pods (compile time; off by default)
      across_pods: true               # one search_family pod per model family (dsl.ParallelFor)
      parallelism: 3                  # branches at once; 0: every family at once
    service_account: mlstages-runner # the run's Kubernetes service account (workload identity)
    pipeline_root: gs://my-bucket/pipeline-root

Two settings belong to a run rather than to the compiled YAML: ``service_account`` and
``pipeline_root``. KFP v2 sets both when a run is created (``mlstages submit`` and
``mlstages schedule`` pass them), so ``mlstages compile --settings`` leaves them out of the YAML.

Ingestion is compiled with caching off whatever the source, because the source URI is a run
parameter: the same compiled pipeline (and the same pipeline version on Kubeflow) runs against
HTTP, databases and moving gs:// prefixes, and a cached ingest would hand back old data. Turn it
on with ``stages: {ingest: {caching: true}}`` and a ``snapshot`` parameter that changes with the
data.

The stages in ``NEVER_CACHED`` read or move the registry's champion pointer (or decide from a
moving window) and are compiled with caching off whatever the settings say: a real cluster caches
by default, and a cached answer there would be a stale champion, a skipped deploy or an old
retrain decision. A setting that turns their caching on is refused.

``trials`` decides the training pipeline's shape: with ``across_pods``, the search runs as one
``search_family`` task per model family in a ``dsl.ParallelFor`` (at most ``parallelism`` at
once) and train chooses among their outcomes (components/train/trials.py); without it (the
default) train searches every family in its own pod, as before. Per-branch resources go under
``stages: {search_family: ...}``.

Local runs (kfp.local) ignore everything here except caching and ``trials`` (the pipeline's
shape; kfp.local runs at most 2 ParallelFor branches at once whatever the parallelism).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlstages.components.common.engine import KUBERNETES_ENV, DaskKubernetesSettings
from mlstages.components.common.errors import ParameterError

CREDENTIALS_MOUNT_PATH = "/var/secrets/google"
# Stages compiled with caching off whatever the settings say (see the module docstring): the gate
# and fetch_champion read the champion pointer, deploy moves it, monitor_drift decides on a window,
# batch_predict reads the pointer and writes new shards on every run (a cached run writes none).
NEVER_CACHED = ("validate_model", "deploy", "fetch_champion", "monitor_drift", "batch_predict")
# The stages that take the engine parameter (common/engine.py).
ENGINE_STAGES = ("validate_data", "train", "evaluate", "batch_predict", "monitor_drift")
# The patterns kfp's PipelineTask checks CPU and memory quantities against (it raises a bare
# ValueError at compile time); checked here so a bad settings file names the key.
_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")
_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
# A Kubernetes object name (DNS-1123 subdomain): service accounts and secrets.
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "toleration_seconds"}
_TOLERATION_OPERATORS = ("Equal", "Exists")
_TOLERATION_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


@dataclass(frozen=True)
class TaskSettings:
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    timeout_seconds: int | None = None
    retries: int | None = None
    caching: bool | None = None

    def merged(self, other: TaskSettings) -> TaskSettings:
        """These settings with every value that ``other`` sets taken from ``other``."""
        values = {}
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            values[item.name] = theirs if theirs not in (None, {}, []) else mine
        return TaskSettings(**values)


@dataclass(frozen=True)
class TrialsSettings:
    """The search across pods: off by default (train searches every family in its pod).
    parallelism: ParallelFor branches at once, 0 for every family at once."""

    across_pods: bool = False
    parallelism: int = 0


@dataclass(frozen=True)
class PlatformSettings:
    defaults: TaskSettings = field(default_factory=TaskSettings)
    stages: dict[str, TaskSettings] = field(default_factory=dict)
    gcs_credentials_secret: str | None = None
    gcs_credentials_key: str = "key.json"
    image_pull_secrets: list[str] = field(default_factory=list)
    trials: TrialsSettings = field(default_factory=TrialsSettings)
    # Run-level: given to Kubeflow when a run is created, not compiled into the YAML.
    service_account: str | None = None
    pipeline_root: str | None = None
    # engine=dask on Kubernetes: the DaskCluster the engine's stages create (common/engine.py).
    dask: DaskKubernetesSettings | None = None

    def for_stage(self, stage: str) -> TaskSettings:
        return self.defaults.merged(self.stages.get(stage, TaskSettings()))


def _quantity(value: Any, pattern: re.Pattern[str], where: str, example: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ParameterError(f"{where}: expected a quantity such as {example}, got {value!r}")
    text = str(value)
    if not pattern.match(text):
        raise ParameterError(f"{where}: {text!r} is not a quantity such as {example}")
    return text


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"{where}: expected a whole number >= 0, got {value!r}")
    return value


def _refuse_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParameterError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def _toleration(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ParameterError(f"{where}: expected a mapping, got {raw!r}")
    _refuse_unknown(raw, _TOLERATION_KEYS, where)
    if raw.get("operator") is not None and raw["operator"] not in _TOLERATION_OPERATORS:
        raise ParameterError(
            f"{where}.operator: {raw['operator']!r} is not one of {', '.join(_TOLERATION_OPERATORS)}"
        )
    if raw.get("effect") is not None and raw["effect"] not in _TOLERATION_EFFECTS:
        raise ParameterError(
            f"{where}.effect: {raw['effect']!r} is not one of {', '.join(_TOLERATION_EFFECTS)}"
        )
    _count(raw.get("toleration_seconds"), f"{where}.toleration_seconds")
    return dict(raw)


def _task_settings(raw: Any, where: str) -> TaskSettings:
    if not isinstance(raw, dict):
        raise ParameterError(f"{where}: expected a mapping, got {type(raw).__name__}")
    _refuse_unknown(raw, {f.name for f in fields(TaskSettings)}, where)
    node_selector = raw.get("node_selector") or {}
    if not isinstance(node_selector, dict):
        raise ParameterError(f"{where}.node_selector: expected a mapping of label to value")
    tolerations = raw.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise ParameterError(f"{where}.tolerations: expected a list of tolerations")
    caching = raw.get("caching")
    if caching is not None and not isinstance(caching, bool):
        raise ParameterError(f"{where}.caching: expected true or false, got {caching!r}")
    return TaskSettings(
        cpu_request=_quantity(raw.get("cpu_request"), _CPU, f"{where}.cpu_request", '"500m" or 2'),
        cpu_limit=_quantity(raw.get("cpu_limit"), _CPU, f"{where}.cpu_limit", '"500m" or 2'),
        memory_request=_quantity(
            raw.get("memory_request"), _MEMORY, f"{where}.memory_request", "512Mi or 4Gi"
        ),
        memory_limit=_quantity(raw.get("memory_limit"), _MEMORY, f"{where}.memory_limit", "512Mi or 4Gi"),
        node_selector={str(k): str(v) for k, v in node_selector.items()},
        tolerations=[_toleration(t, f"{where}.tolerations[{i}]") for i, t in enumerate(tolerations)],
        timeout_seconds=_count(raw.get("timeout_seconds"), f"{where}.timeout_seconds"),
        retries=_count(raw.get("retries"), f"{where}.retries"),
        caching=caching,
    )


def check_kubernetes_name(value: Any, where: str) -> str | None:
    """``value`` if it is a Kubernetes object name (secrets, service accounts); None if empty."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _K8S_NAME.match(value) or len(value) > 253:
        raise ParameterError(
            f"{where}: {value!r} is not a Kubernetes object name (lowercase letters, digits, '-' and '.')"
        )
    return value


def parse_settings(raw: dict[str, Any], *, source: str = "settings") -> PlatformSettings:
    from mlstages.tooling.catalog import COMPONENTS

    if not isinstance(raw, dict):
        raise ParameterError(f"{source}: expected a mapping of settings, got {type(raw).__name__}")
    known = {
        "defaults",
        "stages",
        "gcs_credentials_secret",
        "gcs_credentials_key",
        "image_pull_secrets",
        "trials",
        "service_account",
        "pipeline_root",
        "dask",
    }
    _refuse_unknown(raw, known, source)
    raw_stages = raw.get("stages") or {}
    if not isinstance(raw_stages, dict):
        raise ParameterError(f"{source}: stages: expected a mapping of stage name to settings")
    unknown_stages = sorted(set(raw_stages) - set(COMPONENTS))
    if unknown_stages:
        raise ParameterError(
            f"{source}: stages: unknown stage(s) {', '.join(unknown_stages)}; stages: {', '.join(COMPONENTS)}"
        )
    stages = {name: _task_settings(value, f"{source}: stages.{name}") for name, value in raw_stages.items()}
    for name in sorted(set(stages) & set(NEVER_CACHED)):
        if stages[name].caching:
            raise ParameterError(
                f"{source}: stages.{name}.caching: {name} is never cached: it reads or moves the champion, "
                "or decides on a moving window, and a cached answer would be stale"
            )
    pull_secrets = raw.get("image_pull_secrets") or []
    if not isinstance(pull_secrets, list):
        raise ParameterError(f"{source}: image_pull_secrets: expected a list of secret names")
    pipeline_root = raw.get("pipeline_root") or None
    if pipeline_root is not None and (not isinstance(pipeline_root, str) or "://" not in pipeline_root):
        raise ParameterError(
            f"{source}: pipeline_root: expected a URI such as gs://bucket/pipeline-root, got {pipeline_root!r}"
        )
    return PlatformSettings(
        defaults=_task_settings(raw.get("defaults") or {}, f"{source}: defaults"),
        stages=stages,
        gcs_credentials_secret=check_kubernetes_name(
            raw.get("gcs_credentials_secret"), f"{source}: gcs_credentials_secret"
        ),
        gcs_credentials_key=raw.get("gcs_credentials_key") or "key.json",
        image_pull_secrets=[
            n for s in pull_secrets if (n := check_kubernetes_name(s, f"{source}: image_pull_secrets"))
        ],
        trials=_trials(raw.get("trials") or {}, f"{source}: trials"),
        service_account=check_kubernetes_name(raw.get("service_account"), f"{source}: service_account"),
        pipeline_root=pipeline_root,
        dask=_dask_settings(raw["dask"], f"{source}: dask") if raw.get("dask") is not None else None,
    )


def _dask_settings(raw: Any, where: str) -> DaskKubernetesSettings:
    if not isinstance(raw, dict):
        raise ParameterError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(DaskKubernetesSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParameterError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    image = raw.get("image") or ""
    if not isinstance(image, str):
        raise ParameterError(f"{where}.image: expected an image name, got {image!r}")
    workers = _count(raw.get("workers", 2), f"{where}.workers")
    if not workers:
        raise ParameterError(f"{where}.workers: expected a whole number >= 1, got {workers!r}")
    env = raw.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ParameterError(f"{where}.env: expected a mapping of variable name to text")
    return DaskKubernetesSettings(
        image=image,
        workers=workers,
        worker_cpu=_quantity(raw.get("worker_cpu", "1"), _CPU, f"{where}.worker_cpu", '"1" or "500m"') or "1",
        worker_memory=_quantity(raw.get("worker_memory", "4Gi"), _MEMORY, f"{where}.worker_memory", "4Gi")
        or "4Gi",
        namespace=check_kubernetes_name(raw.get("namespace"), f"{where}.namespace"),
        env=env or None,
    )


def _trials(raw: Any, where: str) -> TrialsSettings:
    if not isinstance(raw, dict):
        raise ParameterError(f"{where}: expected a mapping (across_pods, parallelism), got {raw!r}")
    _refuse_unknown(raw, {f.name for f in fields(TrialsSettings)}, where)
    across_pods = raw.get("across_pods", False)
    if not isinstance(across_pods, bool):
        raise ParameterError(f"{where}.across_pods: expected true or false, got {across_pods!r}")
    return TrialsSettings(across_pods, _count(raw.get("parallelism"), f"{where}.parallelism") or 0)


def load_settings(path: str | Path | None) -> PlatformSettings:
    """Settings from a YAML file; no file means no platform configuration."""
    import yaml

    if path is None:
        return PlatformSettings()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ParameterError(f"settings file {path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise ParameterError(f"settings file {path} is not valid YAML: {exc}") from exc
    return parse_settings(raw, source=f"settings file {path}")


def configure_task(task: Any, stage: str, settings: PlatformSettings) -> Any:
    """Apply the settings for ``stage`` to a pipeline task (kfp PipelineTask)."""
    from kfp import kubernetes

    own = settings.for_stage(stage)
    if own.cpu_request:
        task.set_cpu_request(own.cpu_request)
    if own.cpu_limit:
        task.set_cpu_limit(own.cpu_limit)
    if own.memory_request:
        task.set_memory_request(own.memory_request)
    if own.memory_limit:
        task.set_memory_limit(own.memory_limit)
    if own.retries:
        task.set_retry(num_retries=own.retries)
    if stage in NEVER_CACHED:
        # Also against `defaults: {caching: true}`: a cluster would hand back a stale answer.
        task.set_caching_options(False)
    elif own.caching is not None:
        task.set_caching_options(own.caching)
    for key, value in own.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=str(value))
    for toleration in own.tolerations:
        kubernetes.add_toleration(task, **toleration)
    if own.timeout_seconds:
        kubernetes.set_timeout(task, own.timeout_seconds)
    if settings.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, settings.image_pull_secrets)
    if settings.dask is not None and stage in ENGINE_STAGES:
        # Read by common/engine.py: with engine=dask the task creates this DaskCluster instead of a
        # LocalCluster. A task run with engine=local ignores it. Without an image the workers run
        # the stage's own (the suite, dask, and the same registry prefix as the task).
        from mlstages.components.common.images import image

        spec = settings.dask if settings.dask.image else replace(settings.dask, image=image(stage))
        task.set_env_variable(KUBERNETES_ENV, spec.to_json())
    if settings.gcs_credentials_secret:
        kubernetes.use_secret_as_volume(
            task, secret_name=settings.gcs_credentials_secret, mount_path=CREDENTIALS_MOUNT_PATH
        )
        task.set_env_variable(
            "GOOGLE_APPLICATION_CREDENTIALS", f"{CREDENTIALS_MOUNT_PATH}/{settings.gcs_credentials_key}"
        )
    return task
