"""Evaluation: metrics of the exported model on the held-out test split, overall and per slice.

The model is the exported Pipeline, so it predicts from RAW test rows exactly as it will when
served. Metric names are flat and stable ("accuracy", "f1_macro", "roc_auc", "rmse", ...): they are
the keys of the KFP system.Metrics artifact and of the evaluation JSON that the blessing gate reads.
A metric that is undefined (ROC-AUC on a slice holding one class, R² on one row) is None, shown "n/a".
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.common.labels import check_label

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# Metric names, in display order. Binary problems add the positive-class metrics.
CLASSIFICATION_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
)
BINARY_METRICS = ("precision", "recall", "f1")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2", "median_absolute_error")
# Direction of every metric: the blessing gate and drift monitoring compare metrics by it.
LOWER_IS_BETTER = frozenset({"log_loss", "mse", "rmse", "mae", "median_absolute_error"})
HIGHER_IS_BETTER = (
    frozenset((*CLASSIFICATION_METRICS, *BINARY_METRICS, *REGRESSION_METRICS)) - LOWER_IS_BETTER
)
PRIMARY_METRIC = {CLASSIFICATION: "f1_macro", REGRESSION: "rmse"}

MISSING_SLICE = "(missing)"
OTHER_SLICE = "(other)"
# A numeric slice column with more distinct values than this is cut into quantile bins.
MAX_NUMERIC_SLICE_VALUES = 10
QUANTILE_BINS = 4
# A categorical slice column keeps its most frequent values as slices; the rest form "(other)".
MAX_CATEGORY_SLICES = 50
# The KFP UI draws the ROC curve from one metadata entry per point; more than this only slows it.
MAX_ROC_POINTS = 200


@dataclass(frozen=True)
class SliceMetrics:
    column: str
    value: str
    rows: int
    metrics: dict[str, float | None]


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
) -> EvaluationResult:
    """Evaluate ``model`` (a Pipeline on raw rows) on ``test_df``.

    ``classes`` are the model's classes in predict_proba order (default: ``model.classes_``).
    ``input_columns`` are the raw columns the model takes (default: the columns it was fitted on,
    else every column but the label).
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
    raw = test_df[_input_columns(model, test_df, label_column, input_columns)]

    if task == REGRESSION:
        y_true = _regression_label(labels, label_column)
        y_pred = np.asarray(model.predict(raw), dtype=float)
        return EvaluationResult(
            task=task,
            label_column=label_column,
            rows=len(test_df),
            metrics=regression_metrics(y_true, y_pred),
            slices=_slices(test_df, slice_columns, lambda idx: regression_metrics(y_true[idx], y_pred[idx])),
            slice_notes=slice_notes(test_df, slice_columns),
        )

    model_classes = _model_classes(model, classes)
    true_codes = _encode(_class_labels(labels, model_classes, label_column), model_classes)
    pred_codes = _encode(np.asarray(model.predict(raw), dtype=object), model_classes)
    proba = np.asarray(model.predict_proba(raw), dtype=float) if hasattr(model, "predict_proba") else None
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
        metrics=metrics_of(np.arange(len(test_df))),
        slices=_slices(test_df, slice_columns, metrics_of),
        classes=[_native(c) for c in model_classes],
        confusion_matrix=_confusion(true_codes, pred_codes, model_classes),
        roc_curve=None if proba is None else _roc(true_codes, proba, model_classes),
        slice_notes=slice_notes(test_df, slice_columns),
    )


def model_inputs(
    metadata: Mapping[str, Any], label_column: str, task: str
) -> tuple[list[Any] | None, list[str] | None]:
    """The classes and raw input columns recorded by ``train``'s export, after checking that the
    model was trained for the same label and task as this evaluation asks for."""
    require_choice("task", task, TASKS)
    trained_task = metadata.get("task")
    if trained_task and trained_task != task:
        raise ParameterError(
            f"parameter task={task!r}, but the model was trained for {trained_task!r}: "
            f"set task={trained_task!r}"
        )
    trained_label = metadata.get("label_column")
    if trained_label and trained_label != label_column:
        raise ParameterError(
            f"parameter label_column={label_column!r}, but the model predicts {trained_label!r}: "
            f"set label_column={trained_label!r}"
        )
    features = metadata.get("input_features")
    columns = [str(f["name"]) for f in features] if features else None
    return metadata.get("classes"), columns


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


def _class_labels(labels: pd.Series, classes: list[Any], label_column: str) -> np.ndarray:
    """The test labels as an array whose values compare equal to the model's classes."""
    values = labels.to_numpy(dtype=object)
    known = {_key(c) for c in classes}
    unseen = sorted({_key(v) for v in values} - known, key=str)
    if unseen:
        raise InputDataError(
            f"label column {label_column!r} has value(s) {', '.join(map(repr, unseen))} in the test data "
            f"that the model never saw in training (its classes: {', '.join(map(repr, classes))}): "
            "the model cannot predict them; retrain on data that has them or drop those rows"
        )
    # Map each label onto the model's own class object, so that 1 and 1.0 or np.str_ and str agree.
    lookup = {_key(c): c for c in classes}
    return np.array([lookup[_key(v)] for v in values], dtype=object)


def _key(value: Any) -> Any:
    value = _native(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _regression_label(labels: pd.Series, label_column: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        raise InputDataError(
            f"label column {label_column!r} has dtype {labels.dtype}, but task='regression' needs numbers"
        )
    return labels.to_numpy(dtype=float)


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- metrics -----------------------------------------------------------------------------------


def classification_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], proba: np.ndarray | None, classes: Sequence[Any]
) -> dict[str, float | None]:
    """Classification metrics of labels ``y_true`` and ``y_pred`` (values of ``classes``) and class
    probabilities ``proba`` (columns in ``classes`` order, or None); undefined metrics are None."""
    classes = list(classes)
    return _classification_metrics(
        _encode(np.asarray(y_true, dtype=object), classes),
        _encode(np.asarray(y_pred, dtype=object), classes),
        proba,
        len(classes),
    )


def _classification_metrics(
    true_codes: np.ndarray, pred_codes: np.ndarray, proba: np.ndarray | None, n_classes: int
) -> dict[str, float | None]:
    # Metrics run on class codes 0..n-1, so labels of any type (and mixed int/str) work alike.
    from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support

    metrics: dict[str, float | None] = {"accuracy": float(accuracy_score(true_codes, pred_codes))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            true_codes, pred_codes, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(precision)
        metrics[f"recall_{average}"] = float(recall)
        metrics[f"f1_{average}"] = float(f1)
    if n_classes == 2:
        metrics.update(_positive_class_metrics(true_codes == 1, pred_codes == 1))
    if proba is None:
        metrics["roc_auc"] = None
        metrics["log_loss"] = None
        return metrics
    metrics["roc_auc"] = _roc_auc(true_codes, proba, n_classes)
    metrics["log_loss"] = float(log_loss(true_codes, proba, labels=list(range(n_classes))))
    return metrics


def _positive_class_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    true_positives = int(np.sum(actual & predicted))
    precision = true_positives / predicted.sum() if predicted.any() else None
    recall = true_positives / actual.sum() if actual.any() else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "precision": None if precision is None else float(precision),
        "recall": None if recall is None else float(recall),
        "f1": None if f1 is None else float(f1),
    }


def _roc_auc(true_codes: np.ndarray, proba: np.ndarray, n_classes: int) -> float | None:
    """Binary: ROC-AUC of the positive class. Multiclass: one-vs-rest, macro-averaged over the
    classes present (which equals scikit-learn's ``multi_class="ovr"`` when all are present).
    None when fewer than two classes are present."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(true_codes)
    if len(present) < 2:
        return None
    if n_classes == 2:
        return float(roc_auc_score(true_codes == 1, proba[:, 1]))
    return float(np.mean([roc_auc_score(true_codes == code, proba[:, code]) for code in present]))


def _encode(y: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Each label's position in ``classes``."""
    index = {_key(c): i for i, c in enumerate(classes)}
    return np.fromiter((index[_key(v)] for v in y), dtype=int, count=len(y))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """Regression metrics; R² is None on fewer than two rows or a constant actual value."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, median_absolute_error, r2_score

    mse = float(mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        # R² compares with the variance of the actual values: undefined when they are constant.
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) >= 2 and np.ptp(y_true) > 0 else None,
        "median_absolute_error": float(median_absolute_error(y_true, y_pred)),
    }


def _confusion(true_codes: np.ndarray, pred_codes: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    """Rows are actual classes, columns predicted classes, both in the model's class order."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(true_codes, pred_codes, labels=list(range(len(classes))))
    return {"labels": [_native(c) for c in classes], "matrix": matrix.astype(int).tolist()}


def _roc(true_codes: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> dict[str, Any] | None:
    """The ROC curve (binary: positive class; multiclass: micro-averaged one-vs-rest), downsampled
    to at most MAX_ROC_POINTS points; None when the test data has a single class."""
    from sklearn.metrics import roc_curve

    if len(np.unique(true_codes)) < 2:
        return None
    if len(classes) == 2:
        actual = (true_codes == 1).astype(int)
        scores = proba[:, 1]
        kind, positive = "binary", _native(classes[1])
    else:
        actual = (true_codes[:, None] == np.arange(len(classes))[None, :]).astype(int).ravel()
        scores = proba.ravel()
        kind, positive = "micro-average one-vs-rest", None
    fpr, tpr, thresholds = roc_curve(actual, scores)
    # The first threshold is +inf (nothing predicted positive), which JSON cannot hold.
    finite = thresholds[np.isfinite(thresholds)]
    ceiling = np.nextafter(finite.max(), np.inf) if len(finite) else 1.0
    thresholds = np.where(np.isfinite(thresholds), thresholds, ceiling)
    keep = _downsample(len(fpr), MAX_ROC_POINTS)
    return {
        "kind": kind,
        "positive_class": positive,
        "fpr": [float(v) for v in fpr[keep]],
        "tpr": [float(v) for v in tpr[keep]],
        "thresholds": [float(v) for v in thresholds[keep]],
    }


def _downsample(length: int, limit: int) -> np.ndarray:
    """Evenly spread indices that keep the first and last point."""
    if length <= limit:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, limit)).astype(int))


# --- slices ------------------------------------------------------------------------------------


def slice_values(series: pd.Series) -> tuple[pd.Series, str]:
    """Each row's slice label (a string) and a note on how the slices were formed."""
    missing = series.isna()
    distinct = series.dropna().nunique()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and distinct > MAX_NUMERIC_SLICE_VALUES:
        bins = pd.qcut(series, q=QUANTILE_BINS, duplicates="drop")
        labels = bins.astype(str).where(~missing, MISSING_SLICE)
        note = f"numeric with {distinct} distinct values: cut into {bins.cat.categories.size} quantile bins"
    else:
        labels = series.map(_slice_label).where(~missing, MISSING_SLICE)
        note = f"{distinct} distinct value(s), one slice each"
        if not numeric and distinct > MAX_CATEGORY_SLICES:
            kept = set(labels[~missing].value_counts().index[:MAX_CATEGORY_SLICES])
            labels = labels.where(missing | labels.isin(kept), OTHER_SLICE)
            note = (
                f"{distinct} distinct values: the {MAX_CATEGORY_SLICES} most frequent are slices, "
                f"the rest form {OTHER_SLICE!r}"
            )
    if missing.any():
        note += f"; {int(missing.sum())} missing value(s) form the {MISSING_SLICE!r} slice"
    return labels.astype(str), note


def _slice_label(value: Any) -> str:
    value = _native(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def slice_notes(df: pd.DataFrame, slice_columns: Sequence[str]) -> dict[str, str]:
    return {column: slice_values(df[column])[1] for column in slice_columns}


def _slices(df: pd.DataFrame, slice_columns: Sequence[str], metrics_of: Any) -> list[SliceMetrics]:
    result = []
    for column in slice_columns:
        labels, _ = slice_values(df[column])
        for value in _slice_order(df[column], labels):
            idx = np.flatnonzero((labels == value).to_numpy())
            result.append(
                SliceMetrics(column=str(column), value=value, rows=len(idx), metrics=metrics_of(idx))
            )
    return result


def _slice_order(series: pd.Series, labels: pd.Series) -> list[str]:
    """Quantile bins in numeric order, values in sorted order, then (other) and (missing)."""
    present = set(labels)
    special = [s for s in (OTHER_SLICE, MISSING_SLICE) if s in present]
    values = present - set(special)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        first_value = {label: series[labels == label].min() for label in values}
        ordered = sorted(values, key=lambda label: first_value[label])
    else:
        ordered = sorted(values)
    return ordered + special


# --- reports -----------------------------------------------------------------------------------


def _metric_cell(value: Any) -> Any:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _metric_names(result: EvaluationResult) -> list[str]:
    return list(result.metrics)


def _overall_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    return [{"metric": name, "value": _metric_cell(value)} for name, value in result.metrics.items()]


def _slice_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    rows = []
    for s in result.slices:
        row: dict[str, Any] = {"column": s.column, "value": s.value, "rows": s.rows}
        row.update({name: _metric_cell(s.metrics.get(name)) for name in _metric_names(result)})
        rows.append(row)
    return rows


def _confusion_rows(result: EvaluationResult) -> tuple[list[dict[str, Any]], list[str]]:
    assert result.confusion_matrix is not None
    labels = [str(label) for label in result.confusion_matrix["labels"]]
    corner = "actual / predicted"
    rows = []
    for label, counts in zip(labels, result.confusion_matrix["matrix"], strict=True):
        row: dict[str, Any] = {corner: label}
        row.update(dict(zip(labels, counts, strict=True)))
        rows.append(row)
    return rows, [corner, *labels]


def _headline(result: EvaluationResult) -> str:
    primary = PRIMARY_METRIC[result.task]
    value = result.metrics.get(primary)
    shown = "n/a" if value is None else f"{value:.4g}"
    return f"{result.task.capitalize()} of {result.label_column} on {result.rows:,} test rows: {primary} = {shown}."


def roc_svg(curve: Mapping[str, Any], size: int = 320) -> str:
    """The ROC curve as a self-contained inline SVG line chart."""
    margin = 40
    plot = size - 2 * margin

    def x(v: float) -> float:
        return margin + v * plot

    def y(v: float) -> float:
        return size - margin - v * plot

    points = " ".join(f"{x(f):.1f},{y(t):.1f}" for f, t in zip(curve["fpr"], curve["tpr"], strict=True))
    ticks = []
    for v in (0.0, 0.5, 1.0):
        ticks.append(
            f'<text x="{x(v):.1f}" y="{size - margin + 16}" font-size="11" text-anchor="middle">{v:g}</text>'
            f'<text x="{margin - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>'
        )
    title = "ROC curve, " + (
        f"positive class {curve.get('positive_class')}"
        if curve.get("kind") == "binary"
        else str(curve.get("kind"))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="{html.escape(title)}">'
        f"<title>{html.escape(title)}</title>"
        f'<rect x="{margin}" y="{margin}" width="{plot}" height="{plot}" fill="none" stroke="#dadce0"/>'
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#9aa0a6" stroke-dasharray="4 4"/>'
        f'<polyline points="{points}" fill="none" stroke="#1a73e8" stroke-width="2"/>'
        f"{''.join(ticks)}"
        f'<text x="{size / 2}" y="{size - 6}" font-size="12" text-anchor="middle">false positive rate</text>'
        f'<text x="12" y="{size / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {size / 2})">true positive rate</text>'
        "</svg>"
    )


def render_html(result: EvaluationResult) -> str:
    """The evaluation report: overall metrics, per-slice metrics, confusion matrix and ROC curve."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    sections = [
        (
            "Overall",
            html_paragraph(_headline(result)) + html_table(_overall_rows(result), ["metric", "value"]),
        )
    ]
    if result.slices:
        notes = html_list(f"{column}: {note}" for column, note in result.slice_notes.items())
        columns = ["column", "value", "rows", *_metric_names(result)]
        sections.append(("Slices", notes + html_table(_slice_rows(result), columns)))
    if result.confusion_matrix is not None:
        rows, columns = _confusion_rows(result)
        sections.append(
            (
                "Confusion matrix",
                html_paragraph("Rows: actual class; columns: predicted class.") + html_table(rows, columns),
            )
        )
    if result.roc_curve is not None:
        sections.append(("ROC curve", roc_svg(result.roc_curve)))
    elif result.task == CLASSIFICATION:
        sections.append(("ROC curve", html_paragraph("n/a: the test data holds a single class.")))
    return html_page("Evaluation", sections)


def render_markdown(result: EvaluationResult) -> str:
    """The run summary: overall metrics, slices and confusion matrix as Markdown tables."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = [
        "# Evaluate",
        "",
        markdown_text(_headline(result)),
        "",
        markdown_table(_overall_rows(result), ["metric", "value"]),
        "",
    ]
    if result.slices:
        lines += ["## Slices", ""]
        lines += [
            f"- {markdown_text(column)}: {markdown_text(note)}" for column, note in result.slice_notes.items()
        ]
        columns = ["column", "value", "rows", *_metric_names(result)]
        lines += ["", markdown_table(_slice_rows(result), columns), ""]
    if result.confusion_matrix is not None:
        rows, columns = _confusion_rows(result)
        lines += ["## Confusion matrix", "", "Rows: actual class; columns: predicted class.", ""]
        lines += [markdown_table(rows, columns), ""]
    return "\n".join(lines)
