"""Training: cross-validated model search over a few model families, and the exported model.

The feature pipeline arrives fitted (preprocess + engineer_features fit it on the training split), so
the training rows are transformed once and every candidate is scored on that matrix. The winner is
refit on all training rows and wrapped with the feature pipeline into ONE scikit-learn ``Pipeline``
that takes raw rows: the object KServe's sklearn runtime serves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.baselines import DEFAULT_GRADIENT_BOOSTING
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.estimators.categories import onehot_groups
from mlstages.components.common.labels import check_label
from mlstages.components.common.progress import duration, report
from mlstages.components.train.baselines import BaselineScore, fit_baselines, score_baselines
from mlstages.components.train.config import (
    CLASSIFICATION,
    REGRESSION,
    TrainConfig,
    base_estimator,
    family_estimator,
    routed_params,
)
from mlstages.components.train.holdout_fit import fit_on_matrix
from mlstages.components.train.matrix import (
    TrainingMatrix,
    build_matrix,
    frame_batches,
    resolve_input_columns,
)
from mlstages.components.train.search import FamilyOutcome, cv_folds, native, search_families


@dataclass(frozen=True)
class TrainResult:
    """The trained model and how it was chosen.

    model: Pipeline([("features", feature pipeline), ("model", fitted estimator)]) on raw rows. When
        the feature pipeline can output arrays (scikit-learn's set_output), as engineer_features'
        does, the model holds a copy of it set to do so, and the estimator is fitted on that
        array rather than on the DataFrame: the same numbers, without the estimator's
        column-by-column DataFrame checks on every call.
    search_results: one row per candidate: family, params (JSON), mean_cv_score, std_cv_score,
        rank (1 = the chosen one; over all families; candidates halving dropped early rank after
        those that reached its last round), fit_time_seconds (mean per fold), rows_scored, final,
        and default (the default gradient boosting baseline, which is also a candidate).
    baselines: the dummy and the default gradient boosting, scored on the same rows and folds.
    fitted_baselines: the same refit on every training row, as Pipelines on raw rows.
    skipped: family -> why it was not searched (the time budget).
    search_seconds: the wall time of the baselines and the search.
    refit: None when the model was refit in the task on the rows it holds (train_rows); else how
        it was refit on every row on the Dask engine (full_refit.py): where, rows, parts, workers,
        held_rows (what the task held, which the baselines were refit on), seconds.
    """

    model: Any
    task: str
    label_column: str
    best_family: str
    best_params: dict[str, Any]
    best_score: float
    scoring: str
    cv_folds: int
    search: str
    classes: list[Any] | None
    search_results: pd.DataFrame
    train_rows: int
    search_rows: int
    input_columns: list[str]
    feature_names: list[str]
    baselines: list[BaselineScore]
    fitted_baselines: dict[str, Any]
    skipped: dict[str, str]
    search_seconds: float
    refit: dict[str, Any] | None = None


@dataclass(frozen=True)
class SearchData:
    """What the search scores candidates on, prepared the same way by train and by a trial branch
    (``trials.py``), so that both score the same rows.

    features: every held training row, transformed (a DataFrame over the matrix, no copy).
    y: their labels.
    search_index: the positions of the rows searched (all, or a seeded sample).
    category_groups: the features' one-hot groups, which gradient boosting splits natively.
    """

    features: pd.DataFrame
    y: np.ndarray
    search_index: np.ndarray
    category_groups: list[tuple[str, list[int]]]

    @property
    def sampled(self) -> bool:
        return len(self.search_index) < len(self.y)

    def search_matrix(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The searched rows' features and labels: every row, the features themselves rather than
        an iloc copy of them."""
        if not self.sampled:
            return self.features, self.y
        return self.features.iloc[self.search_index], self.y[self.search_index]


def search_data(matrix: TrainingMatrix, feature_pipeline: Any, config: TrainConfig) -> SearchData:
    """The rows the search runs on, from the transformed training rows (``build_matrix``)."""
    search_index = _search_sample(matrix.y, config)
    _check_folds(matrix.y[search_index], config, sampled=len(search_index) < matrix.rows)
    category_groups = onehot_groups(feature_pipeline, matrix.feature_names)
    return SearchData(matrix.frame(), matrix.y, search_index, category_groups)


def training_matrix(
    train_df: pd.DataFrame,
    feature_pipeline: Any,
    config: TrainConfig,
    input_columns: Sequence[str] | None = None,
) -> TrainingMatrix:
    """A DataFrame's rows checked and transformed, a slice at a time, as the train task streams a
    split's (``training_rows.load_training_rows``)."""
    if len(train_df) == 0:
        raise InputDataError("the training data has no rows")
    check_label(train_df, config.label_column, what="training split")
    columns = resolve_input_columns(
        [str(c) for c in train_df.columns], feature_pipeline, config.label_column, input_columns
    )
    return build_matrix(frame_batches(train_df), len(train_df), columns, feature_pipeline, config)


def prepare_search(
    train_df: pd.DataFrame,
    feature_pipeline: Any,
    config: TrainConfig,
    input_columns: Sequence[str] | None = None,
) -> SearchData:
    """``search_data`` of a DataFrame's rows."""
    matrix = training_matrix(train_df, feature_pipeline, config, input_columns)
    return search_data(matrix, feature_pipeline, config)


def train(
    train_df: pd.DataFrame,
    feature_pipeline: Any,
    config: TrainConfig,
    *,
    input_columns: Sequence[str] | None = None,
    outcomes: Sequence[FamilyOutcome] | None = None,
) -> TrainResult:
    """Search every configured family with cross-validation and return the best one, refit.

    ``feature_pipeline`` is already fitted on ``train_df`` and is not refit. ``input_columns`` are
    the raw columns the served model takes, in order; by default the columns the feature pipeline
    was fitted on (``feature_names_in_``), else every column but the label. ``outcomes`` are the
    families' searches when they ran elsewhere (trial branches across pods, ``trials.py``), in
    ``model_families`` order: then only the baselines are scored here, and the winner is chosen
    from them exactly as from the search's own.
    """
    matrix = training_matrix(train_df, feature_pipeline, config, input_columns)
    return train_on_matrix(matrix, feature_pipeline, config, outcomes=outcomes)


def train_on_matrix(
    matrix: TrainingMatrix,
    feature_pipeline: Any,
    config: TrainConfig,
    *,
    outcomes: Sequence[FamilyOutcome] | None = None,
) -> TrainResult:
    """``train`` on rows already transformed (``build_matrix``), as the train task streams them."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    y = matrix.y
    data = search_data(matrix, feature_pipeline, config)
    search_rows, category_groups = len(data.search_index), data.category_groups
    started = time.monotonic()
    search_features, search_y = data.search_matrix()
    del data
    report(f"scoring the baselines on {search_rows:,} rows, {config.cv_folds} folds")
    baselines = score_baselines(
        search_features, search_y, cv_folds(config), config.scoring, config.task, config.seed, config.n_jobs
    )
    if outcomes is None:
        outcomes = search_families(
            search_features, search_y, config, started=started, category_groups=category_groups
        )
        search_seconds = time.monotonic() - started
    else:
        # The branches ran side by side: the baselines here, then the slowest branch.
        search_seconds = time.monotonic() - started + max((o.seconds for o in outcomes), default=0.0)
    del search_features
    table = _rank(_candidates_table(outcomes, baselines, config, search_rows))
    chosen = table.loc[table["rank"] == 1].iloc[0]
    best_family, best_score = str(chosen["family"]), float(chosen["mean_cv_score"])
    best_params = dict(json.loads(chosen["params"]))

    if bool(chosen["default"]):
        # The default baseline as a candidate: scikit-learn's booster on the features as they are.
        estimator = clone(base_estimator(config.task, best_family, config.seed))
    else:
        family = family_estimator(
            config.task, best_family, config.seed, category_groups, len(matrix.feature_names)
        )
        estimator = clone(family).set_params(**routed_params(family, best_params))
    # With array output the estimators take the features as an array: checking a DataFrame column
    # by column costs ~0.6 ms per call for 16 columns, ~1 ms for 110 (measured), more than the
    # whole feature pipeline takes for one row.
    served_features = feature_pipeline if matrix.array_pipeline is None else matrix.array_pipeline
    fit_input = matrix.fit_input()
    report(
        f"chose {best_family} ({config.scoring} {best_score:.4f}) after "
        f"{duration(time.monotonic() - started)}; refitting it on {len(y):,} rows"
    )
    fit_on_matrix(estimator, fit_input, y, config.seed)
    model = Pipeline([("features", served_features), ("model", estimator)])
    check_predictions(model, matrix.check_rows, config)
    classes = [native(c) for c in estimator.classes_] if config.task == CLASSIFICATION else None
    report(f"refitting the baselines (the quality floor) on {len(y):,} rows")
    fitted_baselines = fit_baselines(served_features, fit_input, y, config.task, config.seed)
    return TrainResult(
        model=model,
        task=config.task,
        label_column=config.label_column,
        best_family=best_family,
        best_params={k: native(v) for k, v in best_params.items()},
        best_score=best_score,
        scoring=config.scoring,
        cv_folds=config.cv_folds,
        search=config.search,
        classes=classes,
        search_results=table,
        train_rows=matrix.rows,
        search_rows=search_rows,
        input_columns=list(matrix.input_columns),
        feature_names=list(matrix.feature_names),
        baselines=baselines,
        fitted_baselines=fitted_baselines,
        skipped={o.family: o.skipped for o in outcomes if o.skipped},
        search_seconds=search_seconds,
    )


def _search_sample(y: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Row positions the search runs on: all rows, or a seeded sample of max_search_rows."""
    from sklearn.model_selection import train_test_split

    rows = len(y)
    if config.max_search_rows == 0 or config.max_search_rows >= rows:
        return np.arange(rows)
    stratify = y if config.task == CLASSIFICATION else None
    try:
        sample, _ = train_test_split(
            np.arange(rows), train_size=config.max_search_rows, stratify=stratify, random_state=config.seed
        )
    except ValueError as exc:
        raise ParameterError(
            f"parameter max_search_rows={config.max_search_rows}: cannot draw a stratified sample of that "
            f"size: {exc}; raise max_search_rows or set it to 0"
        ) from exc
    return np.sort(sample)


def _check_folds(y: np.ndarray, config: TrainConfig, sampled: bool) -> None:
    where = f"the search sample of {len(y)} rows" if sampled else "the training data"
    fix = "lower cv_folds" + (" or raise max_search_rows" if sampled else "")
    if config.task == REGRESSION:
        if len(y) < config.cv_folds:
            raise InputDataError(f"{where} has fewer rows than cv_folds={config.cv_folds}: {fix}")
        return
    counts = pd.Series(y).value_counts()
    rare = counts[counts < config.cv_folds]
    if len(rare):
        listed = ", ".join(f"{native(k)!r} ({n} rows)" for k, n in rare.items())
        raise InputDataError(
            f"class(es) {listed} of label column {config.label_column!r} have fewer rows in {where} than "
            f"cv_folds={config.cv_folds}, so stratified folds cannot all hold them: {fix}, or drop or "
            "merge those classes"
        )


def _candidates_table(
    outcomes: list[FamilyOutcome], baselines: list[BaselineScore], config: TrainConfig, rows: int
) -> pd.DataFrame:
    """Every searched candidate, and the default gradient boosting as one more candidate of its
    family when that family is searched: so the chosen model is never worse, in cross-validation,
    than the baseline a user gets in three lines."""
    tables = [o.table.assign(default=False) for o in outcomes if o.table is not None]
    default = next(b for b in baselines if b.name == DEFAULT_GRADIENT_BOOSTING)
    if "gradient_boosting" in config.model_families:
        tables.append(
            pd.DataFrame(
                {
                    "family": ["gradient_boosting"],
                    "params": ["{}"],
                    "mean_cv_score": [default.mean_cv_score],
                    "std_cv_score": [default.std_cv_score],
                    "fit_time_seconds": [default.fit_time_seconds],
                    "rows_scored": [rows],
                    "final": [True],
                    "default": [True],
                }
            )
        )
    if not tables:
        raise ParameterError(
            "no model family was searched within time_budget_seconds: raise the budget or set it to 0"
        )
    table = pd.concat(tables, ignore_index=True)
    # Preference order: families as listed in model_families; within one, the search's own order.
    table["preference"] = table["family"].map({f: i for i, f in enumerate(config.model_families)})
    return table


def _rank(table: pd.DataFrame) -> pd.DataFrame:
    """Rank 1 is the chosen candidate: the best mean score among those scored on the search's last
    round (halving's early rounds score on fewer rows, which is not comparable), ties going to the
    family listed first, then to the candidate found first."""
    ordered = table.sort_values(
        ["final", "mean_cv_score", "preference"], ascending=[False, False, True], kind="stable"
    )
    ranked = table.drop(columns="preference")
    ranked.insert(4, "rank", 0)
    ranked.loc[ordered.index, "rank"] = np.arange(1, len(table) + 1)
    return ranked


def check_predictions(model: Any, rows: pd.DataFrame, config: TrainConfig) -> None:
    """The exported pipeline predicts finite values on raw training rows, or an InputDataError."""
    if config.task == CLASSIFICATION:
        output = model.predict_proba(rows)
    else:
        output = np.asarray(model.predict(rows), dtype=float)
    if not np.isfinite(output).all():
        raise InputDataError(
            "the trained pipeline predicts non-finite values on raw training rows: check the feature "
            "pipeline's output for extreme values"
        )
