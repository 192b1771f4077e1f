"""Predicting a dataset a batch at a time: what evaluate, validate_model and batch_predict share.

A model's transforms on a whole test split hold a feature matrix of rows x features float64 (8 GB
for 10M rows and 100 features); a batch at a time they hold one batch's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def predict_frame(
    model: Any, frame: pd.DataFrame, probabilities: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions (and class probabilities) of ``frame``. For a scikit-learn Pipeline the rows go
    through its transforms once for both, as Pipeline.predict and predict_proba each would."""
    from sklearn.pipeline import Pipeline

    if probabilities and isinstance(model, Pipeline) and len(model.steps) > 1:
        transformed = frame
        for _, step in model.steps[:-1]:
            if step is not None and step != "passthrough":
                transformed = step.transform(transformed)
        final = model.steps[-1][1]
        return np.asarray(final.predict(transformed)), np.asarray(
            final.predict_proba(transformed), dtype="float64"
        )
    predictions = np.asarray(model.predict(frame))
    return predictions, (np.asarray(model.predict_proba(frame), dtype="float64") if probabilities else None)


def predict_batches(
    models: Mapping[str, Any],
    batches: Iterable[pd.DataFrame],
    columns: list[str],
    probabilities: Mapping[str, bool],
    rows: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Each model's predictions (and class probabilities where ``probabilities[name]``) of every
    row of ``batches``, in order; only ``columns`` of a batch reach the models. Given the ``rows``
    the batches hold, each batch is written into arrays of that length as it comes: the batches'
    arrays and their concatenation were held at once, twice the predictions (1.4 GB at 10M rows)."""
    if rows is not None:
        return _predict_into(models, batches, columns, probabilities, rows)
    predicted: dict[str, list[np.ndarray]] = {name: [] for name in models}
    scored: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for batch in batches:
        frame = batch[columns]
        for name, model in models.items():
            predictions, scores = predict_frame(model, frame, probabilities.get(name, False))
            predicted[name].append(predictions)
            if scores is not None:
                scored[name].append(scores)
    return _joined(models, predicted, scored)


def _predict_into(
    models: Mapping[str, Any],
    batches: Iterable[pd.DataFrame],
    columns: list[str],
    probabilities: Mapping[str, bool],
    rows: int,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    predicted: dict[str, np.ndarray] = {}
    scored: dict[str, np.ndarray | None] = {}
    offset = 0
    for batch in batches:
        frame = batch[columns]
        end = offset + len(frame)
        if end > rows:
            raise ValueError(f"the batches hold more than the {rows:,} rows expected")
        for name, model in models.items():
            predictions, scores = predict_frame(model, frame, probabilities.get(name, False))
            if name not in predicted:
                predicted[name] = np.empty((rows, *predictions.shape[1:]), dtype=predictions.dtype)
                scored[name] = None if scores is None else np.empty((rows, *scores.shape[1:]), scores.dtype)
            elif not np.can_cast(predictions.dtype, predicted[name].dtype, casting="same_kind") or (
                predictions.dtype.kind in "US" and predictions.dtype.itemsize > predicted[name].dtype.itemsize
            ):
                # A longer string class than the first batch's, say: widen what is held so far.
                predicted[name] = predicted[name].astype(np.result_type(predicted[name], predictions))
            predicted[name][offset:end] = predictions
            if scores is not None:
                scored[name][offset:end] = scores
        offset = end
    if offset != rows:
        raise ValueError(f"the batches held {offset:,} rows, not the {rows:,} expected")
    return {name: (predicted.get(name, np.empty(0))[:rows], scored.get(name)) for name in models}


def _joined(
    models: Mapping[str, Any],
    predicted: Mapping[str, list[np.ndarray]],
    scored: Mapping[str, list[np.ndarray]],
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Each model's predictions (and probabilities) of consecutive rows, put together."""
    return {
        name: (
            np.concatenate(predicted[name]) if predicted[name] else np.empty(0),
            np.concatenate(scored[name]) if scored[name] else None,
        )
        for name in models
    }


def predict_part(
    shard: tuple[str, int],
    *,
    models: Mapping[str, Any],
    columns: list[str],
    probabilities: Mapping[str, bool],
    batch_rows: int,
    what: str,
    total_rows: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``predict_batches`` of one dataset part (``dataset_files.part_starts``' shard); runs on a
    worker of the engine. ``total_rows``: the dataset's, for the progress lines."""
    from mlstages.components.common.dataset_files import iter_part_batches

    file, start = shard
    batches = iter_part_batches(
        file, start, batch_rows=batch_rows, columns=columns, what=what, total_rows=total_rows
    )
    return predict_batches(models, batches, columns, probabilities)


def predict_parts(engine: Any, path: Any, models: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """``predict_batches`` of every row of the dataset at ``path``, each part predicted on the
    engine's workers (``common.engine``) with ``predict_part``'s ``options``, the predictions put
    together in row order. Only the predictions come back: the rows stay with the workers."""
    from mlstages.components.common.dataset_files import dataset_rows, part_starts

    what = options["what"]
    parts = engine.map(
        predict_part,
        part_starts(path, what=what),
        models=dict(models),
        total_rows=dataset_rows(path, what=what),
        **options,
    )
    return _joined(
        models,
        {name: [part[name][0] for part in parts] for name in models},
        {name: [part[name][1] for part in parts if part[name][1] is not None] for name in models},
    )
