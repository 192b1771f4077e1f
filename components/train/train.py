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
from mlstages.components.train.baselines import BaselineScore, fit_baselines, score_baselines
from mlstages.components.train.config import (
    CLASSIFICATION,
    REGRESSION,
    TrainConfig,
    base_estimator,
    family_estimator,
    routed_params,
)
from mlstages.components.train.search import FamilyOutcome, cv_folds, native, search_families

# The final pipeline's predictions are checked on at most this many training rows: enough to catch
# a broken model, cheap on a million rows.
_PREDICTION_CHECK_ROWS = 10_000


# Rows on which the feature pipeline's array output is compared with its DataFrame output.
_ARRAY_CHECK_ROWS = 100


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


@dataclass(frozen=True)
class SearchData:
    """What the search scores candidates on, prepared the same way by train and by a trial branch
    (``trials.py``), so that both score the same rows.

    features: every held training row, transformed by the feature pipeline.
    y: their labels.
    columns: the raw input columns the served model takes.
    search_index: the positions of the rows searched (all, or a seeded sample).
    category_groups: the features' one-hot groups, which gradient boosting splits natively.
    check_rows, first_rows: a few raw rows for the prediction and array-output checks.
    """

    features: pd.DataFrame
    y: np.ndarray
    columns: list[str]
    search_index: np.ndarray
    category_groups: list[tuple[str, list[int]]]
    check_rows: pd.DataFrame
    first_rows: pd.DataFrame

    @property
    def sampled(self) -> bool:
        return len(self.search_index) < len(self.y)

    def search_matrix(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The searched rows' features and labels: every row, the features themselves rather than
        an iloc copy of them."""
        if not self.sampled:
            return self.features, self.y
        return self.features.iloc[self.search_index], self.y[self.search_index]


def prepare_search(
    train_df: pd.DataFrame,
    feature_pipeline: Any,
    config: TrainConfig,
    input_columns: Sequence[str] | None = None,
) -> SearchData:
    """The training rows checked and transformed once, and the rows the search runs on."""
    if len(train_df) == 0:
        raise InputDataError("the training data has no rows")
    y = _check_label(train_df, config.label_column, config.task)
    columns = _input_columns(train_df, feature_pipeline, config.label_column, input_columns)
    raw = train_df[columns]
    features = _transform(feature_pipeline, raw)
    # Only a few raw rows are needed from here on (the array-output and prediction checks): the
    # column copy goes, so the raw rows are held once (by the caller) beside the features.
    check_rows = (
        raw
        if len(raw) <= _PREDICTION_CHECK_ROWS
        else raw.sample(n=_PREDICTION_CHECK_ROWS, random_state=config.seed)
    )
    first_rows = raw.iloc[:_ARRAY_CHECK_ROWS]
    del raw
    search_index = _search_sample(y, config)
    _check_folds(y[search_index], config, sampled=len(search_index) < len(y))
    category_groups = onehot_groups(feature_pipeline, [str(c) for c in features.columns])
    return SearchData(features, y, columns, search_index, category_groups, check_rows, first_rows)


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
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    data = prepare_search(train_df, feature_pipeline, config, input_columns)
    started = time.monotonic()
    search_features, search_y = data.search_matrix()
    features, y, category_groups = data.features, data.y, data.category_groups
    columns, search_rows, check_rows, first_rows = (
        data.columns,
        len(data.search_index),
        data.check_rows,
        data.first_rows,
    )
    # The features are held once, here: `del features` below must free them before the fit.
    del data
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
    table = _rank(_candidates_table(outcomes, baselines, config, search_rows))
    chosen = table.loc[table["rank"] == 1].iloc[0]
    best_family, best_score = str(chosen["family"]), float(chosen["mean_cv_score"])
    best_params = dict(json.loads(chosen["params"]))

    if bool(chosen["default"]):
        # The default baseline as a candidate: scikit-learn's booster on the features as they are.
        estimator = clone(base_estimator(config.task, best_family, config.seed))
    else:
        family = family_estimator(config.task, best_family, config.seed, category_groups, features.shape[1])
        estimator = clone(family).set_params(**routed_params(family, best_params))
    del search_features
    array_features = _array_output(feature_pipeline, first_rows, features)
    # With array output the estimators take the features as an array: checking a DataFrame column
    # by column costs ~0.6 ms per call for 16 columns, ~1 ms for 110 (measured), more than the
    # whole feature pipeline takes for one row.
    served_features = feature_pipeline if array_features is None else array_features
    feature_names = [str(c) for c in features.columns]
    fit_matrix = features if array_features is None else features.to_numpy()
    if array_features is not None:
        del features  # the estimator takes the array: the DataFrame goes before the fit
    estimator.fit(fit_matrix, y)
    model = Pipeline([("features", served_features), ("model", estimator)])
    _check_predictions(model, check_rows, config)
    classes = [native(c) for c in estimator.classes_] if config.task == CLASSIFICATION else None
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
        train_rows=len(train_df),
        search_rows=search_rows,
        input_columns=list(columns),
        feature_names=feature_names,
        baselines=baselines,
        fitted_baselines=fit_baselines(served_features, fit_matrix, y, config.task, config.seed),
        skipped={o.family: o.skipped for o in outcomes if o.skipped},
        search_seconds=search_seconds,
    )


def _check_label(df: pd.DataFrame, label_column: str, task: str) -> np.ndarray:
    """The label as an array, after checking it can be learned for ``task``."""
    # Present, no missing values, numeric for regression, two classes or more for classification.
    label = check_label(df, label_column, what="training split", task=task)
    if task == REGRESSION:
        values = label.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputDataError(
                f"label column {label_column!r} of the training split has an infinite value at row {row} "
                "(0-based): drop or fix that row"
            )
        return values
    if pd.api.types.is_float_dtype(label) and not np.all(np.mod(label.to_numpy(dtype=float), 1) == 0):
        raise InputDataError(
            f"label column {label_column!r} holds fractional numbers, but task='classification' needs "
            "class labels: use task='regression' or bin the label"
        )
    if isinstance(label.dtype, pd.CategoricalDtype):
        return label.to_numpy(dtype=object)
    return label.to_numpy()


def _input_columns(
    df: pd.DataFrame, feature_pipeline: Any, label_column: str, given: Sequence[str] | None
) -> list[str]:
    if given is not None:
        columns = [str(c) for c in given]
    elif hasattr(feature_pipeline, "feature_names_in_"):
        columns = [str(c) for c in feature_pipeline.feature_names_in_]
    else:
        columns = [str(c) for c in df.columns if c != label_column]
    if label_column in columns:
        raise InputDataError(
            f"the feature pipeline takes the label column {label_column!r} as an input: refit it on "
            "the feature columns only, or the served model would need the label to predict"
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputDataError(
            f"the training data lacks the feature pipeline's input column(s) {', '.join(map(repr, missing))}"
        )
    if not columns:
        raise InputDataError("the training data has no feature columns besides the label")
    return columns


def _transform(feature_pipeline: Any, raw: pd.DataFrame) -> pd.DataFrame:
    """The feature matrix, checked to be numeric and finite: estimators cannot fit anything else."""
    try:
        transformed = feature_pipeline.transform(raw)
    except Exception as exc:  # any estimator can be the feature pipeline; name the stage that failed
        raise InputDataError(f"the feature pipeline could not transform the training data: {exc}") from exc
    if hasattr(transformed, "toarray"):
        transformed = transformed.toarray()
    frame = transformed if isinstance(transformed, pd.DataFrame) else pd.DataFrame(transformed)
    # Relabelled in place: reset_index(drop=True) copied the whole feature matrix (+0.9 GB at 765k
    # rows, the train task's peak at 1M rows in benchmarks/results/scale.md).
    frame.index = pd.RangeIndex(len(frame))
    frame.columns = [str(c) for c in frame.columns]
    not_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if not_numeric:
        raise InputDataError(
            f"the feature pipeline output non-numeric feature(s) {', '.join(map(repr, not_numeric[:10]))}: "
            "encode them in preprocess"
        )
    bad = [c for c in frame.columns if not np.isfinite(frame[c].to_numpy(dtype=float)).all()]
    if bad:
        raise InputDataError(
            f"the feature pipeline output missing or infinite values in feature(s) "
            f"{', '.join(map(repr, bad[:10]))}: impute them in preprocess"
        )
    return frame


def _array_output(feature_pipeline: Any, raw: pd.DataFrame, features: pd.DataFrame) -> Any | None:
    """A copy of the feature pipeline set to output arrays (scikit-learn's
    ``set_output(transform="default")``), or None when it has no such setting, or the copy warns
    (say, a step fitted on a DataFrame now given an array) or gives other numbers than the
    DataFrame it gave (both checked on the first rows)."""
    import copy
    import warnings

    if not callable(getattr(feature_pipeline, "set_output", None)):
        return None
    try:
        copied = copy.deepcopy(feature_pipeline).set_output(transform="default")
    except (AttributeError, TypeError, ValueError):  # a step without set_output
        return None
    rows = raw.iloc[:_ARRAY_CHECK_ROWS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output = copied.transform(rows)
        except Exception:  # any step that cannot work on arrays: keep the DataFrame pipeline
            return None
    if caught or not isinstance(output, np.ndarray) or output.shape != (len(rows), features.shape[1]):
        return None
    expected = features.iloc[: len(rows)].to_numpy(dtype=float)
    return copied if np.array_equal(output.astype(float), expected) else None


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


def _check_predictions(model: Any, rows: pd.DataFrame, config: TrainConfig) -> None:
    if config.task == CLASSIFICATION:
        output = model.predict_proba(rows)
    else:
        output = np.asarray(model.predict(rows), dtype=float)
    if not np.isfinite(output).all():
        raise InputDataError(
            "the trained pipeline predicts non-finite values on raw training rows: check the feature "
            "pipeline's output for extreme values"
        )
