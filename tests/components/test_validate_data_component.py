"""kfp.local runs of the validate_data component.

kfp.local refuses input artifacts for a component called on its own ("Input artifacts are not
supported"), so each test wraps the component in a small pipeline: ingest reads a Parquet file made
with write_dataset and feeds validate_data, and the pipeline returns validate_data's outputs.
"""

# No `from __future__ import annotations`: kfp reads the pipelines' annotations as types.
import json
from pathlib import Path
from typing import NamedTuple

import palmerpenguins
import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown

from mlstages.components.common.dataset_files import write_dataset
from mlstages.components.ingest.component import ingest
from mlstages.components.validate_data.component import validate_data
from mlstages.components.validate_data.schema import infer_schema, load_schema, save_schema


class Outputs(NamedTuple):
    statistics: Artifact
    schema: Artifact
    report: HTML
    summary: Markdown
    passed: bool
    anomaly_count: int


def _outputs(task) -> Outputs:
    return Outputs(
        statistics=task.outputs["statistics"],
        schema=task.outputs["schema"],
        report=task.outputs["report"],
        summary=task.outputs["summary"],
        passed=task.outputs["passed"],
        anomaly_count=task.outputs["anomaly_count"],
    )


@dsl.pipeline
def validate_inferred(path: str, label_column: str, policy: str) -> Outputs:
    data = ingest(source_uri=path)
    checked = validate_data(dataset=data.outputs["dataset"], label_column=label_column, policy=policy)
    return _outputs(checked)


class SchemaRuns(NamedTuple):
    chained: Artifact
    chained_passed: bool
    edited: Artifact
    edited_passed: bool


@dsl.pipeline
def validate_against_schemas(path: str, schema_uri: str) -> SchemaRuns:
    """The second run checks against the first run's schema output; the third against a file."""
    data = ingest(source_uri=path)
    first = validate_data(dataset=data.outputs["dataset"], label_column="species")
    chained = validate_data(
        dataset=data.outputs["dataset"], label_column="species", input_schema=first.outputs["schema"]
    )
    edited_schema = dsl.importer(artifact_uri=schema_uri, artifact_class=Artifact)
    edited = validate_data(
        dataset=data.outputs["dataset"],
        label_column="species",
        policy="warn",
        input_schema=edited_schema.output,
    )
    return SchemaRuns(
        chained=chained.outputs["statistics"],
        chained_passed=chained.outputs["passed"],
        edited=edited.outputs["statistics"],
        edited_passed=edited.outputs["passed"],
    )


@dsl.pipeline
def validate_with_schema_file(path: str, schema_uri: str):
    data = ingest(source_uri=path)
    given = dsl.importer(artifact_uri=schema_uri, artifact_class=Artifact)
    validate_data(dataset=data.outputs["dataset"], label_column="species", input_schema=given.output)


def _validate_data_files(root: Path) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and any(part.startswith("validate-data") for part in p.parts)
    ]


def test_penguins_pass_and_every_output_is_written(kfp_local, penguins_parquet):
    run = validate_inferred(path=penguins_parquet, label_column="species", policy="fail")
    outputs = run.outputs
    assert outputs["passed"] is True
    assert outputs["anomaly_count"] == 0

    statistics = json.loads(Path(outputs["statistics"].path).read_text())
    assert statistics["dataset"]["rows"] == 344
    assert statistics["columns"]["sex"]["missing"] == 11
    assert statistics["columns"]["species"]["top_values"][0] == {"value": "Adelie", "count": 152}
    metadata = outputs["statistics"].metadata
    assert metadata["rows"] == 344
    assert metadata["schema_source"] == "inferred"
    assert metadata["error_count"] == 0
    assert metadata["anomalies"] == []

    schema = load_schema(outputs["schema"].path)
    assert schema["label"] == {"column": "species", "kind": "classification"}
    assert schema["columns"]["island"]["domain"] == ["Biscoe", "Dream", "Torgersen"]
    assert outputs["schema"].metadata["version"] == 1

    report = Path(outputs["report"].path).read_text()
    assert report.startswith("<!DOCTYPE html>")
    assert report.count("<svg") == 5  # the five numeric columns
    summary = Path(outputs["summary"].path).read_text()
    assert "**Decision: passed**" in summary
    assert "| bill_length_mm | numeric | 2 |" in summary
    assert len(_validate_data_files(kfp_local / "root")) >= 4


def test_input_schema_given_or_chained(kfp_local, penguins_parquet, tmp_path):
    penguins = palmerpenguins.load_penguins()
    edited = infer_schema(penguins, label_column="species")
    edited["columns"]["island"]["domain"] = ["Biscoe", "Dream"]
    schema_path = tmp_path / "edited-schema.json"
    save_schema(edited, schema_path)

    run = validate_against_schemas(path=penguins_parquet, schema_uri=str(schema_path))
    outputs = run.outputs

    assert outputs["chained_passed"] is True
    assert outputs["chained"].metadata["schema_source"] == "given"
    assert outputs["chained"].metadata["anomaly_count"] == 0

    # policy="warn": the run succeeds, passed is False and the anomaly is recorded.
    assert outputs["edited_passed"] is False
    metadata = outputs["edited"].metadata
    assert metadata["schema_source"] == "given"
    assert metadata["error_count"] == 1
    [anomaly] = metadata["anomalies"]
    assert anomaly["kind"] == "out_of_domain"
    assert anomaly["column"] == "island"
    assert "52 value(s) not in the schema's domain: 'Torgersen' (52)" in anomaly["message"]


def test_single_class_label_fails_and_writes_nothing(kfp_local, tmp_path, capsys):
    adelie = palmerpenguins.load_penguins().query("species == 'Adelie'").head(40)
    path = tmp_path / "adelie.parquet"
    write_dataset(adelie, path)

    with pytest.raises(RuntimeError, match="validate-data"):
        validate_inferred(path=str(path), label_column="species", policy="fail")

    logs = capsys.readouterr().out
    assert "ValidationFailed: data validation failed with 1 error(s)" in logs
    assert (
        "- single_class_label: classification label column 'species' has only one class ('Adelie') in 40 row(s)"
        in logs
    )
    assert _validate_data_files(kfp_local / "root") == []


def test_bad_parameter_fails_before_writing(kfp_local, penguins_parquet, capsys):
    with pytest.raises(RuntimeError, match="validate-data"):
        validate_inferred(path=penguins_parquet, label_column="species", policy="ignore")
    assert "parameter policy='ignore' is not one of: 'fail', 'warn'" in capsys.readouterr().out
    assert _validate_data_files(kfp_local / "root") == []


def test_invalid_input_schema_is_named(kfp_local, penguins_parquet, tmp_path, capsys):
    schema_path = tmp_path / "bad-schema.json"
    schema_path.write_text(json.dumps({"version": 2, "columns": {}}))
    with pytest.raises(RuntimeError, match="validate-data"):
        validate_with_schema_file(path=penguins_parquet, schema_uri=str(schema_path))
    assert "bad-schema.json: version must be 1, got 2" in capsys.readouterr().out
    assert _validate_data_files(kfp_local / "root") == []
