"""The exported model: the feature pipeline and the winner in one Pipeline, with its metadata."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mlstages.components.common.errors import InputDataError
from mlstages.components.train.config import CLASSIFICATION
from mlstages.components.train.train import TrainResult


def export_model(
    result: TrainResult,
    directory: str | os.PathLike,
    input_columns: Mapping[str, str],
    extra_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model.joblib`` (the whole Pipeline) and ``metadata.json`` into ``directory``.

    ``input_columns`` maps each raw input column to its logical type; it must cover the columns
    the model was trained on, and its order is ignored in favour of the training order.
    Returns the metadata written (with sha256 and library versions).
    """
    from mlstages.components.common.artifacts import save_estimator

    missing = [c for c in result.input_columns if c not in input_columns]
    if missing:
        raise InputDataError(
            f"input_columns lacks the type of model input column(s) {', '.join(map(repr, missing))}"
        )
    metadata: dict[str, Any] = dict(extra_metadata or {})
    metadata.update(model_metadata(result, input_columns))
    return save_estimator(result.model, directory, "model", metadata)


def model_metadata(result: TrainResult, input_columns: Mapping[str, str]) -> dict[str, Any]:
    """What the serving and validation steps need to know about the exported model."""
    if result.task == CLASSIFICATION:
        output = {
            "predict": f"one class label of {result.label_column!r} per row",
            "predict_proba": "one probability per class per row, in the order of 'classes'",
            "classes": result.classes,
        }
    else:
        output = {"predict": f"one predicted value of {result.label_column!r} per row"}
    return {
        "framework": "scikit-learn",
        "format": "joblib",
        "task": result.task,
        "label_column": result.label_column,
        "classes": result.classes,
        # A list, because the metadata file's keys are sorted and the order of inputs matters.
        "input_features": [{"name": c, "type": input_columns[c]} for c in result.input_columns],
        "input_columns": {c: input_columns[c] for c in result.input_columns},
        "feature_names": result.feature_names,
        "output": output,
        "best_family": result.best_family,
        "best_params": result.best_params,
        "cv_score": result.best_score,
        "scoring": result.scoring,
        "cv_folds": result.cv_folds,
        "search": result.search,
        "train_rows": result.train_rows,
        "search_rows": result.search_rows,
    }
