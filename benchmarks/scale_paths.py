"""bench_scale's two measured paths, each run in a fresh interpreter (``bench_scale.py --measure``):

- ``pipelines``: the training pipeline, then the inference pipeline, through kfp.local
  (``mlstages.tooling.local.run_pipeline``, as ``mlstages run`` and ``mlstages run inference`` do),
  sharing one embedded object store: kfp.local's SubprocessRunner runs every task in its own
  Python process, which reads its inputs from the run folder and writes its outputs there.
- ``in_process``: the same components' Python function bodies (``component.python_func``, the very
  code a task process runs after kfp's executor has parsed its arguments), called one after
  another in ONE process, with the arguments the pipelines pass them and artifacts pointing at
  local folders, in the same object store. Nothing is mirrored from the component bodies, so
  this path follows every change to them; only the wiring between the tasks (which pipeline
  parameter reaches which component parameter) is written out here, after pipelines/training.py
  and pipelines/inference.py. Like the tasks, every stage reads its inputs from files.

What the in-process path does not do is what the pipeline costs: an interpreter, kfp's executor
and the stage's imports per task, kfp.local's compilation and dispatch. It pays an interpreter and
its imports once per pipeline: the inference stages run in a fresh interpreter of their own
(``infer_main``), as a scoring script would, since the two pipelines are two separate runs. Until
2026-12-05 they ran in the interpreter that had just trained, its imports already paid: a single
process nobody scores with, which put scikit-learn's, pandas' and pyarrow's imports (about 1.5 s of
a 6 s phase at 1M rows) on the pipeline's side of the ratio only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_paths import MODEL_NAME, PIPELINE_PARAMS, _reset_peak_rss, _vm_hwm_bytes
from scale_outcome import outcome, stage_rows

PATHS = ("pipelines", "in_process")


PATH_DESCRIPTIONS = {
    "pipelines": "run_pipeline('training') then run_pipeline('inference') through kfp.local's "
    "SubprocessRunner (one Python process per task, data between tasks as files), one embedded "
    "fake-gcs-server for both",
    "in_process": "the same components' function bodies (component.python_func) called in order, "
    "each pipeline's in one Python process (the inference stages in a fresh interpreter, as a "
    "scoring script runs), with the pipelines' arguments and local artifact folders, same object store",
}


# bench_pipeline's parameters, and a gate the model passes so that deploy makes it the champion
# for the inference pipeline: ROC-AUC of at least 0.75 (the model gets about 0.80), and the dummy
# as the quality floor (logistic regression trails the default gradient boosting by a few points
# on this table, which the default floor, rightly, refuses).
TRAINING_PARAMS: dict[str, Any] = {
    **PIPELINE_PARAMS,
    "thresholds": {"roc_auc": {"min": 0.75}},
    "quality_floor": "dummy",
}


# Set by bench_scale.py --max-train-rows in the measured interpreters: train's held rows given
# rather than left to the memory allowance.
MAX_TRAIN_ROWS_ENV = "BENCH_SCALE_MAX_TRAIN_ROWS"


def scale_training_params(max_train_rows: int | None = None) -> dict[str, Any]:
    """TRAINING_PARAMS, with ``max_train_rows`` (by default from MAX_TRAIN_ROWS_ENV) when one is set."""
    if max_train_rows is None:
        max_train_rows = int(os.environ.get(MAX_TRAIN_ROWS_ENV) or 0)
    return dict(TRAINING_PARAMS, max_train_rows=max_train_rows) if max_train_rows else dict(TRAINING_PARAMS)


# The inference pipeline scores the champion (model_uri empty: fetch_champion) with its defaults.
INFERENCE_PARAMS: dict[str, Any] = {"model_name": MODEL_NAME}


PHASES = ("training", "inference")


# Printed by the pipelines path before each pipeline, to split kfp.local's log between them.
PHASE_MARKER = "=== bench_scale phase: "


# The stages of each phase, as the components' function names, in the order they run.
STAGES = {
    "training": (
        "ingest",
        "validate_data",
        "preprocess",
        "engineer_features",
        "train",
        "evaluate",
        "validate_model",
        "deploy",
    ),
    "inference": ("ingest", "fetch_champion", "batch_predict"),
}


# --- the pipelines path ---------------------------------------------------------------------------


def run_pipelines(data_path: Path, workdir: Path, started: float) -> dict[str, Any]:
    """Both pipelines through kfp.local; per phase its monotonic start and end and what the
    stages produced."""
    from mlstages.tooling.local import object_store, run_pipeline

    phases: dict[str, Any] = {}
    with object_store(workdir, print) as bucket:
        for phase, name, params in (
            ("training", "training", scale_training_params()),
            ("inference", "inference", INFERENCE_PARAMS),
        ):
            print(PHASE_MARKER + phase, flush=True)
            phase_started = time.monotonic()
            report = run_pipeline(name, dict(params, data_uri=str(data_path)), workdir=workdir, bucket=bucket)
            stages = {}
            for task in report.tasks:
                stage = task_stage(Path(task.name).name)
                stages[stage] = {
                    "artifacts": {
                        key: {"path": value["uri"], "metadata": value.get("metadata") or {}}
                        for key, value in task.artifacts.items()
                    },
                    "parameters": task.parameters,
                }
            phases[phase] = {"start": phase_started, "end": time.monotonic(), "stages": stages}
    return {"phases": phases, "started": started, "end": time.monotonic()}


def task_stage(task_name: str) -> str:
    """A kfp task's stage (its component's function name): 'validate-data' -> 'validate_data',
    'batch-predict-2' (the second branch's call) -> 'batch_predict'."""
    return re.sub(r"-\d+$", "", task_name).replace("-", "_")


# --- the in-process path --------------------------------------------------------------------------


class StageClock:
    """Each stage's wall and CPU seconds and this process's peak RSS (VmHWM, reset per stage)."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    def run(self, key: str, function: Callable[[], Any]) -> Any:
        _reset_peak_rss()
        started, cpu = time.monotonic(), time.process_time()
        value = function()
        self.stages[key] = {
            "start": started,
            "end": time.monotonic(),
            "seconds": time.monotonic() - started,
            "cpu_seconds": time.process_time() - cpu,
            "process_peak_rss_bytes": _vm_hwm_bytes(),
        }
        return value


def _artifact(kind: str, path: Path) -> Any:
    from kfp import dsl

    path.parent.mkdir(parents=True, exist_ok=True)
    return getattr(dsl, kind)(uri=str(path))


def _call(
    component: Any, folder: Path, outputs: dict[str, str], **arguments: Any
) -> tuple[Any, dict[str, Any]]:
    """``component``'s function body with ``arguments`` and an artifact of the given kind per
    output, at ``folder/<output>`` (kfp.local's layout); return its value and its artifacts."""
    artifacts = {name: _artifact(kind, folder / name) for name, kind in outputs.items()}
    return component.python_func(**arguments, **artifacts), artifacts


def pipeline_arguments(pipeline_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of the pipeline: its default, or the value given (typed as run_pipeline
    types them)."""
    from mlstages.tooling import catalog
    from mlstages.tooling.local import typed_params

    inputs = catalog.pipeline(pipeline_name).component_spec.inputs or {}
    arguments = {name: spec.default for name, spec in inputs.items() if spec.optional}
    arguments.update(typed_params(pipeline_name, params))
    return arguments


# The pipeline parameters each component gets under the same name (pipelines/training.py and
# pipelines/inference.py); the others are passed explicitly below.
INGEST_ARGUMENTS = (
    "source_format",
    "sql_query",
    "snapshot",
    "max_columns",
    "max_cell_length",
    "max_line_length",
)
PREPROCESS_ARGUMENTS = (
    "label_column",
    "task",
    "test_size",
    "seed",
    "split",
    "time_column",
    "drop_columns",
    "column_types",
    "scaling",
    "encoding",
    "outliers",
    "unlabelled_rows",
    "max_fit_rows",
)
TRAIN_ARGUMENTS = (
    "model_families",
    "search",
    "n_iter",
    "time_budget_seconds",
    "cv_folds",
    "scoring",
    "search_space",
    "seed",
    "max_search_rows",
    "max_train_rows",
    "model_registry",
    "model_name",
)
GATE_ARGUMENTS = (
    "thresholds",
    "slice_columns",
    "min_slice_rows",
    "quality_floor",
    "floor_tolerance",
    "model_registry",
    "model_name",
    "infra_validation",
)
BATCH_ARGUMENTS = ("model_registry", "model_name", "output_uri", "id_column", "force", "batch_rows")


def _pick(arguments: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: arguments[name] for name in names}


def _ingest_arguments(a: dict[str, Any]) -> dict[str, Any]:
    return {"source_uri": a["data_uri"], **_pick(a, INGEST_ARGUMENTS)}


def run_in_process(
    data_path: Path,
    workdir: Path,
    started: float,
    *,
    training_params: dict[str, Any] | None = None,
    inference: bool = True,
    fresh_inference: bool = False,
    clock: StageClock | None = None,
) -> dict[str, Any]:
    """Every stage's component body, in order, in this process (module docstring): the training
    pipeline's with ``training_params`` (default ``scale_training_params()``), then, with ``inference``, the
    inference pipeline's champion branch, in a fresh interpreter with ``fresh_inference``;
    ``clock`` times the stages."""
    from mlstages.tooling.local import local_run_environment, object_store

    clock = clock or StageClock()
    phases: dict[str, Any] = {}
    out = workdir / "in_process"
    with object_store(workdir, print) as bucket, local_run_environment():
        phases["training"] = train_in_process(
            data_path, bucket, out / "training", clock, training_params or scale_training_params()
        )
        if inference and fresh_inference:
            phases["inference"] = infer_in_fresh_interpreter(data_path, bucket, out / "inference", clock)
        elif inference:
            phases["inference"] = infer_in_process(data_path, bucket, out / "inference", clock)
    return {"phases": phases, "started": started, "end": time.monotonic(), "stage_clock": clock.stages}


def train_in_process(
    data_path: Path, bucket: str, folder: Path, clock: StageClock, params: dict[str, Any]
) -> dict[str, Any]:
    """The training pipeline's components, wired as pipelines/training.py wires them."""
    from mlstages.components.deploy.component import deploy
    from mlstages.components.engineer_features.component import engineer_features
    from mlstages.components.evaluate.component import evaluate
    from mlstages.components.ingest.component import ingest
    from mlstages.components.preprocess.component import preprocess
    from mlstages.components.train.component import train
    from mlstages.components.validate_data.component import validate_data
    from mlstages.components.validate_model.component import validate_model
    from mlstages.pipelines.training import inputs_of

    phase_started = time.monotonic()
    a = pipeline_arguments("training", dict(params, data_uri=str(data_path)))
    a["model_registry"] = a["model_registry"] or f"gs://{bucket}/models"  # as run_pipeline does
    _, ingested = clock.run(
        "training.ingest",
        lambda: _call(
            ingest,
            folder / "ingest",
            {"dataset": "Dataset", "summary": "Markdown"},
            **_ingest_arguments(a),
        ),
    )
    dataset = ingested["dataset"]
    validated_value, validated = clock.run(
        "training.validate_data",
        lambda: _call(
            validate_data,
            folder / "validate-data",
            {"statistics": "Artifact", "schema": "Artifact", "report": "HTML", "summary": "Markdown"},
            dataset=dataset,
            label_column=a["label_column"],
            policy=a["validation_policy"],
            max_missing_share=a["max_missing_share"],
            unlabelled_rows=a["unlabelled_rows"],
            column_types=a["column_types"],
        ),
    )
    prepared, split = clock.run(
        "training.preprocess",
        lambda: _call(
            preprocess,
            folder / "preprocess",
            {"train": "Dataset", "test": "Dataset", "transformer": "Model", "summary": "Markdown"},
            dataset=dataset,
            **_pick(a, PREPROCESS_ARGUMENTS),
        ),
    )
    task = prepared.task
    features_value, engineered = clock.run(
        "training.engineer_features",
        lambda: _call(
            engineer_features,
            folder / "engineer-features",
            {"features": "Model", "report": "HTML", "summary": "Markdown"},
            train=split["train"],
            transformer=split["transformer"],
            label_column=a["label_column"],
            task=task,
            derived_features=a["derived_features"],
            selection=a["selection"],
            max_features=a["max_features"],
            seed=a["seed"],
            max_fit_rows=a["max_fit_rows"],
        ),
    )
    trained_value, trained = clock.run(
        "training.train",
        lambda: _call(
            train,
            folder / "train",
            {
                "model": "Model",
                "search_results": "HTML",
                "summary": "Markdown",
                "metrics": "Metrics",
                "model_card": "HTML",
            },
            train=split["train"],
            features=engineered["features"],
            label_column=a["label_column"],
            task=task,
            **_pick(a, TRAIN_ARGUMENTS),
        ),
    )
    model_uri = trained_value.model_uri
    _, evaluated = clock.run(
        "training.evaluate",
        lambda: _call(
            evaluate,
            folder / "evaluate",
            {
                "metrics": "Metrics",
                "classification_metrics": "ClassificationMetrics",
                "evaluation": "Artifact",
                "report": "HTML",
                "summary": "Markdown",
            },
            test=split["test"],
            model=trained["model"],
            label_column=a["label_column"],
            task=task,
            slice_columns=a["slice_columns"],
            model_uri=model_uri,
        ),
    )
    gate_value, gated = clock.run(
        "training.validate_model",
        lambda: _call(
            validate_model,
            folder / "validate-model",
            {"blessing": "Artifact", "report": "HTML", "summary": "Markdown"},
            model=trained["model"],
            test=split["test"],
            evaluation=evaluated["evaluation"],
            label_column=a["label_column"],
            task=task,
            candidate_uri=model_uri,
            **_pick(a, GATE_ARGUMENTS),
        ),
    )
    stages: dict[str, Any] = {
        "ingest": _recorded(ingested),
        "validate_data": _recorded(validated, validated_value._asdict()),
        "preprocess": _recorded(split, {"task": task}),
        "engineer_features": _recorded(engineered, {"feature_count": features_value.feature_count}),
        "train": _recorded(trained, trained_value._asdict()),
        "evaluate": _recorded(evaluated),
        "validate_model": _recorded(gated, gate_value._asdict()),
    }
    if gate_value.blessed:
        # deploy_when_blessed forwards the training pipeline's parameters that deploy declares.
        deploy_value, deployed = clock.run(
            "training.deploy",
            lambda: _call(
                deploy,
                folder / "deploy",
                {"inference_service": "Artifact", "summary": "Markdown"},
                model=trained["model"],
                test=split["test"],
                model_uri=model_uri,
                source_run_id="bench_scale-in-process",
                **inputs_of(deploy, a, exclude=("model", "test", "model_uri")),
            ),
        )
        stages["deploy"] = _recorded(deployed, deploy_value._asdict())
    return {"start": phase_started, "end": time.monotonic(), "stages": stages}


def infer_in_process(data_path: Path, bucket: str, folder: Path, clock: StageClock) -> dict[str, Any]:
    """The inference pipeline's champion branch (pipelines/inference.py)."""
    from mlstages.components.batch_predict.component import batch_predict
    from mlstages.components.fetch_champion.component import fetch_champion
    from mlstages.components.ingest.component import ingest

    phase_started = time.monotonic()
    a = pipeline_arguments("inference", dict(INFERENCE_PARAMS, data_uri=str(data_path)))
    a["model_registry"] = a["model_registry"] or f"gs://{bucket}/models"
    a["output_uri"] = a["output_uri"] or f"gs://{bucket}/predictions/{a['model_name'] or 'model'}"
    _, ingested = clock.run(
        "inference.ingest",
        lambda: _call(
            ingest,
            folder / "ingest",
            {"dataset": "Dataset", "summary": "Markdown"},
            **_ingest_arguments(a),
        ),
    )
    champion_uri, champion = clock.run(
        "inference.fetch_champion",
        lambda: _call(
            fetch_champion,
            folder / "fetch-champion",
            {"model": "Model"},
            model_registry=a["model_registry"],
            model_name=a["model_name"],
        ),
    )
    scored_value, scored = clock.run(
        "inference.batch_predict",
        lambda: _call(
            batch_predict,
            folder / "batch-predict",
            {"predictions": "Dataset", "summary": "Markdown", "metrics": "Metrics"},
            dataset=ingested["dataset"],
            model=champion["model"],
            model_uri=champion_uri,
            **_pick(a, BATCH_ARGUMENTS),
        ),
    )
    return {
        "start": phase_started,
        "end": time.monotonic(),
        "stages": {
            "ingest": _recorded(ingested),
            "fetch_champion": _recorded(champion, {"Output": champion_uri}),
            "batch_predict": _recorded(scored, scored_value._asdict()),
        },
    }


def infer_in_fresh_interpreter(
    data_path: Path, bucket: str, folder: Path, clock: StageClock
) -> dict[str, Any]:
    """``infer_in_process`` in a new interpreter (``infer_main``), started and waited for here: the
    phase counts from its start (interpreter and imports included) to its exit. Its stages join
    ``clock`` (time.monotonic is the system's clock, the same in both processes)."""
    folder.mkdir(parents=True, exist_ok=True)
    result_file = folder / "inference-result.json"
    started = time.monotonic()
    # The object store's address and the local-run flag are in this process's environment.
    subprocess.run(
        [sys.executable, __file__, str(data_path), bucket, str(folder), str(result_file)], check=True
    )
    ended = time.monotonic()
    result = json.loads(result_file.read_text(encoding="utf-8"))
    clock.stages.update(result["stage_clock"])
    return {**result["phase"], "start": started, "end": ended}


def infer_main(argv: list[str]) -> None:
    """Entry point of ``infer_in_fresh_interpreter``'s interpreter: DATA BUCKET FOLDER RESULT_FILE."""
    data_path, bucket, folder, result_file = argv
    clock = StageClock()
    phase = infer_in_process(Path(data_path), bucket, Path(folder), clock)
    Path(result_file).write_text(
        json.dumps({"phase": phase, "stage_clock": clock.stages}, default=str), encoding="utf-8"
    )


def _recorded(artifacts: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A stage's outputs in the shape read from a kfp.local run: artifact paths and metadata."""
    return {
        "artifacts": {
            name: {"path": artifact.path, "metadata": dict(artifact.metadata)}
            for name, artifact in artifacts.items()
        },
        "parameters": dict(parameters or {}),
    }


def measure_main(path: str, data_path: Path, workdir: Path, result_file: Path) -> None:
    """Entry point of a measured interpreter: run one path, write its timings and outputs as JSON."""
    started = time.monotonic()
    if path == "pipelines":
        result = run_pipelines(data_path, workdir, started)
    else:
        result = run_in_process(data_path, workdir, started, fresh_inference=True)
    result["path"] = path
    result["seconds"] = time.monotonic() - started
    result["self_peak_rss_bytes"] = _vm_hwm_bytes()
    result["rows"] = stage_rows(result["phases"])
    result["outcome"] = outcome(result["phases"])
    result["memory_allowance_mb"] = os.environ.get("MLSTAGES_MEMORY_MB", "")
    result_file.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    infer_main(sys.argv[1:])
