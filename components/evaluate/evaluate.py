"""Evaluation: metrics of the exported model on the held-out test split, overall and per slice.

The model is the exported Pipeline, so it predicts from RAW test rows exactly as it will when
served. Metric names are flat and stable ("accuracy", "f1_macro", "roc_auc", "rmse", ...): they are
the keys of the KFP system.Metrics artifact and of the evaluation JSON that the blessing gate reads.
A metric that is undefined (ROC-AUC on a slice holding one class, R² on one row) is None, shown "n/a".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlstages.components.common.model_card import ModelCard

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.common.labels import check_label
from mlstages.components.evaluate.metrics import (
    REGRESSION,
    TASKS,
    _classification_metrics,
    _confusion,
    _key,
    _native,
    _roc,
    class_codes,
    distinct_labels,
    regression_metrics,
)
from mlstages.components.evaluate.slices import SliceMetrics, _slices, slice_notes


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of a model on a test split.

    metrics: flat metric name -> value (None when undefined on this data).
    slices: the same metrics per value (or quantile bin) of each slice column.
    confusion_matrix: {"labels": [...], "matrix": [[...]]}, rows = actual, columns = predicted.
    roc_curve: {"fpr", "tpr", "thresholds", "kind", "positive_class"}; binary: the positive class
        (the second of the sorted classes, scikit-learn's convention); multiclass: micro-averaged
        one-vs-rest. At most MAX_ROC_POINTS points.
    slice_notes: slice column -> how its slices were formed.
    baselines: baseline name (train's dummy and default gradient boosting) -> its overall metrics on
        the same test rows: the quality floor the blessing gate compares the model with.
    """

    task: str
    label_column: str
    rows: int
    metrics: dict[str, float | None]
    slices: list[SliceMetrics] = field(default_factory=list)
    classes: list[Any] | None = None
    confusion_matrix: dict[str, Any] | None = None
    roc_curve: dict[str, Any] | None = None
    slice_notes: dict[str, str] = field(default_factory=dict)
    baselines: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (undefined metrics are null)."""
        return {
            "task": self.task,
            "label_column": self.label_column,
            "rows": self.rows,
            "classes": self.classes,
            "metrics": dict(self.metrics),
            "slices": [
                {"column": s.column, "value": s.value, "rows": s.rows, "metrics": dict(s.metrics)}
                for s in self.slices
            ],
            "slice_notes": dict(self.slice_notes),
            "confusion_matrix": self.confusion_matrix,
            "roc_curve": self.roc_curve,
            "baselines": {name: dict(metrics) for name, metrics in self.baselines.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Read back what ``to_dict`` wrote."""
        try:
            return cls(
                task=data["task"],
                label_column=data.get("label_column", ""),
                rows=int(data.get("rows", 0)),
                metrics=dict(data["metrics"]),
                slices=[
                    SliceMetrics(
                        column=s["column"], value=s["value"], rows=int(s["rows"]), metrics=dict(s["metrics"])
                    )
                    for s in data.get("slices", [])
                ],
                classes=data.get("classes"),
                confusion_matrix=data.get("confusion_matrix"),
                roc_curve=data.get("roc_curve"),
                slice_notes=dict(data.get("slice_notes", {})),
                baselines={name: dict(m) for name, m in (data.get("baselines") or {}).items()},
            )
        except (KeyError, TypeError) as exc:
            raise InputDataError(
                f"not an evaluation written by mlstages evaluate: missing or malformed entry {exc}"
            ) from exc


def evaluate(
    model: Any,
    test_df: pd.DataFrame,
    label_column: str,
    task: str,
    slice_columns: Sequence[str] = (),
    classes: Sequence[Any] | None = None,
    *,
    input_columns: Sequence[str] | None = None,
    predictions: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` (a Pipeline on raw rows) on ``test_df``.

    ``classes`` are the model's classes in predict_proba order (default: ``model.classes_``).
    ``input_columns`` are the raw columns the model takes (default: the columns it was fitted on,
    else every column but the label). ``predictions`` are the model's predictions and class
    probabilities (None where it has none) of the rows of ``test_df``, already made a batch at a
    time (``scoring.predict_batches``): ``test_df`` then needs only the label and slice columns.
    """
    require_choice("task", task, TASKS)
    if isinstance(slice_columns, str):
        raise ParameterError(f"parameter slice_columns must be a list of column names, got {slice_columns!r}")
    if len(test_df) == 0:
        raise InputDataError("the test split has no rows: nothing to evaluate")
    # Present and without missing values; the classes are checked against the model's below.
    labels = check_label(test_df, label_column, what="test split")
    missing_slices = [c for c in slice_columns if c not in test_df.columns]
    if missing_slices:
        raise InputDataError(
            f"slice_columns: column(s) {', '.join(map(repr, missing_slices))} not in the test split; "
            f"its columns are: {', '.join(map(str, test_df.columns))}"
        )
    if predictions is None:
        raw = test_df[_input_columns(model, test_df, label_column, input_columns)]
        predict = model.predict
        if task != REGRESSION and hasattr(model, "predict_proba"):
            predictions = (np.asarray(predict(raw)), np.asarray(model.predict_proba(raw), dtype=float))
        else:
            predictions = (np.asarray(predict(raw)), None)
    predicted, proba = predictions
    if len(predicted) != len(test_df):
        raise ValueError(f"{len(predicted)} predictions for {len(test_df)} test rows")

    if task == REGRESSION:
        y_true = _regression_label(labels, label_column)
        y_pred = np.asarray(predicted, dtype=float)
        return EvaluationResult(
            task=task,
            label_column=label_column,
            rows=len(test_df),
            metrics=regression_metrics(y_true, y_pred),
            slices=_slices(test_df, slice_columns, lambda idx: regression_metrics(y_true[idx], y_pred[idx])),
            slice_notes=slice_notes(test_df, slice_columns),
        )

    model_classes = _model_classes(model, classes)
    true_codes = _class_label_codes(labels, model_classes, label_column)
    pred_codes = class_codes(predicted, model_classes)
    if proba is not None and proba.shape[1] != len(model_classes):
        raise InputDataError(
            f"the model gives {proba.shape[1]} class probabilities but classes lists {len(model_classes)}: "
            "pass the model's own classes"
        )

    def metrics_of(idx: np.ndarray) -> dict[str, float | None]:
        return _classification_metrics(
            true_codes[idx], pred_codes[idx], None if proba is None else proba[idx], len(model_classes)
        )

    return EvaluationResult(
        task=task,
        label_column=label_column,
        rows=len(test_df),
        metrics=_classification_metrics(true_codes, pred_codes, proba, len(model_classes)),
        slices=_slices(test_df, slice_columns, metrics_of),
        classes=[_native(c) for c in model_classes],
        confusion_matrix=_confusion(true_codes, pred_codes, model_classes),
        roc_curve=None if proba is None else _roc(true_codes, proba, model_classes),
        slice_notes=slice_notes(test_df, slice_columns),
    )


def evaluate_baselines(
    baselines: Mapping[str, Any],
    test_df: pd.DataFrame,
    label_column: str,
    task: str,
    classes: Sequence[Any] | None = None,
    *,
    input_columns: Sequence[str] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Each baseline's overall metrics on ``test_df``, computed as the model's are."""
    return {
        name: evaluate(
            baseline, test_df, label_column, task, classes=classes, input_columns=input_columns
        ).metrics
        for name, baseline in baselines.items()
    }


def evaluate_dataset(
    model: Any,
    baselines: Mapping[str, Any],
    path: str,
    label_column: str,
    task: str,
    slice_columns: Sequence[str] = (),
    classes: Sequence[Any] | None = None,
    *,
    input_columns: Sequence[str],
    batch_rows: int = 65_536,
    engine: Any = None,
) -> EvaluationResult:
    """``evaluate`` of the model and its baselines (their ``baselines`` entry: overall metrics) on
    the test dataset at ``path``, streamed: the models predict a batch at a time, and only the
    label, the slice columns and the predictions are held, never the test rows' features.
    ``engine``: an open ``common.engine.Engine``; a distributed one predicts the parts on its
    workers."""
    from mlstages.components.common.dataset_files import (
        dataset_columns,
        dataset_rows,
        iter_batches,
        read_dataset_head,
    )
    from mlstages.components.common.scoring import predict_batches, predict_parts

    columns = dataset_columns(path, what="test split")
    inputs = [str(c) for c in input_columns]
    if (
        label_column not in columns
        or any(c not in columns for c in (*slice_columns, *inputs))
        or not dataset_rows(path, what="test split")
    ):
        # The checks of evaluate name what is wrong; a row of the data is enough for them.
        evaluate(
            model,
            read_dataset_head(path, 1, what="test split"),
            label_column,
            task,
            slice_columns,
            classes,
            input_columns=inputs,
        )
    frame = _label_and_slices(path, list(dict.fromkeys([label_column, *slice_columns])), batch_rows)
    models = {"model": model, **baselines}
    probabilities = {name: task != REGRESSION and hasattr(m, "predict_proba") for name, m in models.items()}
    if engine is not None and engine.distributed:
        predicted = predict_parts(
            engine,
            path,
            models,
            columns=inputs,
            probabilities=probabilities,
            batch_rows=batch_rows,
            what="test split",
        )
    else:
        batches = iter_batches(path, batch_rows=batch_rows, columns=inputs, what="test split")
        rows = dataset_rows(path, what="test split")
        predicted = predict_batches(models, batches, inputs, probabilities, rows=rows)
    result = evaluate(
        model,
        frame,
        label_column,
        task,
        slice_columns,
        classes,
        input_columns=inputs,
        predictions=predicted["model"],
    )
    scores = {
        name: evaluate(
            baseline,
            frame,
            label_column,
            task,
            classes=classes,
            input_columns=inputs,
            predictions=predicted[name],
        ).metrics
        for name, baseline in baselines.items()
    }
    return replace(result, baselines=scores)


def _label_and_slices(path: str, columns: list[str], batch_rows: int) -> pd.DataFrame:
    """The test split's ``columns``, text columns as categoricals: a class name or a slice value
    per row as a Python string held ~60 bytes a row (600 MB a column at 10M test rows)."""
    from pandas.api.types import union_categoricals

    from mlstages.components.common.dataset_files import iter_batches

    batches = []
    for batch in iter_batches(path, batch_rows=batch_rows, columns=columns, what="test split"):
        text = [c for c in batch.columns if batch[c].dtype == object]
        batches.append(batch.astype({c: "category" for c in text}) if text else batch)
    if len(batches) == 1:
        return batches[0]
    frame = {}
    for column in columns:
        parts = [b[column] for b in batches]
        if all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
            frame[column] = pd.Series(union_categoricals([p.array for p in parts]), name=column)
        else:  # numbers, or text in some batches only (a column of missing values elsewhere)
            frame[column] = pd.concat(
                [p.astype(object) if isinstance(p.dtype, pd.CategoricalDtype) else p for p in parts],
                ignore_index=True,
            )
    return pd.DataFrame(frame)


def model_inputs(card: ModelCard, label_column: str, task: str) -> tuple[list[Any] | None, list[str]]:
    """The classes and raw input columns of the model's card, after checking that the model was
    trained for the same label and task as this evaluation asks for."""
    require_choice("task", task, TASKS)
    trained_task = card.task
    if trained_task and trained_task != task:
        raise ParameterError(
            f"parameter task={task!r}, but the model was trained for {trained_task!r}: "
            f"set task={trained_task!r}"
        )
    trained_label = card.label_column
    if trained_label and trained_label != label_column:
        raise ParameterError(
            f"parameter label_column={label_column!r}, but the model predicts {trained_label!r}: "
            f"set label_column={trained_label!r}"
        )
    return (list(card.classes) if card.classes is not None else None), card.input_names


def _input_columns(model: Any, df: pd.DataFrame, label_column: str, given: Sequence[str] | None) -> list[str]:
    if given is not None:
        columns = [str(c) for c in given]
    elif hasattr(model, "feature_names_in_"):
        columns = [str(c) for c in model.feature_names_in_]
    else:
        columns = [str(c) for c in df.columns if c != label_column]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputDataError(
            f"the test data lacks the model's input column(s) {', '.join(map(repr, missing))}: "
            "it must have the columns the model was trained on"
        )
    return columns


def _model_classes(model: Any, classes: Sequence[Any] | None) -> list[Any]:
    if classes is not None:
        return list(classes)
    if not hasattr(model, "classes_"):
        raise ParameterError("the model has no classes_: pass classes, or use task='regression'")
    return list(model.classes_)


def _class_label_codes(labels: pd.Series, classes: list[Any], label_column: str) -> np.ndarray:
    """The test labels' codes among the model's classes (``metrics.class_codes``: 1 and 1.0, or
    np.str_ and str, are one class), after checking the model knows every label."""
    values = labels.to_numpy()
    known = {_key(c) for c in classes}
    unseen = sorted({_key(v) for v in distinct_labels(values)} - known, key=str)
    if unseen:
        raise InputDataError(
            f"label column {label_column!r} has value(s) {', '.join(map(repr, unseen))} in the test data "
            f"that the model never saw in training (its classes: {', '.join(map(repr, classes))}): "
            "the model cannot predict them; retrain on data that has them or drop those rows"
        )
    return class_codes(values, classes)


def _regression_label(labels: pd.Series, label_column: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        raise InputDataError(
            f"label column {label_column!r} has dtype {labels.dtype}, but task='regression' needs numbers"
        )
    return labels.to_numpy(dtype=float)
