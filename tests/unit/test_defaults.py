"""Each parameter's default is declared once.

The source of a stage setting's default is the stage's config dataclass. A component signature must
state the same default (component files cannot import the logic at module level, so they spell it
out, and this test holds them to it); a pipeline parameter must state the default of the component
parameter it feeds; a params file must not restate a default at all (it states only what differs).
A new parameter fails here until it is mapped: to a config field, or named as the component's or
the pipeline's own.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

import pytest
import yaml

from mlstages.tooling import catalog

CONFIGS = {
    "ingest": "mlstages.components.ingest.ingest:IngestConfig",
    "validate_data": "mlstages.components.validate_data.config:ValidationConfig",
    "preprocess": "mlstages.components.preprocess.config:PreprocessConfig",
    "engineer_features": "mlstages.components.engineer_features.engineer_features:FeatureConfig",
    "train": "mlstages.components.train.config:TrainConfig",
    "plan_trials": "mlstages.components.train.config:TrainConfig",
    "search_family": "mlstages.components.train.config:TrainConfig",
    "validate_model": "mlstages.components.validate_model.thresholds:BlessingConfig",
    "deploy": "mlstages.components.deploy.config:DeployConfig",
    "monitor_drift": "mlstages.components.monitor_drift.config:DriftConfig",
    "training_data": "mlstages.components.training_data.training_data:TrainingDataConfig",
    "batch_predict": "mlstages.components.batch_predict.batch_predict:BatchPredictConfig",
}
# Component parameter -> config field, where the names differ.
FIELD_ALIASES = {("engineer_features", "derived_features"): "derived"}
# KFP has no optional float/int parameter: the component spells "not set" as a sentinel that the
# wrapper turns into the config's None.
SENTINELS = {("preprocess", "outlier_factor"): 0.0, ("deploy", "canary_traffic_percent"): -1}
# Parameters of the component itself, with no config field: the component signature is their one
# declaration (where the registry is, which version is the candidate, what to snapshot).
COMPONENT_OWN = {
    ("ingest", "snapshot"),
    ("train", "model_registry"),
    ("train", "model_name"),
    ("validate_model", "model_registry"),
    ("validate_model", "model_name"),
    ("validate_model", "candidate_uri"),
    ("validate_model", "infra_validation"),
    ("deploy", "model_registry"),
    ("deploy", "source_run_id"),
    ("monitor_drift", "metric_drops"),
    ("training_data", "model_registry"),
    ("training_data", "model_name"),
    ("training_data", "sql_query"),
    ("evaluate", "slice_columns"),
    ("evaluate", "model_uri"),
    # evaluate has no config dataclass; its engine is checked by common.engine.check_engine.
    ("evaluate", "engine"),
    ("batch_predict", "model_uri"),
    ("batch_predict", "model_registry"),
    ("batch_predict", "model_name"),
}
# Pipeline parameter -> the component parameters it feeds, where the names differ.
PIPELINE_ALIASES = {
    "validation_policy": [("validate_data", "policy")],
    "data_uri": [("ingest", "source_uri")],
    # ingest's `encoding` is the file's text encoding; the pipeline's is preprocess' category encoding.
    "encoding": [("preprocess", "encoding")],
}


def _config_defaults(stage: str) -> dict[str, Any]:
    if stage not in CONFIGS:
        return {}
    module, name = CONFIGS[stage].split(":")
    config = getattr(importlib.import_module(module), name)
    defaults = {}
    for field in dataclasses.fields(config):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def _component_defaults(stage: str) -> dict[str, Any]:
    func = catalog.component(stage).python_func
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.default is not inspect.Parameter.empty and p.default is not None
    }


def _same(a: Any, b: Any) -> bool:
    """Equal as KFP and the configs see them: a list default and an empty tuple field are both
    "nothing"; numbers compare by value."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


@pytest.mark.parametrize("stage", sorted(catalog.COMPONENTS))
def test_component_defaults_are_the_configs(stage):
    config = _config_defaults(stage)
    wrong, unmapped = [], []
    for name, default in _component_defaults(stage).items():
        field = FIELD_ALIASES.get((stage, name), name)
        if (stage, name) in COMPONENT_OWN:
            continue
        if field not in config:
            unmapped.append(name)
            continue
        expected = config[field]
        if (stage, name) in SENTINELS and expected is None:
            expected = SENTINELS[(stage, name)]
        if not _same(default, expected):
            wrong.append(f"{name}={default!r} (config {field}={expected!r})")
    assert not unmapped, (
        f"components/{stage}/component.py: parameter(s) {unmapped} have no config field; add the field to "
        "the stage's config, or list them in COMPONENT_OWN here"
    )
    assert not wrong, f"components/{stage}/component.py states other defaults than its config: {wrong}"


def _component_params() -> dict[str, list[tuple[str, Any]]]:
    """Component parameter name -> [(stage, default or inspect.Parameter.empty)]."""
    found: dict[str, list[tuple[str, Any]]] = {}
    for stage in catalog.COMPONENTS:
        func = catalog.component(stage).python_func
        for name, p in inspect.signature(func).parameters.items():
            found.setdefault(name, []).append((stage, p.default))
    return found


@pytest.mark.parametrize("pipeline", sorted(catalog.PIPELINES))
def test_pipeline_defaults_are_the_components(pipeline):
    components = _component_params()
    wrong = []
    for name, spec in catalog.pipeline(pipeline).component_spec.inputs.items():
        if spec.default is None:
            continue
        targets = PIPELINE_ALIASES.get(name) or [(stage, name) for stage, _ in components.get(name, [])]
        for stage, param in targets:
            default = dict(components.get(param, [])).get(stage, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or default is None:
                continue  # required in the component: the pipeline's default is the only one
            value = spec.default
            if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
                value = int(value) if value.is_integer() else value
            if not _same(value, default):
                wrong.append(f"{name}={spec.default!r} (components/{stage}: {param}={default!r})")
    assert not wrong, f"pipeline {pipeline} states other defaults than its components: {wrong}"


def test_the_monitoring_pipeline_forwards_trainings_defaults():
    training = catalog.pipeline("training").component_spec.inputs
    monitoring = catalog.pipeline("monitoring").component_spec.inputs
    different = [
        name
        for name, spec in training.items()
        if name in monitoring
        and monitoring[name].default is not None  # required in monitoring (e.g. the registry)
        and not _same(monitoring[name].default, spec.default)
    ]
    assert not different, (
        f"the monitoring pipeline restates training's parameters with other defaults: {different}"
    )


@pytest.mark.parametrize("params_file", sorted(p.name for p in catalog.PIPELINES_DIR.glob("params/*.yaml")))
def test_params_files_do_not_restate_defaults(params_file):
    path = catalog.PIPELINES_DIR / "params" / params_file
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    declared = {}
    for pipeline in catalog.PIPELINES:
        for name, spec in catalog.pipeline(pipeline).component_spec.inputs.items():
            if spec.default is not None:
                declared.setdefault(name, spec.default)
    restated = [k for k, v in values.items() if k in declared and _same(v, declared[k])]
    assert not restated, (
        f"pipelines/params/{params_file} restates the default of {restated}: remove those keys, the pipeline "
        "declares them"
    )
