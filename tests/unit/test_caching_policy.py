"""A real cluster caches every task unless its spec says not to; kfp.local caches nothing unless
asked, so a local run cannot show a stale answer. The compiled YAML is what a cluster runs: the
tasks that read or move the champion, or decide on a moving window, must have caching off in it,
in the committed YAML and whatever a settings file says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog, compile
from mlstages.tooling.platform import NEVER_CACHED, parse_settings

# Read from a source a run does not control (a URI, a query): off by default, on only by setting.
OFF_BY_DEFAULT = ("ingest",)


def _cached_tasks(spec: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Every container task of a compiled pipeline, in every nested DAG: its path -> (stage,
    caching on). KFP writes ``cachingOptions: {}`` for off (protobuf leaves out a false)."""
    found: dict[str, tuple[str, bool]] = {}

    def walk(dag: dict[str, Any], where: str) -> None:
        for name, task in (dag.get("tasks") or {}).items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"], f"{where}/{name}")
                continue
            stage = component["executorLabel"].removeprefix("exec-")
            stage = stage.rsplit("-", 1)[0] if stage.rsplit("-", 1)[-1].isdigit() else stage
            found[f"{where}/{name}"] = (
                stage.replace("-", "_"),
                bool((task.get("cachingOptions") or {}).get("enableCache")),
            )

    walk(spec["root"]["dag"], "")
    return found


def _committed(name: str) -> dict[str, Any]:
    return next(yaml.safe_load_all(catalog.pipeline_yaml_path(name).read_text(encoding="utf-8")))


def _never_cached_violations(spec: dict[str, Any]) -> list[str]:
    return [
        f"{path} ({stage}) has caching on"
        for path, (stage, cached) in _cached_tasks(spec).items()
        if cached and stage in (*NEVER_CACHED, *OFF_BY_DEFAULT)
    ]


@pytest.mark.parametrize("name", list(catalog.PIPELINES))
def test_the_committed_yaml_never_caches_what_reads_or_moves_the_champion(name):
    tasks = _cached_tasks(_committed(name))
    assert {stage for stage, _ in tasks.values()} <= set(catalog.COMPONENTS), tasks
    assert _never_cached_violations(_committed(name)) == []


def test_every_pipeline_has_the_tasks_the_policy_names():
    """The policy is not vacuous: the stages it names are in the compiled pipelines."""
    stages = {stage for name in catalog.PIPELINES for stage, _ in _cached_tasks(_committed(name)).values()}
    assert set(NEVER_CACHED) <= stages
    # And the deterministic stages are cached, as the design says (a cluster's default).
    training = _cached_tasks(_committed("training"))
    assert all(cached for stage, cached in training.values() if stage in ("preprocess", "train", "evaluate"))


def test_the_check_catches_a_cached_deploy():
    spec = _committed("training")
    for component in spec["components"].values():
        for task in (component.get("dag") or {}).get("tasks", {}).values():
            if task["componentRef"]["name"] == "comp-deploy":
                task["cachingOptions"] = {"enableCache": True}
    assert [v for v in _never_cached_violations(spec) if "deploy" in v]


@pytest.mark.parametrize("name", list(catalog.PIPELINES))
def test_caching_on_by_default_in_settings_does_not_reach_the_champion_tasks(name, tmp_path: Path):
    settings = parse_settings({"defaults": {"caching": True}})
    spec = next(yaml.safe_load_all(compile.pipeline_yaml(name, settings)))
    violations = _never_cached_violations(spec)
    # defaults turn ingest's caching on (allowed: with a snapshot), never the champion's tasks.
    assert [v for v in violations if "(ingest)" not in v] == []


@pytest.mark.parametrize("stage", NEVER_CACHED)
def test_a_setting_that_caches_a_champion_task_is_refused(stage):
    with pytest.raises(ParameterError, match=rf"stages\.{stage}\.caching: {stage} is never cached"):
        parse_settings({"stages": {stage: {"caching": True}}})
    parse_settings({"stages": {stage: {"caching": False}}})
