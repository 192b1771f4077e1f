"""The cluster-rules checker (tests/kfp_launcher_rules.py) catches each violation it exists for, on
small synthetic executor outputs; and the assumptions it rests on hold for the components."""

from __future__ import annotations

import ast
import inspect
import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kfp_launcher_rules import (
    MAX_ARG_STRLEN,
    MAX_ARTIFACT_METADATA_BYTES,
    MAX_INPUT_ARTIFACTS,
    MAX_METADATA_STRING,
    check_executor_output,
    check_run,
    cluster_form,
    output_types,
    stage_of,
)

from mlstages.tooling import catalog

TYPES = {
    "toy": {
        "dataset": "system.Dataset",
        "metrics": "system.Metrics",
        "roc": "system.ClassificationMetrics",
        "report": "system.HTML",
        "summary": "system.Markdown",
    }
}


def _task(
    tmp_path: Path, artifacts: dict[str, dict[str, Any]], parameters: dict[str, Any] | None = None
) -> Path:
    """A task folder "toy" as kfp.local leaves it: executor_output.json and one file per artifact
    (a folder where the artifact says ``"folder": True``; nothing where it says ``"missing"``)."""
    task = tmp_path / "toy"
    task.mkdir(exist_ok=True)
    recorded = {}
    for name, spec in artifacts.items():
        uri = task / name
        if spec.get("folder"):
            uri.mkdir()
            (uri / "index.html").write_text("<p>hi</p>")
        elif not spec.get("missing"):
            uri.write_text("x")
        recorded[name] = {
            "artifacts": [{"name": name, "uri": str(uri), "metadata": spec.get("metadata", {})}]
        }
    output = task / "executor_output.json"
    # allow_nan: Python's json writes NaN and Infinity tokens, which is how they reach the file.
    output.write_text(
        json.dumps({"parameterValues": parameters or {}, "artifacts": recorded}, allow_nan=True)
    )
    return output


def _rules(tmp_path: Path, artifacts: dict[str, dict[str, Any]], parameters: dict[str, Any] | None = None):
    return [(v.output, v.rule) for v in check_executor_output(_task(tmp_path, artifacts, parameters), TYPES)]


def test_clean_outputs_pass(tmp_path):
    assert (
        _rules(
            tmp_path,
            {
                "dataset": {"metadata": {"rows": 3, "passed": True, "types": {"a": "numeric"}, "tags": []}},
                "metrics": {"metadata": {"accuracy": 0.9, "rows": 3}, "missing": True},
                "report": {},
                "summary": {},
            },
            {"passed": True, "count": 2},
        )
        == []
    )


@pytest.mark.parametrize(
    "metadata, rule",
    [
        ({"baseline": None}, "null"),
        ({"nested": {"deep": [1, None]}}, "null"),
        ({"score": math.nan}, "not finite"),
        ({"scores": [{"r2": math.inf}]}, "not finite"),
        ({"bound": -math.inf}, "not finite"),
        ({"name": "x" * (MAX_METADATA_STRING + 1)}, "long string"),
        ({"x" * (MAX_METADATA_STRING + 1): 1}, "long string"),
        ({"column_types": {f"feature_{i:05d}": "numeric" for i in range(2000)}}, "metadata too large"),
    ],
)
def test_each_metadata_violation_is_caught(tmp_path, metadata, rule):
    assert ("dataset", rule) in _rules(tmp_path, {"dataset": {"metadata": metadata}})


@pytest.mark.parametrize("value", ["0.9", True, {"a": 1}, None])
def test_a_metric_that_is_not_a_number_is_caught(tmp_path, value):
    found = _rules(tmp_path, {"metrics": {"metadata": {"accuracy": value}, "missing": True}})
    assert ("metrics", "metric not a number") in found


def test_classification_metrics_the_ui_cannot_draw_are_caught(tmp_path):
    bad = {
        "confidenceMetrics": [{"confidenceThreshold": 0.5, "falsePositiveRate": "0.1", "recall": 0.9}],
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": "a"}, {"displayName": "b"}],
            "rows": [{"row": [1]}],
        },
    }
    found = _rules(tmp_path, {"roc": {"metadata": bad, "missing": True}})
    assert found.count(("roc", "classification metrics")) == 2


def test_html_or_markdown_as_a_folder_is_caught(tmp_path):
    found = _rules(
        tmp_path, {"report": {"folder": True}, "summary": {"folder": True}, "dataset": {"folder": True}}
    )
    assert sorted(found) == [("report", "not one file"), ("summary", "not one file")]


def test_a_missing_output_file_is_caught_but_not_for_metrics(tmp_path):
    found = _rules(
        tmp_path, {"dataset": {"missing": True}, "metrics": {"missing": True, "metadata": {"a": 1}}}
    )
    assert found == [("dataset", "no file")]


def test_null_and_nan_output_parameters_are_caught(tmp_path):
    found = _rules(tmp_path, {}, {"share": math.nan, "reason": None, "ok": "fine"})
    assert sorted(found) == [("reason", "null"), ("share", "not finite")]


def test_an_undeclared_output_and_an_unknown_task_are_caught(tmp_path):
    assert _rules(tmp_path, {"extra": {}}) == [("extra", "unknown output")]
    stray = tmp_path / "run" / "no-such-stage"
    stray.mkdir(parents=True)
    (stray / "executor_output.json").write_text("{}")
    assert [v.rule for v in check_run(tmp_path / "run", TYPES)] == ["unknown task"]


def test_a_run_folder_without_outputs_fails(tmp_path):
    assert [v.rule for v in check_run(tmp_path, TYPES)] == ["no outputs"]


def test_task_folders_map_to_their_components():
    assert stage_of("validate-data") == "validate_data"
    assert stage_of("ingest-2") == "ingest"
    assert stage_of("a/b/fetch-champion") == "fetch_champion"
    types = output_types()
    assert set(types) == set(catalog.COMPONENTS)
    assert types["evaluate"]["metrics"] == "system.Metrics"
    assert types["validate_data"]["report"] == "system.HTML"


def test_the_metadata_budget_fits_one_command_line_argument():
    """Every input artifact's metadata travels in the task's one --executor_input argument."""
    most = max(
        sum(
            1
            for spec in (catalog.component(s).component_spec.inputs or {}).values()
            if spec.type.startswith("system.")
        )
        for s in catalog.COMPONENTS
    )
    assert most <= MAX_INPUT_ARTIFACTS
    # What is left is for the parameters and the executor input's own structure.
    assert MAX_INPUT_ARTIFACTS * MAX_ARTIFACT_METADATA_BYTES <= MAX_ARG_STRLEN - 16 * 1024


def _metadata_reads(name: str, func: Any, inputs: set[str]) -> list[str]:
    """Where ``func`` (a component's body) reads the ``.metadata`` of one of its ``inputs``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return [
        f"{name}: line {node.lineno} reads {node.value.id}.metadata"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "metadata"
        and isinstance(node.value, ast.Name)
        and node.value.id in inputs
    ]


def _input_metadata_reads(stage: str) -> list[str]:
    component = catalog.component(stage)
    inputs = {n for n, s in (component.component_spec.inputs or {}).items() if s.type.startswith("system.")}
    return _metadata_reads(stage, component.python_func, inputs)


def test_no_component_reads_an_upstream_artifacts_metadata():
    """On a cluster an upstream int comes back a double and a bool 1.0 (cluster_form). No
    component reads input metadata today, so none can trip on that; a new reader fails here and
    must be tested with cluster_form(...) input before it is allowed in."""
    reads = [line for stage in catalog.COMPONENTS for line in _input_metadata_reads(stage)]
    assert reads == []


def test_a_component_reading_input_metadata_is_found():
    def reader(data: Any, out: Any) -> int:
        out.metadata["rows"] = 1  # its own output: not a read of upstream metadata
        return int(data.metadata["rows"])

    assert _metadata_reads("reader", reader, {"data"}) == ["reader: line 3 reads data.metadata"]


def test_cluster_form_is_what_ml_metadata_hands_back():
    assert cluster_form({"rows": 3, "passed": True, "off": False, "share": 0.5, "tags": [1, "a"]}) == {
        "rows": 3.0,
        "passed": 1.0,
        "off": 0.0,
        "share": 0.5,
        "tags": [1.0, "a"],
    }
    assert isinstance(cluster_form({"rows": 3})["rows"], float)
    with pytest.raises(ValueError, match="null"):
        cluster_form({"baseline": None})


def test_the_run_report_reads_metadata_in_its_cluster_form(tmp_path):
    """format_report reads the evaluate metrics and deploy's target back from artifact metadata."""
    from mlstages.tooling import local

    evaluate = local.TaskOutputs(
        "evaluate", {"metrics": {"uri": "m", "metadata": cluster_form({"accuracy": 0.95, "n_test": 68})}}
    )
    deploy = local.TaskOutputs(
        "deploy",
        {"inference_service": {"uri": "i", "metadata": cluster_form({"target": "local", "ready": True})}},
        {"deployed": True, "endpoint": "http://127.0.0.1:1"},
    )
    report = local.RunReport("training", tmp_path, [evaluate, deploy], "gs://b/d.csv", 1.0)
    text = local.format_report(report)
    assert "accuracy                 0.9500" in text and "n_test                   68.0000" in text
    assert "the local KServe model server" in text
