"""Every committed component.yaml and pipeline YAML loads back with the KFP SDK, and a reloaded
component runs locally."""

from __future__ import annotations

import pandas as pd
import pytest
from kfp import components

from mlstages.pipelines import catalog


@pytest.mark.parametrize("stage", list(catalog.COMPONENTS))
def test_component_yaml_loads(stage):
    loaded = components.load_component_from_file(str(catalog.component_yaml_path(stage)))
    original = catalog.component(stage).component_spec
    assert loaded.component_spec.inputs.keys() == original.inputs.keys()
    assert loaded.component_spec.outputs.keys() == original.outputs.keys()


@pytest.mark.parametrize("name", list(catalog.PIPELINES))
def test_pipeline_yaml_loads(name):
    loaded = components.load_component_from_file(str(catalog.pipeline_yaml_path(name)))
    assert "data_uri" in loaded.component_spec.inputs


def test_reloaded_component_runs_locally(kfp_local, tmp_path):
    source = tmp_path / "data.csv"
    pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}).to_csv(source, index=False)
    ingest = components.load_component_from_file(str(catalog.component_yaml_path("ingest")))
    task = ingest(source_uri=str(source))
    assert pd.read_parquet(task.outputs["dataset"].path).shape == (3, 2)
