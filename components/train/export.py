"""The exported model: the feature pipeline and the winner in one Pipeline, with its model card."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.model_card import InputFeature, ModelCard
from mlstages.components.train.train import TrainResult


def export_model(
    result: TrainResult,
    directory: str | os.PathLike,
    input_columns: Mapping[str, str],
    extra_metadata: Mapping[str, Any] | None = None,
) -> ModelCard:
    """Write ``model.joblib`` (the whole Pipeline), ``baselines.joblib`` (the fitted baselines, for
    evaluate and the gate) and the card, ``metadata.json``, into ``directory``.

    ``input_columns`` maps each raw input column to its logical type; it must cover the columns
    the model was trained on, and its order is ignored in favour of the training order.
    ``extra_metadata`` is kept in the card beside what train knows (the drift reference, lineage).
    Returns the card written (with the model file's sha256 and the library versions).
    """
    from dataclasses import replace

    from mlstages.components.common.artifacts import dump_joblib, library_versions
    from mlstages.components.train.baselines import save_baselines

    missing = [c for c in result.input_columns if c not in input_columns]
    if missing:
        raise InputDataError(
            f"input_columns lacks the type of model input column(s) {', '.join(map(repr, missing))}"
        )
    sha256 = dump_joblib(result.model, directory, "model")
    baselines = save_baselines(result.fitted_baselines, result.baselines, result.scoring, str(directory))
    card = replace(
        model_card(result, input_columns, extra_metadata),
        sha256=sha256,
        versions=library_versions(),
        baselines=baselines,
    )
    card.write(directory)
    return card


def model_card(
    result: TrainResult, input_columns: Mapping[str, str], extra_metadata: Mapping[str, Any] | None = None
) -> ModelCard:
    """What the serving and validation steps need to know about the exported model."""
    extra = dict(extra_metadata or {})
    lineage = extra.pop("lineage", {})
    return ModelCard(
        task=result.task,
        label_column=result.label_column,
        input_features=tuple(InputFeature(c, input_columns[c]) for c in result.input_columns),
        classes=tuple(result.classes) if result.classes is not None else None,
        feature_names=tuple(result.feature_names),
        family=result.best_family,
        params=dict(result.best_params),
        cv_score=result.best_score,
        scoring=result.scoring,
        cv_folds=result.cv_folds,
        search=result.search,
        train_rows=result.train_rows,
        search_rows=result.search_rows,
        lineage=lineage,
        extra=extra,
    )
