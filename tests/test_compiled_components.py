"""Every committed component.yaml and pipeline YAML loads back with the KFP SDK, a reloaded
component runs locally, and every component.yaml is a PipelineSpec that names its release."""

from __future__ import annotations

import difflib

import pandas as pd
import pytest
import yaml
from google.protobuf import json_format
from kfp import components
from kfp.pipeline_spec import pipeline_spec_pb2

from mlstages.components import __version__
from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog
from mlstages.tooling.compile import _compile_to_text, component_image, read_release, release_line, released


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


@pytest.mark.parametrize("stage", list(catalog.COMPONENTS))
def test_component_yaml_is_a_pipeline_spec_of_this_release(stage):
    path = catalog.component_yaml_path(stage)
    text = path.read_text(encoding="utf-8")
    documents = list(yaml.safe_load_all(text))
    assert len(documents) == 1, f"{path}: a component YAML is one PipelineSpec document"
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == stage.replace("_", "-")
    packaged = catalog.component(stage)
    assert read_release(text, str(path)) == (__version__, component_image(packaged))
    assert component_image(packaged).endswith(f":{__version__}")


def test_the_release_line_changes_only_the_yaml_header():
    packaged = catalog.component("ingest")
    stamped = released(packaged)
    assert stamped.description.endswith("\n\n" + release_line(packaged))
    assert "Version: mlstages" not in (packaged.description or ""), "the packaged component was changed"
    assert stamped.pipeline_spec == packaged.pipeline_spec
    plain, versioned = _compile_to_text(packaged).splitlines(), _compile_to_text(stamped).splitlines()
    changed = [line for line in difflib.ndiff(plain, versioned) if line[:2] in ("- ", "+ ")]
    assert changed, "the release line is missing from the YAML"
    assert all(line[2:].startswith("#") for line in changed), changed


@pytest.mark.parametrize(
    "text",
    [
        "# PIPELINE DEFINITION\n# Name: other\ncomponents: {}\n",
        # A release line below the header is not the header's.
        "# PIPELINE DEFINITION\ncomponents: {}\n# Version: mlstages 0.1.0 (image x:0.1.0)\n",
    ],
)
def test_a_yaml_without_a_release_line_is_named(text):
    with pytest.raises(ParameterError, match=r"other\.yaml: no release line"):
        read_release(text, "other.yaml")
