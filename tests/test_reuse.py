"""Reuse by URL, as a platform team does it.

The repository is served over real HTTP (the standard library's server on 127.0.0.1, standing in
for raw.githubusercontent.com at a release tag: same paths under one base URL). Every committed
component.yaml loads with kfp's own ``load_component_from_url`` as the same release, image and
interface as the component in the package. The docs' example (docs/examples/reuse_pipeline.py,
quoted verbatim in docs/reuse.md) builds a pipeline from three components loaded that way,
compiles to a PipelineSpec and runs with kfp.local on the built-in dataset.

Not exercised: GitHub itself, and running the images (kfp.local runs the steps in this environment).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml
from google.protobuf import json_format
from kfp import components
from kfp.pipeline_spec import pipeline_spec_pb2

from mlstages.components import __version__
from mlstages.tooling import catalog
from mlstages.tooling.compile import _compile_to_text, component_image, read_release

EXAMPLE = catalog.DOCS_DIR / "examples" / "reuse_pipeline.py"
REUSE_DOC = catalog.DOCS_DIR / "reuse.md"
EXAMPLE_STAGES = ("ingest", "validate_data", "preprocess")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the test output is not the place for an access log
        pass


@pytest.fixture(scope="module")
def served_repository():
    """The repository's files over HTTP on 127.0.0.1; yields the base URL (the tag's root)."""
    handler = functools.partial(_QuietHandler, directory=str(catalog.REPO_ROOT))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def reuse_pipeline():
    """docs/examples/reuse_pipeline.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("reuse_pipeline", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _url(base: str, stage: str) -> str:
    return f"{base}/{catalog.component_yaml_path(stage).relative_to(catalog.REPO_ROOT).as_posix()}"


def _pipeline_spec(compiled_yaml: str) -> pipeline_spec_pb2.PipelineSpec:
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(next(yaml.safe_load_all(compiled_yaml)), spec)
    return spec


def _images(spec: pipeline_spec_pb2.PipelineSpec) -> dict[str, str]:
    """Executor label -> image; the deployment spec is a Struct holding a PipelineDeploymentConfig."""
    deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
    json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec), deployment)
    return {label: executor.container.image for label, executor in deployment.executors.items()}


@pytest.mark.parametrize("stage", list(catalog.COMPONENTS))
def test_component_loads_by_url_as_the_packaged_release(served_repository, stage):
    url = _url(served_repository, stage)
    loaded = components.load_component_from_url(url)
    packaged = catalog.component(stage)

    # KFP writes the name into the YAML as a Kubernetes-style name and reads that back.
    assert loaded.name == packaged.name.replace("_", "-") == stage.replace("_", "-")
    with urllib.request.urlopen(url) as response:
        served_text = response.read().decode("utf-8")
    assert read_release(served_text, url) == (__version__, component_image(packaged))
    assert component_image(loaded) == component_image(packaged)
    assert component_image(loaded).endswith(f"/mlstages-{stage.replace('_', '-')}:{__version__}")
    # The interface, name by name: types, defaults, optionality and descriptions.
    assert loaded.component_spec.inputs == packaged.component_spec.inputs
    assert loaded.component_spec.outputs == packaged.component_spec.outputs
    # And what runs: the compiled spec (command, arguments, image) is the packaged one's.
    assert loaded.pipeline_spec == packaged.pipeline_spec


def test_the_docs_quote_the_example_verbatim():
    doc = REUSE_DOC.read_text(encoding="utf-8")
    marker = "<!-- the file docs/examples/reuse_pipeline.py, which the tests run -->"
    assert marker in doc, f"{REUSE_DOC.name} lost the marker before the example: {marker}"
    block = re.search(r"```python\n(.*?)```", doc[doc.index(marker) :], re.DOTALL)
    assert block, f"no ```python block after the marker in {REUSE_DOC.name}"
    assert block.group(1) == EXAMPLE.read_text(encoding="utf-8"), (
        f"the example in {REUSE_DOC.name} differs from {EXAMPLE.name}: copy the file into the doc"
    )


def test_the_example_pins_this_release(reuse_pipeline):
    for stage in EXAMPLE_STAGES:
        assert _url(reuse_pipeline.MLSTAGES.rsplit("/components", 1)[0], stage) == catalog.component_url(
            stage, __version__
        )


@pytest.mark.parametrize("doc", ["README.md", "docs/reuse.md"])
def test_the_docs_name_this_release(doc):
    # Git tags in URLs and pip specs (.../v0.1.0/..., @v0.1.0), image tags and release lines.
    release = re.compile(r"(?:/v|@v|mlstages-[a-z-]+:|mlstages )(\d+\.\d+\.\d+)")
    text = (catalog.REPO_ROOT / doc).read_text(encoding="utf-8")
    named = release.findall(text)
    assert named, f"{doc} names no release"
    assert set(named) == {__version__}, f"{doc} names releases {sorted(set(named))}, not only {__version__}"


def test_the_example_compiles_from_components_loaded_by_url(served_repository, reuse_pipeline):
    base = f"{served_repository}/components"
    spec = _pipeline_spec(_compile_to_text(reuse_pipeline.build_data_prep(base)))
    assert _images(spec) == {
        f"exec-{s.replace('_', '-')}": component_image(catalog.component(s)) for s in EXAMPLE_STAGES
    }
    assert set(spec.root.output_definitions.artifacts) == {"train", "test", "transformer"}

    mirrored = _pipeline_spec(
        _compile_to_text(reuse_pipeline.build_data_prep(base, "registry.example.com/ml/"))
    )
    assert sorted(_images(mirrored).values()) == sorted(
        f"registry.example.com/ml/mlstages-{s.replace('_', '-')}:{__version__}" for s in EXAMPLE_STAGES
    )


@pytest.mark.e2e
def test_the_example_runs_locally_on_the_built_in_dataset(served_repository, reuse_pipeline, kfp_local):
    import palmerpenguins

    source = kfp_local / "penguins.csv"
    penguins = palmerpenguins.load_penguins()
    penguins.to_csv(source, index=False)
    data_prep = reuse_pipeline.build_data_prep(f"{served_repository}/components")

    run = data_prep(data_uri=str(source), label_column="species", test_size=0.25)

    splits = {name: pd.read_parquet(run.outputs[name].path) for name in ("train", "test")}
    assert sum(len(frame) for frame in splits.values()) == len(penguins)
    assert len(splits["test"]) == pytest.approx(0.25 * len(penguins), abs=1)
    assert set(splits["train"]["species"]) == set(penguins["species"])
    transformer = run.outputs["transformer"]
    assert transformer.metadata["label_column"] == "species"
    assert (Path(transformer.path) / "transformer.joblib").is_file()
