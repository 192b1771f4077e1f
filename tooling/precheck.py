"""Check a pipeline's parameters before any task runs.

A typo in a parameter (a model family of the other task, a thresholds mapping of the wrong shape,
a slice column that is not in the data) used to be found only when the task that takes it ran,
sometimes after train had published a model. ``check_pipeline`` finds it first:

1. It reads the compiled pipeline spec: which pipeline parameter (or constant, or default) each
   task's component parameter receives, through nested pipelines and conditions, and which data
   source each task's artifacts come from. Nothing here repeats the pipeline's wiring.
2. It builds each stage's own config dataclass (components/*/config.py) from the parameters that
   stage receives, so the checks are the stage's own: nothing is checked twice in two ways. A
   parameter only a task knows (preprocess' ``task`` output) is tried with the detected task when
   the label can be read cheaply, otherwise with every task: it fails here only when it fits none.
3. When the data is a local file, it reads its header (a CSV/TSV header line, a Parquet schema)
   and checks that the columns the parameters name exist. The label column itself is read only
   from Parquet, or from a CSV/TSV below ``LABEL_READ_MAX_BYTES``, to detect the task.

Data that is not a local file (gs://, http(s)://, a database) or is JSON Lines is not read here:
its column checks are left to the tasks, as they were. Neither is any data of a run sent to a
cluster (`mlstages submit`, `schedule`): its pods read paths on their own filesystem. The same
holds for what only the data's values decide (a column's type, the number of classes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.tooling import catalog

# Reading one column of a CSV parses the whole file; above this size the task is not detected
# here (the checks that need it use every task instead).
LABEL_READ_MAX_BYTES = 64 * 1024 * 1024
# Column names listed in a message, at most.
NAMES_IN_MESSAGE = 20


class _Unknown:
    """A value only a task knows: another task's output."""

    def __repr__(self) -> str:
        return "<task output>"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class StageConfig:
    """How a stage's component parameters become its config dataclass.

    config: "module:Class" of the dataclass, or "" for a stage without one (its columns are
        still checked).
    renamed: component parameter → config field, where the names differ (every other component
        parameter that is a field of the config goes to the field of the same name).
    converted: component parameter → the conversion its component applies before the config.
    columns: component parameters that name columns of the stage's data.
    merged: for a component that makes one field of two parameters, how (applied first).
    """

    config: str = ""
    renamed: Mapping[str, str] = field(default_factory=dict)
    converted: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    merged: Callable[[dict[str, Any]], dict[str, Any]] | None = None


# The stages whose parameters can be checked before the run, by the name of their component
# function. fetch_champion is not listed: it has no settings to check.
STAGES: dict[str, StageConfig] = {
    "ingest": StageConfig("mlstages.components.ingest.ingest:IngestConfig"),
    "validate_data": StageConfig(
        "mlstages.components.validate_data.config:ValidationConfig",
        columns=("label_column", "column_types"),
    ),
    "preprocess": StageConfig(
        "mlstages.components.preprocess.config:PreprocessConfig",
        converted={"outlier_factor": lambda value: value or None},
        columns=("label_column", "time_column", "drop_columns", "text_columns", "column_types"),
    ),
    "engineer_features": StageConfig(
        "mlstages.components.engineer_features.engineer_features:FeatureConfig",
        renamed={"derived_features": "derived"},
        columns=("derived_features",),
    ),
    "train": StageConfig("mlstages.components.train.config:TrainConfig"),
    # The trials across pods take train's settings (family and trials_started are their own).
    "plan_trials": StageConfig("mlstages.components.train.config:TrainConfig"),
    "search_family": StageConfig("mlstages.components.train.config:TrainConfig"),
    "evaluate": StageConfig(columns=("slice_columns",)),
    "validate_model": StageConfig(
        "mlstages.components.validate_model.thresholds:BlessingConfig", columns=("slice_columns",)
    ),
    "deploy": StageConfig(
        "mlstages.components.deploy.config:DeployConfig",
        converted={"canary_traffic_percent": lambda value: None if value == -1 else value},
    ),
    "training_data": StageConfig("mlstages.components.training_data.training_data:TrainingDataConfig"),
    "batch_predict": StageConfig(
        "mlstages.components.batch_predict.batch_predict:BatchPredictConfig", columns=("id_column",)
    ),
    "monitor_drift": StageConfig(
        "mlstages.components.monitor_drift.config:DriftConfig",
        # Its component passes metric_drops, when given, as max_metric_drop.
        merged=lambda a: {**a, "max_metric_drop": a.get("metric_drops") or a.get("max_metric_drop")},
    ),
}


@dataclass
class StageCall:
    """One task of a stage in a pipeline, with what it receives.

    arguments: component parameter → value (UNKNOWN for another task's output).
    origins: component parameter → the pipeline parameter its value comes from.
    sources: the data URIs (ingest's source_uri) its input artifacts derive from.
    """

    stage: str
    task: str
    arguments: dict[str, Any]
    origins: dict[str, str]
    sources: frozenset[Any]


def stage_calls(pipeline_name: str, arguments: Mapping[str, Any]) -> list[StageCall]:
    """Every task of the pipeline with the values its parameters get from ``arguments`` (the
    pipeline's parameters; the others keep their defaults), read from the compiled spec."""
    from google.protobuf.json_format import MessageToDict

    spec = MessageToDict(catalog.pipeline(pipeline_name).pipeline_spec)
    root = spec["root"]
    inputs = _defaults(root)
    inputs.update(arguments)
    origins = {name: name for name in inputs}
    calls: list[StageCall] = []
    _walk(spec, root["dag"], inputs, origins, {}, "", calls)
    return calls


def _defaults(component: Mapping[str, Any]) -> dict[str, Any]:
    declared = component.get("inputDefinitions", {}).get("parameters", {})
    return {
        name: _typed(item["defaultValue"], item.get("parameterType", ""))
        for name, item in declared.items()
        if "defaultValue" in item
    }


def _typed(value: Any, kind: str) -> Any:
    # The spec stores every number as a double; an integer parameter's default is a whole one.
    if kind == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _walk(
    spec: Mapping[str, Any],
    dag: Mapping[str, Any],
    inputs: Mapping[str, Any],
    origins: Mapping[str, str],
    input_sources: Mapping[str, frozenset[Any]],
    prefix: str,
    calls: list[StageCall],
) -> frozenset[Any]:
    """Resolve every task of ``dag``; return the data sources of everything in it."""
    tasks = dag.get("tasks", {})
    done: dict[str, frozenset[Any]] = {}
    resolved: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}

    def visit(name: str) -> frozenset[Any]:
        if name in done:
            return done[name]
        task = tasks[name]
        done[name] = frozenset()  # (a spec has no cycles; this only ends a malformed one)
        # The tasks it runs after come first, so the first error found is the one of the task
        # that would have run first.
        for before in sorted(task.get("dependentTasks", [])):
            if before in tasks:
                visit(before)
        component = spec["components"][task["componentRef"]["name"]]
        values, from_params = {}, {}
        for param, source in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                outer = source["componentInputParameter"]
                values[param] = inputs.get(outer, UNKNOWN)
                if outer in origins:
                    from_params[param] = origins[outer]
            elif "runtimeValue" in source:
                values[param] = source["runtimeValue"].get("constant")
            elif "taskOutputParameter" in source:
                values[param], origin = _standing_for(source["taskOutputParameter"], visit, resolved)
                if origin:
                    from_params[param] = origin
            else:
                values[param] = UNKNOWN
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        for param, value in _defaults(component).items():
            values.setdefault(param, value)
        values = {p: _typed(v, declared.get(p, {}).get("parameterType", "")) for p, v in values.items()}
        artifact_sources: dict[str, frozenset[Any]] = {}
        for artifact, source in task.get("inputs", {}).get("artifacts", {}).items():
            if "taskOutputArtifact" in source:
                artifact_sources[artifact] = visit(source["taskOutputArtifact"]["producerTask"])
            else:
                artifact_sources[artifact] = input_sources.get(
                    source.get("componentInputArtifact", ""), frozenset()
                )
        upstream = frozenset().union(*artifact_sources.values())
        path = f"{prefix}{task.get('taskInfo', {}).get('name', name)}"
        if "dag" in component:
            found = _walk(spec, component["dag"], values, from_params, artifact_sources, f"{path}/", calls)
            done[name] = upstream | found
            return done[name]
        stage = _function_of(spec, component.get("executorLabel", ""))
        if stage == "ingest":
            upstream = frozenset({values.get("source_uri", UNKNOWN)})
        calls.append(StageCall(stage, path, values, from_params, upstream))
        resolved[name] = (stage, values, from_params)
        done[name] = upstream
        return upstream

    return frozenset().union(*(visit(name) for name in sorted(tasks))) if tasks else frozenset()


# A task output that, for the checks, stands for one of the task's own inputs: training_data's
# assembled data has the columns of the data_uri it was given (a window must carry them all), so
# the retraining nested in monitoring is checked against data_uri's header.
_STANDS_FOR = {("training_data", "data_uri"): "data_uri"}


def _standing_for(
    reference: Mapping[str, Any],
    visit: Callable[[str], frozenset[Any]],
    resolved: Mapping[str, tuple[str, dict[str, Any], dict[str, str]]],
) -> tuple[Any, str]:
    """The value (and pipeline parameter) a task output parameter stands for, or UNKNOWN."""
    producer = reference.get("producerTask", "")
    visit(producer)
    stage, values, origins = resolved.get(producer, ("", {}, {}))
    own = _STANDS_FOR.get((stage, reference.get("outputParameterKey", "")))
    if own is None:
        return UNKNOWN, ""
    return values.get(own, UNKNOWN), origins.get(own, "")


def _function_of(spec: Mapping[str, Any], executor: str) -> str:
    """The component function an executor runs (its name is the stage's)."""
    container = spec.get("deploymentSpec", {}).get("executors", {}).get(executor, {}).get("container", {})
    words = [*container.get("command", []), *container.get("args", [])]
    for index, word in enumerate(words[:-1]):
        if word == "--function_to_execute":
            return words[index + 1]
    return executor.removeprefix("exec-").replace("-", "_")


# --- the data's header --------------------------------------------------------------------------


@dataclass
class DataPreview:
    """What was read of a data source before the run: its column names, and the label column's
    values when they were cheap to read (None otherwise)."""

    uri: str
    columns: list[str]
    labels: Any = None


def preview_data(
    uri: str,
    *,
    label_column: str = "",
    source_format: str = "auto",
    delimiter: str = "",
    encoding: str = "utf-8",
    parameter: str = "data_uri",
) -> DataPreview | None:
    """The header of a local CSV/TSV/Parquet file (and its label column when cheap), read as
    ingest reads it, or None when the data is not a local file of those formats: the tasks check
    it when they read it. A local file that does not exist is refused, naming ``parameter``."""
    import pandas as pd

    from mlstages.components.ingest.ingest import IngestConfig, detect_format, source_scheme

    if not isinstance(uri, str) or not uri.strip() or source_scheme(uri) != "file":
        return None
    path = Path(uri.removeprefix("file://"))
    if path.is_dir():
        return _preview_folder(uri, path, source_format)
    if not path.is_file():
        raise ParameterError(
            f"parameter {parameter}={uri!r}: no such file or folder; give the path of your data file "
            "or of a folder of Parquet parts"
        )
    try:
        fmt = detect_format(uri, source_format)
    except ParameterError:
        return None  # ingest says what to set
    config = IngestConfig(source_uri=uri, source_format=source_format, delimiter=delimiter, encoding=encoding)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            columns = [str(c) for c in pq.read_schema(path).names]
            labels = (
                pd.read_parquet(path, columns=[label_column])[label_column]
                if label_column in columns
                else None
            )
            return DataPreview(uri, columns, labels)
        if fmt not in ("csv", "tsv"):
            return None
        sep = config.delimiter.replace("\\t", "\t") or ("\t" if fmt == "tsv" else ",")
        header = pd.read_csv(path, sep=sep, encoding=config.encoding, nrows=0)
        columns = [str(c) for c in header.columns]
        labels = None
        if label_column in columns and path.stat().st_size <= LABEL_READ_MAX_BYTES:
            labels = pd.read_csv(path, sep=sep, encoding=config.encoding, usecols=[label_column])[
                label_column
            ]
        return DataPreview(uri, columns, labels)
    except (OSError, ValueError, InputDataError, ImportError):
        # An unreadable file: ingest reads it and names the problem precisely.
        return None


def _preview_folder(uri: str, path: Path, source_format: str) -> DataPreview | None:
    """A folder ingest reads as one table (Parquet parts, a dataset folder, Spark's output): its
    columns from the first part's schema, the labels unread (they are spread over every part).
    None when its first data file is not Parquet: ingest checks it."""
    from mlstages.components.ingest.ingest import detect_format, folder_files

    files = folder_files(path)
    try:
        if not files or detect_format(str(files[0]), source_format) != "parquet":
            return None  # an empty folder or other formats: ingest names the problem
        import pyarrow.parquet as pq

        return DataPreview(uri, [str(c) for c in pq.read_schema(files[0]).names], None)
    except (OSError, ValueError, ParameterError):
        return None


def preview_frame(uri: str, frame: Any, label_column: str = "") -> DataPreview:
    """A preview of data already in memory (the built-in dataset before it is uploaded)."""
    columns = [str(c) for c in frame.columns]
    labels = frame[label_column] if label_column in columns else None
    return DataPreview(uri, columns, labels)


# --- the checks ---------------------------------------------------------------------------------


def check_pipeline(
    pipeline_name: str,
    arguments: Mapping[str, Any],
    previews: Mapping[str, DataPreview] | None = None,
    *,
    read_local_files: bool = True,
) -> None:
    """Raise ParameterError, in one line naming the pipeline parameter, for the first parameter
    that a stage of ``pipeline_name`` would refuse with these ``arguments``.

    ``previews`` maps a data URI to what was read of it (``preview_data``, ``preview_frame``);
    with ``read_local_files``, local files the pipeline reads that are not in it are previewed
    here (not for a run on a cluster, whose pods read paths on their own filesystem). A stage
    whose data has no preview leaves its column checks to its task. Unknown and missing pipeline parameters are
    not checked here: ``local.check_params`` and ``kfp_runs.prepare_parameters`` refuse them.
    """
    calls = stage_calls(pipeline_name, arguments)
    try:
        found = _previews(calls, skip=set(previews or {})) if read_local_files else {}
        previews = {**found, **(previews or {})}
    except ParameterError as exc:
        raise ParameterError(f"{exc} (checked before the run: task ingest would refuse it)") from exc
    tasks = _possible_tasks(calls, previews)
    for call in calls:
        entry = STAGES.get(call.stage)
        if entry is None:
            continue
        try:
            if entry.config:
                _check_config(entry, call, tasks)
            preview = _preview_for(call, previews)
            if preview is not None:
                _check_columns(entry, call, preview)
        except ParameterError as exc:
            raise ParameterError(_in_pipeline_terms(str(exc), call)) from exc


def _previews(calls: Sequence[StageCall], skip: set[str]) -> dict[str, DataPreview]:
    previews = {}
    for call in calls:
        uri = call.arguments.get("source_uri")
        if call.stage != "ingest" or uri in skip:
            continue
        label = next(
            (c.arguments.get("label_column") for c in calls if c.stage == "preprocess" and uri in c.sources),
            "",
        )
        preview = preview_data(
            uri,
            label_column=label if isinstance(label, str) else "",
            source_format=str(call.arguments.get("source_format") or "auto"),
            delimiter=str(call.arguments.get("delimiter") or ""),
            encoding=str(call.arguments.get("encoding") or "utf-8"),
            parameter=call.origins.get("source_uri", "source_uri"),
        )
        if preview is not None:
            previews[uri] = preview
    return previews


def _preview_for(call: StageCall, previews: Mapping[str, DataPreview]) -> DataPreview | None:
    if len(call.sources) != 1:
        return None
    (source,) = call.sources
    return previews.get(source) if isinstance(source, str) else None


def _possible_tasks(calls: Sequence[StageCall], previews: Mapping[str, DataPreview]) -> tuple[str, ...]:
    """The tasks the run may have: the one preprocess is told, or detects from a label read here,
    or else every task."""
    from mlstages.components.common.labels import CLASSIFICATION, REGRESSION, resolve_task

    every = (CLASSIFICATION, REGRESSION)
    for call in calls:
        if call.stage != "preprocess":
            continue
        task = call.arguments.get("task")
        if task in every:
            return (task,)
        preview = _preview_for(call, previews)
        if task == "auto" and preview is not None and preview.labels is not None:
            try:
                return (resolve_task(preview.labels, "auto"),)
            except (ParameterError, InputDataError):
                return every
    return every


def _check_config(entry: StageConfig, call: StageCall, tasks: tuple[str, ...]) -> None:
    """Build the stage's config from what it receives; for a task only another task knows, try
    each possible one and refuse only when none takes the parameters."""
    import dataclasses

    config_class = catalog.load(entry.config)
    fields = {f.name for f in dataclasses.fields(config_class)}
    required = {
        f.name
        for f in dataclasses.fields(config_class)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    values = {}
    arguments = entry.merged(call.arguments) if entry.merged else call.arguments
    for param, value in arguments.items():
        name = entry.renamed.get(param, param)
        if name not in fields:
            continue
        if value is UNKNOWN and name != "task":
            continue  # decided by another task: not known before the run
        if param in entry.converted and value is not UNKNOWN:
            value = entry.converted[param](value)
        values[name] = value
    if required - set(values):
        return  # a missing pipeline parameter, refused as such before the run
    if values.get("task", None) is not UNKNOWN:
        _build(config_class, values)
        return
    errors = []
    for task in tasks:
        try:
            _build(config_class, {**values, "task": task})
            return
        except ParameterError as exc:
            errors.append(exc)
    raise errors[0]


def _build(config_class: Any, values: Mapping[str, Any]) -> None:
    try:
        config_class(**values)
    except ParameterError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError):
        # A value the config has no message for: the task says what it makes of it, as before.
        pass


def _check_columns(entry: StageConfig, call: StageCall, preview: DataPreview) -> None:
    present = set(preview.columns)
    for param in entry.columns:
        value = call.arguments.get(param)
        for name in _column_names(param, value):
            if name not in present:
                shown = ", ".join(preview.columns[:NAMES_IN_MESSAGE])
                more = (
                    f", ... ({len(preview.columns)} columns)"
                    if len(preview.columns) > NAMES_IN_MESSAGE
                    else ""
                )
                raise ParameterError(
                    f"parameter {param}: column {name!r} is not in {preview.uri}; its columns are: "
                    f"{shown}{more} (names are case-sensitive)"
                )


def _column_names(param: str, value: Any) -> list[str]:
    if value is UNKNOWN or value is None or value == "":
        return []
    if param == "derived_features":
        # Each entry's "columns" are columns of the data (the configs checked the entries' shape).
        names = []
        for entry in value if isinstance(value, (list, tuple)) else []:
            columns = entry.get("columns") if isinstance(entry, Mapping) else None
            names += (
                [c for c in columns or [] if isinstance(c, str)] if isinstance(columns, (list, tuple)) else []
            )
        return names
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):  # column_types: the keys are columns
        return [c for c in value if isinstance(c, str)]
    return [c for c in value if isinstance(c, str)] if isinstance(value, (list, tuple)) else []


def _in_pipeline_terms(message: str, call: StageCall) -> str:
    """The stage's message with its parameter's name as the pipeline calls it (ingest's
    source_uri is the pipeline's data_uri), and which task would have refused it."""
    for param, origin in call.origins.items():
        if origin != param:
            message = re.sub(rf"\bparameter {re.escape(param)}\b", f"parameter {origin}", message)
    return f"{message} (checked before the run: task {call.task} would refuse it)"


def check_cluster_target(pipeline_name: str, arguments: Mapping[str, Any]) -> None:
    """For a run on a Kubeflow cluster: refuse a deploy task with cluster='none', which would
    serve the model inside its own pod (gone when the task ends) and still make it the champion."""
    from mlstages.components.deploy.config import NO_CLUSTER

    for call in stage_calls(pipeline_name, arguments):
        if call.stage == "deploy" and call.arguments.get("cluster") == NO_CLUSTER:
            name = call.origins.get("cluster", "cluster")
            raise ParameterError(
                f"parameter {name}='none' serves the model on a local model server, which on a cluster "
                "is inside the deploy pod and gone when it ends, yet makes it the champion; pass "
                f"--set {name}=in-cluster to deploy an InferenceService on this cluster"
            )
