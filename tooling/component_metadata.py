"""Each component folder's metadata.yaml, in kubeflow/pipelines-components' shape: name, stability,
owners, dependencies (Kubeflow and external services, with versions), tags, the date it was last
verified and links. ``mlstages compile`` renders it into the component's README; a malformed file
is refused with the file and key named."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog

METADATA_YAML = "metadata.yaml"
STABILITIES = ("alpha", "beta", "stable")
REQUIRED_KEYS = ("name", "stability", "owners", "dependencies", "tags", "lastVerified")


@dataclass(frozen=True)
class Dependency:
    name: str
    version: str


@dataclass(frozen=True)
class ComponentMetadata:
    name: str
    stability: str
    approvers: tuple[str, ...]
    reviewers: tuple[str, ...]
    kubeflow: tuple[Dependency, ...]
    external_services: tuple[Dependency, ...]
    tags: tuple[str, ...]
    last_verified: dt.date
    links: dict[str, str]


def metadata_path(stage: str) -> Path:
    return catalog.COMPONENTS_DIR / stage / METADATA_YAML


def _dependencies(data: Any, where: str) -> tuple[Dependency, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(d, dict) and d.get("name") for d in data):
        raise ParameterError(f"{where} must be a list of {{name, version}} entries")
    return tuple(Dependency(str(d["name"]), str(d.get("version", "any"))) for d in data)


def parse_metadata(data: Any, where: str, stage: str) -> ComponentMetadata:
    if not isinstance(data, dict):
        raise ParameterError(f"{where} must be a mapping")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ParameterError(f"{where} lacks key(s) {', '.join(missing)}")
    if data["name"] != stage:
        raise ParameterError(f"{where}: name is {data['name']!r}, but the folder is {stage!r}")
    if data["stability"] not in STABILITIES:
        raise ParameterError(
            f"{where}: stability {data['stability']!r} is not one of {', '.join(STABILITIES)}"
        )
    owners = data["owners"] or {}
    if not isinstance(owners, dict) or not owners.get("approvers"):
        raise ParameterError(f"{where}: owners must name at least one approver (owners.approvers)")
    dependencies = data["dependencies"] or {}
    if not isinstance(dependencies, dict) or not dependencies.get("kubeflow"):
        raise ParameterError(f"{where}: dependencies.kubeflow must list the Kubeflow parts it needs")
    tags = data["tags"]
    if not isinstance(tags, list) or not tags:
        raise ParameterError(f"{where}: tags must be a non-empty list")
    try:
        verified = dt.date.fromisoformat(str(data["lastVerified"]))
    except ValueError as exc:
        raise ParameterError(
            f"{where}: lastVerified {data['lastVerified']!r} is not a YYYY-MM-DD date"
        ) from exc
    return ComponentMetadata(
        name=stage,
        stability=data["stability"],
        approvers=tuple(map(str, owners.get("approvers") or ())),
        reviewers=tuple(map(str, owners.get("reviewers") or ())),
        kubeflow=_dependencies(dependencies.get("kubeflow"), f"{where}: dependencies.kubeflow"),
        external_services=_dependencies(
            dependencies.get("external_services"), f"{where}: dependencies.external_services"
        ),
        tags=tuple(map(str, tags)),
        last_verified=verified,
        links={str(k): str(v) for k, v in (data.get("links") or {}).items()},
    )


def component_metadata(stage: str) -> ComponentMetadata:
    """The checked metadata.yaml of ``stage``'s folder."""
    path = metadata_path(stage)
    where = path.relative_to(catalog.REPO_ROOT).as_posix()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ParameterError(f"{where} is missing: every component folder has one") from exc
    except yaml.YAMLError as exc:
        raise ParameterError(f"{where} is not valid YAML: {exc}") from exc
    return parse_metadata(data, where, stage)


def metadata_markdown(meta: ComponentMetadata) -> list[str]:
    """The README's Metadata section."""

    def deps(items: tuple[Dependency, ...]) -> str:
        return ", ".join(f"{d.name} {d.version}" for d in items) or "none"

    return [
        "## Metadata",
        "",
        f"- **Stability**: {meta.stability}",
        f"- **Owners**: approvers {', '.join(meta.approvers)}"
        + (f"; reviewers {', '.join(meta.reviewers)}" if meta.reviewers else ""),
        f"- **Kubeflow**: {deps(meta.kubeflow)}",
        f"- **External services**: {deps(meta.external_services)}",
        f"- **Tags**: {', '.join(meta.tags)}",
        f"- **Last verified**: {meta.last_verified.isoformat()}",
        "",
    ]
