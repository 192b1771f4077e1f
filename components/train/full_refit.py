"""The winner refit on every training row on the Dask engine, when the task holds only a sample.

train holds at most what its memory allowance takes (training_rows.py): on a larger split the
search and the in-task refit see a seeded sample. LightGBM can train one model over rows spread
across Dask workers, so a lightgbm winner is refit there with the same parameters on every row:
each worker reads its parts and transforms them with the fitted feature pipeline (the same
``matrix.transform_part`` checks as the task's matrix), LightGBM trains across the workers, and
the model comes back as a plain LGBM estimator in the same one Pipeline (feature pipeline +
estimator). When it does not apply, ``why_not`` says why, for the task's log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.engine import LOCAL
from mlstages.components.train.config import CLASSIFICATION, TrainConfig
from mlstages.components.train.train import TrainResult

FAMILY = "lightgbm"


def why_not(config: TrainConfig, best_family: str, held_rows: int, available_rows: int) -> str | None:
    """None when the winner is refit on the cluster; else why not, in a sentence."""
    if config.full_refit == "off":
        return "full_refit='off'"
    if config.engine == LOCAL:
        if held_rows < available_rows and best_family == FAMILY:
            return (
                f"engine='local': the refit used the {held_rows:,} rows the task holds; with engine='dask' "
                f"it would use all {available_rows:,}"
            )
        return "engine='local'"
    if best_family != FAMILY:
        return (
            f"the winning family is {best_family}, and only lightgbm trains across Dask workers; add "
            "lightgbm to model_families to let it compete"
        )
    if held_rows >= available_rows and config.full_refit == "auto":
        return f"the task holds every one of the {available_rows:,} training rows"
    return None


def full_data_refit(
    result: TrainResult,
    train_path: str,
    config: TrainConfig,
    check_rows: pd.DataFrame,
    available_rows: int,
    *,
    train_uri: str = "",
    say: Callable[[str], None] = print,
) -> tuple[TrainResult, str]:
    """The train task's step: ``result`` refit on every row on the cluster when that applies, and
    a paragraph for the summary (empty when nothing was asked of the engine). Whether or not it
    applies, the log says so, unless the engine is local and nothing was lost by it."""
    held = result.train_rows
    reason = why_not(config, result.best_family, held, available_rows)
    if reason is not None:
        quiet = config.engine == LOCAL and (result.best_family != FAMILY or held >= available_rows)
        if quiet or config.full_refit == "off":
            return result, ""
        say(f"full-data refit: not applied: {reason}")
        return result, f"\nThe full-data refit on the Dask engine did not apply: {reason}.\n"
    try:
        refit = refit_on_cluster(result, train_path, config, check_rows, train_uri=train_uri, say=say)
    except NotApplicable as exc:
        say(f"full-data refit: not applied: {exc}; the model is the task's refit on {held:,} rows")
        return result, f"\nThe full-data refit on the Dask engine did not apply: {exc}.\n"
    info = refit.refit or {}
    return refit, (
        f"\nThe lightgbm winner was refit with the same parameters on all {refit.train_rows:,} training "
        f"rows on the Dask engine ({info.get('workers')} worker(s), {info.get('parts')} part(s), "
        f"{info.get('seconds')} s). The search and the baselines used the {held:,} rows the task holds.\n"
    )


def part_label_counts(file: str, start: int, *, label_column: str) -> dict[Any, int]:
    """One part's rows per class; runs on a worker (``Engine.map``)."""
    from mlstages.components.common.dataset_files import iter_part_batches

    counts: dict[Any, int] = {}
    for batch in iter_part_batches(file, start, columns=[label_column], what="training split"):
        for value, count in batch[label_column].value_counts(dropna=True).items():
            counts[value] = counts.get(value, 0) + int(count)
    return counts


def load_part(
    file: str,
    start: int,
    rows: int,
    *,
    pipeline: Any,
    columns: list[str],
    names: list[str],
    config: TrainConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One part's transformed features and labels; runs on a worker (``cluster_fit.fit_lightgbm``)."""
    from mlstages.components.common.dataset_files import iter_part_batches
    from mlstages.components.train.matrix import transform_part

    batches = iter_part_batches(file, start, columns=[*columns, config.label_column], what="training split")
    return transform_part(pipeline, batches, rows, columns, names, config)


def refit_on_cluster(
    result: TrainResult,
    train_path: str,
    config: TrainConfig,
    check_rows: pd.DataFrame,
    *,
    train_uri: str = "",
    say: Callable[[str], None] = print,
) -> TrainResult:
    """``result`` with its LightGBM estimator refit, same parameters, on every row of the split at
    ``train_path``, on ``config.engine``'s cluster. Raises ``NotApplicable`` when a part lacks a
    class (see below); the caller keeps the in-task model then."""
    from sklearn.pipeline import Pipeline

    from mlstages.components.common.cluster_fit import Part, fit_lightgbm
    from mlstages.components.common.dataset_files import dataset_rows, part_starts
    from mlstages.components.common.engine import open_engine
    from mlstages.components.train.train import check_predictions

    starts = part_starts(train_path, what="training split")
    total = dataset_rows(train_path, what="training split")
    ends = [s for _, s in starts[1:]] + [total]
    parts = [
        Part(file, start, end - start) for (file, start), end in zip(starts, ends, strict=True) if end > start
    ]
    features = result.model.named_steps["features"]
    estimator = result.model.named_steps["model"]
    # A feature pipeline without array output serves DataFrames: the workers' arrays hold its
    # columns in the same order (transform_part), and LightGBM fitted on arrays predicts a
    # DataFrame by position, without a warning.
    # train_uri: the split's URI, where a cluster's workers read its parts (engine.open_engine).
    with open_engine(
        config.engine, say=say, locations={train_path: train_uri} if train_uri else None
    ) as engine:
        if config.task == CLASSIFICATION:
            _check_classes(engine, parts, config, result.classes or [])
        label_dtype = np.float64
        if config.task == CLASSIFICATION:
            # Text classes travel as the object arrays label_values gives, not as fixed-width text.
            label_dtype = np.asarray(result.classes).dtype
            label_dtype = np.dtype(object) if label_dtype.kind in "US" else label_dtype
        fit = fit_lightgbm(
            engine,
            parts,
            load_part,
            task=config.task,
            params=estimator.get_params(),
            n_features=len(result.feature_names),
            label_dtype=label_dtype,
            shared={
                "pipeline": features,
                "columns": list(result.input_columns),
                "names": list(result.feature_names),
                "config": config,
            },
        )
    local = fit.estimator
    # Served like the in-task model: the task's thread allowance, not a worker's.
    local.set_params(n_jobs=estimator.get_params()["n_jobs"])
    model = Pipeline([("features", features), ("model", local)])
    check_predictions(model, check_rows, config)
    say(
        f"full-data refit: lightgbm refit on all {fit.rows:,} training rows ({fit.parts} part(s)) on "
        f"{fit.workers} Dask worker(s): {fit.load_seconds:.1f} s reading and transforming the parts, "
        f"{fit.fit_seconds:.1f} s training"
    )
    return dataclasses.replace(
        result,
        model=model,
        train_rows=fit.rows,
        refit={
            "where": "dask",
            "rows": fit.rows,
            "parts": fit.parts,
            "workers": fit.workers,
            "held_rows": result.train_rows,
            "seconds": round(fit.load_seconds + fit.fit_seconds, 3),
        },
    )


class NotApplicable(Exception):
    """The full-data refit cannot run on this data; the message says why."""


def _check_classes(engine: Any, parts: list[Any], config: TrainConfig, classes: list[Any]) -> None:
    """Every part holds every class the in-task model knows, and no other.

    LightGBM's classifier encodes the labels each worker holds on its own: a worker without a
    class would number the classes differently, and the workers' histograms would not add up. A
    class the sample missed would be one the exported model's metadata does not list."""
    counts = engine.map(_part_counts, parts, label_column=config.label_column)
    known = {_plain(c) for c in classes}
    for part, part_counts in zip(parts, counts, strict=True):
        seen = {_plain(c) for c in part_counts}
        if seen - known:
            raise NotApplicable(
                f"part {part.file} holds class(es) {sorted(map(str, seen - known))[:5]} that the task's "
                "sample does not: raise max_train_rows"
            )
        if known - seen:
            raise NotApplicable(
                f"part {part.file} lacks class(es) {sorted(map(str, known - seen))[:5]}, and LightGBM's "
                "Dask classifier needs every class on every worker"
            )


def _part_counts(part: Any, *, label_column: str) -> dict[Any, int]:
    return part_label_counts(part.file, part.start, label_column=label_column)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
