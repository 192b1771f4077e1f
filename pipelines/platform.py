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

Local runs (kfp.local) ignore everything here except caching.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlstages.components.common.errors import ParameterError

CREDENTIALS_MOUNT_PATH = "/var/secrets/google"


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
class PlatformSettings:
    defaults: TaskSettings = field(default_factory=TaskSettings)
    stages: dict[str, TaskSettings] = field(default_factory=dict)
    gcs_credentials_secret: str | None = None
    gcs_credentials_key: str = "key.json"
    image_pull_secrets: list[str] = field(default_factory=list)

    def for_stage(self, stage: str) -> TaskSettings:
        return self.defaults.merged(self.stages.get(stage, TaskSettings()))


def _task_settings(raw: Any, where: str) -> TaskSettings:
    if not isinstance(raw, dict):
        raise ParameterError(f"settings {where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(TaskSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParameterError(
            f"settings {where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return TaskSettings(**raw)


def parse_settings(raw: dict[str, Any], *, source: str = "settings") -> PlatformSettings:
    known = {"defaults", "stages", "gcs_credentials_secret", "gcs_credentials_key", "image_pull_secrets"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParameterError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    stages = {
        name: _task_settings(value, f"stages.{name}") for name, value in (raw.get("stages") or {}).items()
    }
    return PlatformSettings(
        defaults=_task_settings(raw.get("defaults") or {}, "defaults"),
        stages=stages,
        gcs_credentials_secret=raw.get("gcs_credentials_secret") or None,
        gcs_credentials_key=raw.get("gcs_credentials_key") or "key.json",
        image_pull_secrets=list(raw.get("image_pull_secrets") or []),
    )


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
    if own.caching is not None:
        task.set_caching_options(own.caching)
    for key, value in own.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=str(value))
    for toleration in own.tolerations:
        kubernetes.add_toleration(task, **toleration)
    if own.timeout_seconds:
        kubernetes.set_timeout(task, own.timeout_seconds)
    if settings.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, settings.image_pull_secrets)
    if settings.gcs_credentials_secret:
        kubernetes.use_secret_as_volume(
            task, secret_name=settings.gcs_credentials_secret, mount_path=CREDENTIALS_MOUNT_PATH
        )
        task.set_env_variable(
            "GOOGLE_APPLICATION_CREDENTIALS", f"{CREDENTIALS_MOUNT_PATH}/{settings.gcs_credentials_key}"
        )
    return task
