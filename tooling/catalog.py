"""Every component and pipeline of the suite, by name: what `mlstages compile` writes and the
docs list."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPONENTS_DIR = REPO_ROOT / "components"
PIPELINES_DIR = REPO_ROOT / "pipelines"
DOCS_DIR = REPO_ROOT / "docs"

# Where the repository's files are served as they are at a git ref. A release's tag (v<version>)
# pins the component YAML and, through the image tags written into it, the code every step runs.
RAW_FILES_URL = "https://raw.githubusercontent.com/mlstages/mlstages"

# stage name → "module:attribute" of its KFP component, in pipeline order.
COMPONENTS: dict[str, str] = {
    "ingest": "mlstages.components.ingest.component:ingest",
    "validate_data": "mlstages.components.validate_data.component:validate_data",
    "preprocess": "mlstages.components.preprocess.component:preprocess",
    "engineer_features": "mlstages.components.engineer_features.component:engineer_features",
    "plan_trials": "mlstages.components.plan_trials.component:plan_trials",
    "search_family": "mlstages.components.search_family.component:search_family",
    "train": "mlstages.components.train.component:train",
    "evaluate": "mlstages.components.evaluate.component:evaluate",
    "validate_model": "mlstages.components.validate_model.component:validate_model",
    "deploy": "mlstages.components.deploy.component:deploy",
    "fetch_champion": "mlstages.components.fetch_champion.component:fetch_champion",
    "monitor_drift": "mlstages.components.monitor_drift.component:monitor_drift",
    "training_data": "mlstages.components.training_data.component:training_data",
    "batch_predict": "mlstages.components.batch_predict.component:batch_predict",
}

# pipeline name → ("module:factory", parameter file); the factory takes PlatformSettings.
PIPELINES: dict[str, tuple[str, str]] = {
    "training": ("mlstages.pipelines.training:build_training_pipeline", "params/training.yaml"),
    "monitoring": ("mlstages.pipelines.monitoring:build_monitoring_pipeline", "params/monitoring.yaml"),
    "inference": ("mlstages.pipelines.inference:build_inference_pipeline", "params/inference.yaml"),
}


def load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def component(stage: str) -> Any:
    return load(COMPONENTS[stage])


def pipeline(name: str, settings: Any = None) -> Any:
    """The pipeline ``name`` built with platform settings (none: no cluster configuration)."""
    return load(PIPELINES[name][0])(settings)


def component_yaml_path(stage: str) -> Path:
    return COMPONENTS_DIR / stage / "component.yaml"


def component_readme_path(stage: str) -> Path:
    return COMPONENTS_DIR / stage / "README.md"


def pipeline_yaml_path(name: str) -> Path:
    return PIPELINES_DIR / f"{name}_pipeline.yaml"


def pipeline_params_path(name: str) -> Path:
    """The pipeline's parameter file for your own data (nothing dataset-specific in it)."""
    return PIPELINES_DIR / PIPELINES[name][1]


# The built-in dataset's parameter file, per pipeline: what runs without a data URI use.
BUILTIN_DATASET_PARAMS = {
    "training": "params/penguins.yaml",
    "monitoring": "params/monitoring.yaml",
    "inference": "params/inference_penguins.yaml",
}


def builtin_params_path(name: str) -> Path:
    """The parameter file for the built-in dataset (Palmer penguins): `make run`'s settings."""
    return PIPELINES_DIR / BUILTIN_DATASET_PARAMS[name]


def catalog_page_path() -> Path:
    return DOCS_DIR / "components.md"


def release_tag(version: str) -> str:
    """The git tag of a release: ``v0.1.0`` for mlstages 0.1.0."""
    return f"v{version}"


def component_url(stage: str, version: str) -> str:
    """The raw URL of a component's YAML in release ``version``, for
    ``kfp.components.load_component_from_url``."""
    relative = component_yaml_path(stage).relative_to(REPO_ROOT).as_posix()
    return f"{RAW_FILES_URL}/{release_tag(version)}/{relative}"
