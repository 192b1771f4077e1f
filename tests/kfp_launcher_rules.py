"""A real KFP cluster's rules, checked on what a kfp.local run wrote (issue 13, item 9).

kfp.local accepts outputs that a cluster refuses or shows wrong. KFP 2.17's launcher
(backend/src/v2/component/launcher_v2.go, metadata/converter.go) parses ``executor_output.json``
as strict protobuf JSON and stores artifact metadata in ML Metadata as a protobuf Struct:

- a ``None`` metadata value fails the task on a cluster (kfp.local keeps it);
- NaN and +/-infinity are not JSON numbers: they fail everywhere, so they are never written;
- booleans become 1/0 and integers doubles; that only breaks a reader of the value. No component
  reads an upstream artifact's metadata (tests/unit/test_launcher_rules.py holds that), so ints
  and booleans are not flagged, except in system.Metrics, whose every value the UI shows as a
  number, where ``True`` would read as ``1``;
- the UI renders system.HTML and system.Markdown from ONE object: a folder shows blank;
- a missing output file only logs a warning on a cluster, and the UI then shows nothing (Metrics
  and ClassificationMetrics are their metadata and have no file).

Size: the whole executor input of a task, with every input artifact's metadata, is ONE
command-line argument (``--executor_input {{$}}``), here and in the launcher's pod, and Linux caps
one argument at 128 KiB (MAX_ARG_STRLEN): "Argument list too long" (issue 13). So one artifact's
metadata may take at most ``MAX_ARTIFACT_METADATA_BYTES``, and one string in it at most
``MAX_METADATA_STRING``: metadata is for short facts (counts, names, URIs, hashes); anything longer
belongs in the artifact's file.

``assert_cluster_safe(run_dir)`` checks every task output of a finished local run; the e2e tests
call it at the end of each run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Linux's cap on one command-line argument (MAX_ARG_STRLEN, 32 pages of 4 KiB).
MAX_ARG_STRLEN = 128 * 1024
# The most artifacts any component takes as inputs, with room to spare (validate_model and
# monitor_drift take 3): their metadata together must leave room in one argument for the
# parameters and the rest of the executor input. tests/unit/test_launcher_rules.py checks that
# the components keep to it.
MAX_INPUT_ARTIFACTS = 3
MAX_ARTIFACT_METADATA_BYTES = 32 * 1024  # 3 x 32 KiB leaves 32 KiB of the 128 KiB argument
# The longest string in metadata (a key or a value). 4 KiB is four times ingest's cap on a column
# name (1,000 characters), the longest thing that rightly travels in metadata; a longer one is a
# report or a cell value that leaked in, and one per column would overrun the budget above.
MAX_METADATA_STRING = 4 * 1024

# The artifact types whose shape the launcher or the UI cares about (schema titles).
METRICS = "system.Metrics"
CLASSIFICATION_METRICS = "system.ClassificationMetrics"
SINGLE_FILE_TYPES = ("system.HTML", "system.Markdown")
METADATA_ONLY_TYPES = (METRICS, CLASSIFICATION_METRICS)


@dataclass(frozen=True)
class Violation:
    task: str
    output: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.task}.{self.output}: {self.rule}: {self.detail}"


def output_types() -> dict[str, dict[str, str]]:
    """Every component's artifact outputs and their schema titles, from the components themselves:
    executor_output.json does not say an artifact's type."""
    from mlstages.tooling import catalog

    types: dict[str, dict[str, str]] = {}
    for stage in catalog.COMPONENTS:
        outputs = catalog.component(stage).component_spec.outputs or {}
        # A type reads "system.HTML@0.0.1"; parameters (str, bool, ...) have no "system." prefix.
        types[stage] = {
            name: spec.type.split("@")[0] for name, spec in outputs.items() if spec.type.startswith("system.")
        }
    return types


def stage_of(task_folder: str) -> str:
    """The component a kfp.local task folder ran: the task name is the component's name with
    dashes, and KFP adds "-2", "-3" to a second use in one pipeline."""
    name = Path(task_folder).name
    return re.sub(r"-\d+$", "", name).replace("-", "_")


def _walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every key and leaf value in nested dicts and lists, with its path."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{where}[{key!r}] (key)", key
            yield from _walk(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]")
    else:
        yield where, value


def _value_violations(value: Any, where: str, *, limit_strings: bool) -> Iterator[tuple[str, str]]:
    for path, leaf in _walk(value, where):
        if leaf is None:
            yield "null", f"{path} is null: the launcher refuses it; leave the key out"
        elif isinstance(leaf, float) and not math.isfinite(leaf):
            yield "not finite", f"{path} is {leaf}: not a JSON number; leave it out or say why in a string"
        elif limit_strings and isinstance(leaf, str) and len(leaf) > MAX_METADATA_STRING:
            yield (
                "long string",
                f"{path} is {len(leaf)} characters (cap {MAX_METADATA_STRING}): put it in the artifact's file",
            )


def check_artifact(
    task: str, output: str, artifact: Mapping[str, Any], schema_title: str | None
) -> list[Violation]:
    """The rules for one output artifact as executor_output.json records it."""
    found: list[Violation] = []

    def flag(rule: str, detail: str) -> None:
        found.append(Violation(task, output, rule, detail))

    metadata = artifact.get("metadata") or {}
    for rule, detail in _value_violations(metadata, "metadata", limit_strings=True):
        flag(rule, detail)
    size = len(json.dumps(metadata, allow_nan=True).encode("utf-8"))
    if size > MAX_ARTIFACT_METADATA_BYTES:
        flag(
            "metadata too large",
            f"{size} bytes (cap {MAX_ARTIFACT_METADATA_BYTES}): a task reading it gets it in its one "
            f"{MAX_ARG_STRLEN}-byte command-line argument",
        )
    if schema_title is None:
        flag("unknown output", "the component declares no artifact output of this name")
    elif schema_title == METRICS:
        for name, value in metadata.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                flag("metric not a number", f"{name!r} is {value!r}: the UI shows system.Metrics as numbers")
    elif schema_title == CLASSIFICATION_METRICS:
        found += [
            Violation(task, output, "classification metrics", d) for d in _classification_shape(metadata)
        ]
    uri = str(artifact.get("uri") or "")
    path = Path(uri)
    if schema_title in METADATA_ONLY_TYPES:
        pass  # the UI reads these from their metadata; KFP writes no file for them
    elif not uri or not path.exists():
        # On a cluster a missing output file only logs a warning and the artifact points nowhere.
        flag("no file", f"nothing was written at {uri!r}")
    elif schema_title in SINGLE_FILE_TYPES and not path.is_file():
        flag(
            "not one file",
            f"{schema_title} at {uri} is a folder: the UI renders one object, a folder is blank",
        )
    return found


def _classification_shape(metadata: Mapping[str, Any]) -> Iterator[str]:
    """The shape the UI's ROC curve and confusion matrix read (MetricsVisualizations.tsx)."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for index, point in enumerate(metadata.get("confidenceMetrics") or []):
        keys = ("confidenceThreshold", "falsePositiveRate", "recall")
        if not isinstance(point, Mapping) or not all(number(point.get(k)) for k in keys):
            yield f"confidenceMetrics[{index}] needs numeric {', '.join(keys)}: {point!r}"
    matrix = metadata.get("confusionMatrix")
    if matrix is not None:
        labels = matrix.get("annotationSpecs") or []
        rows = [row.get("row") for row in matrix.get("rows") or []]
        if len(rows) != len(labels) or any(not isinstance(r, list) or len(r) != len(labels) for r in rows):
            yield f"confusionMatrix is not square over its {len(labels)} labels: {rows!r}"


def check_executor_output(
    path: Path, types: Mapping[str, Mapping[str, str]] | None = None, task: str | None = None
) -> list[Violation]:
    """The rules for one task's executor_output.json (artifacts and output parameters)."""
    types = output_types() if types is None else types
    task = task or path.parent.name
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)  # Python's json reads NaN and Infinity; strict protobuf JSON does not
    stage = stage_of(task)
    if stage not in types:
        return [Violation(task, "-", "unknown task", f"no component {stage!r} for task folder {task!r}")]
    found: list[Violation] = []
    for name, value in (data.get("parameterValues") or {}).items():
        for rule, detail in _value_violations(value, "value", limit_strings=False):
            found.append(Violation(task, name, rule, detail))
    for name, group in (data.get("artifacts") or {}).items():
        for artifact in group.get("artifacts") or []:
            found += check_artifact(task, name, artifact, types[stage].get(name))
    return found


def check_run(run_dir: Path, types: Mapping[str, Mapping[str, str]] | None = None) -> list[Violation]:
    """Every violation in every task output of the local run in ``run_dir``."""
    types = output_types() if types is None else types
    outputs = sorted(Path(run_dir).glob("**/executor_output.json"))
    if not outputs:
        return [Violation(str(run_dir), "-", "no outputs", "no executor_output.json under the run folder")]
    found: list[Violation] = []
    for path in outputs:
        found += check_executor_output(path, types, task=path.parent.relative_to(run_dir).as_posix())
    return found


def assert_cluster_safe(run_dir: Path, types: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Fail with every violation listed, so one run shows them all; ``types`` as in check_run
    (the suite's components by default; a test adds its own helper components)."""
    found = check_run(run_dir, types)
    assert not found, "a real KFP cluster would refuse or mis-show these outputs:\n" + "\n".join(
        f"  {v}" for v in found
    )


def cluster_form(value: Any) -> Any:
    """``value`` as a reader gets it back from a cluster's ML Metadata (a protobuf Struct): every
    number a double, booleans 1.0/0.0. A null raises, as the launcher does."""
    if value is None:
        raise ValueError("the launcher refuses a null metadata value")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {key: cluster_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cluster_form(item) for item in value]
    return value
