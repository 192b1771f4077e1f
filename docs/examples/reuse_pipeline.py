"""A platform team's own pipeline from three mlstages components loaded by URL.

ingest reads the raw data, validate_data checks it (and fails the run on an error), and
preprocess splits it and fits the preprocessing on the train split only. The pipeline returns
the splits and the fitted transformer for the team's own training step.

    python reuse_pipeline.py                         # writes data_prep.yaml, to upload to Kubeflow
    python reuse_pipeline.py registry.example.com/ml # the same, run from your mirror of the images
"""

import sys
from typing import NamedTuple

from kfp import compiler, components, dsl
from kfp.dsl import Dataset, Model
from kfp.dsl.graph_component import GraphComponent

# A release tag pins the YAML and, through the image tags written into it, the code every step runs.
MLSTAGES = "https://raw.githubusercontent.com/mlstages/mlstages/v0.1.0/components"


class Prepared(NamedTuple):
    train: Dataset
    test: Dataset
    transformer: Model


def from_registry(task: dsl.PipelineTask, registry: str) -> dsl.PipelineTask:
    """Run ``task`` from your registry's copy of its image: same name and tag, your registry."""
    name_and_tag = task.container_spec.image.rsplit("/", 1)[-1]
    return task.set_container_image(f"{registry.rstrip('/')}/{name_and_tag}")


def build_data_prep(base_url: str = MLSTAGES, registry: str | None = None) -> GraphComponent:
    """The pipeline, from the components under ``base_url``; with ``registry``, every step runs from
    your mirror of the images."""
    ingest, validate_data, preprocess = (
        components.load_component_from_url(f"{base_url}/{stage}/component.yaml")
        for stage in ("ingest", "validate_data", "preprocess")
    )

    @dsl.pipeline(name="data-prep", description="Ingest, validate and split a dataset.")
    def data_prep(data_uri: str, label_column: str, test_size: float = 0.2) -> Prepared:
        raw = ingest(source_uri=data_uri)
        raw.set_caching_options(False)  # the data under data_uri may change; read it every run
        checked = validate_data(dataset=raw.outputs["dataset"], label_column=label_column, policy="fail")
        prepared = preprocess(dataset=raw.outputs["dataset"], label_column=label_column, test_size=test_size)
        prepared.after(checked)  # split only data that passed validation
        if registry:
            for task in (raw, checked, prepared):
                from_registry(task, registry)
        return Prepared(
            train=prepared.outputs["train"],
            test=prepared.outputs["test"],
            transformer=prepared.outputs["transformer"],
        )

    return data_prep


if __name__ == "__main__":
    pipeline = build_data_prep(registry=sys.argv[1] if len(sys.argv) > 1 else None)
    compiler.Compiler().compile(pipeline, "data_prep.yaml")
