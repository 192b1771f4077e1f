"""Training: cross-validated model search over a few model families, and the exported model.

The feature pipeline arrives fitted (preprocess + engineer_features fit it on the training split), so
the training rows are transformed once and every candidate is scored on that matrix. The winner is
refit on all training rows and wrapped with the feature pipeline into ONE scikit-learn ``Pipeline``
that takes raw rows: the object KServe's sklearn runtime serves.
"""

from __future__ import annotations

import json
import os
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
SEARCHES = ("grid", "random")

FAMILIES: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: ("logistic_regression", "random_forest", "gradient_boosting"),
    REGRESSION: ("linear_regression", "random_forest", "gradient_boosting"),
}
DEFAULT_SCORING = {CLASSIFICATION: "f1_macro", REGRESSION: "neg_root_mean_squared_error"}

# A few candidates per family: enough to matter, few enough that five-fold search stays cheap.
DEFAULT_SEARCH_SPACES: dict[str, dict[str, dict[str, list[Any]]]] = {
    CLASSIFICATION: {
        "logistic_regression": {"C": [0.1, 1.0, 10.0]},
        "random_forest": {"n_estimators": [100, 200], "max_depth": [None, 10]},
        "gradient_boosting": {"learning_rate": [0.05, 0.1], "max_iter": [200], "max_leaf_nodes": [15, 31]},
    },
    REGRESSION: {
        "linear_regression": {"alpha": [0.1, 1.0, 10.0]},
        "random_forest": {"n_estimators": [100, 200], "max_depth": [None, 10]},
        "gradient_boosting": {"learning_rate": [0.05, 0.1], "max_iter": [200], "max_leaf_nodes": [15, 31]},
    },
}

# The final pipeline's predictions are checked on at most this many training rows: enough to catch
# a broken model, cheap on a million rows.
_PREDICTION_CHECK_ROWS = 10_000
# Rows on which the feature pipeline's array output is compared with its DataFrame output.
_ARRAY_CHECK_ROWS = 100


def base_estimator(task: str, family: str, seed: int) -> Any:
    """An unfitted estimator of ``family`` for ``task``, seeded, with the suite's fixed settings."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    require_choice("task", task, TASKS)
    require_choice("model_families", family, FAMILIES[task])
    if task == CLASSIFICATION:
        if family == "logistic_regression":
            return LogisticRegression(max_iter=1000, random_state=seed)
        if family == "random_forest":
            return RandomForestClassifier(random_state=seed)
        return HistGradientBoostingClassifier(random_state=seed)
    if family == "linear_regression":
        return Ridge(random_state=seed)
    if family == "random_forest":
        return RandomForestRegressor(random_state=seed)
    return HistGradientBoostingRegressor(random_state=seed)


@dataclass(frozen=True)
class TrainConfig:
    """How to search for and fit the model.

    label_column: the column to predict.
    task: classification or regression.
    model_families: families to search, in order of preference (ties go to the earlier one);
        empty means every family of the task. Classification: logistic_regression, random_forest,
        gradient_boosting; regression: linear_regression (Ridge), random_forest, gradient_boosting.
        gradient_boosting is scikit-learn's histogram-based booster, which scales to millions of rows.
    search: grid (every candidate) or random (n_iter candidates per family, seeded).
    n_iter: candidates per family for random search.
    cv_folds: cross-validation folds, at least 2; stratified and shuffled for classification.
    scoring: a scikit-learn scorer name; empty means f1_macro for classification and
        neg_root_mean_squared_error for regression. Higher is better, as for every sklearn scorer.
    search_space: family -> {parameter: list of values}, replacing that family's default space;
        spaces of families not in model_families are checked but not searched.
    seed: seeds the estimators, the folds, the random search and the search sample.
    max_search_rows: 0 searches on all rows; otherwise the search runs on a seeded (stratified, for
        classification) sample of this many rows and the best candidate is refit on all rows.
    n_jobs: parallel fits during the search.
    """

    label_column: str
    task: str
    model_families: tuple[str, ...] = ()
    search: str = "grid"
    n_iter: int = 10
    cv_folds: int = 5
    scoring: str = ""
    search_space: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)
    seed: int = 42
    max_search_rows: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if not str(self.label_column).strip():
            raise ParameterError("parameter label_column is empty: name the column to predict")
        require_choice("task", self.task, TASKS)
        require_choice("search", self.search, SEARCHES)
        families = tuple(self.model_families) or FAMILIES[self.task]
        for family in families:
            if family not in FAMILIES[self.task]:
                raise ParameterError(
                    f"parameter model_families: unknown family {family!r} for task {self.task!r}; "
                    f"valid: {', '.join(FAMILIES[self.task])}"
                )
        if len(set(families)) != len(families):
            raise ParameterError(f"parameter model_families lists a family twice: {list(families)}")
        object.__setattr__(self, "model_families", families)
        for name in ("n_iter", "cv_folds", "max_search_rows", "n_jobs", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ParameterError(f"parameter {name}={value!r} must be an integer")
        if self.cv_folds < 2:
            raise ParameterError(
                f"parameter cv_folds={self.cv_folds} must be at least 2 (cross-validation needs a "
                "held-out fold)"
            )
        if self.n_iter < 1:
            raise ParameterError(f"parameter n_iter={self.n_iter} must be at least 1")
        if self.max_search_rows < 0:
            raise ParameterError(
                f"parameter max_search_rows={self.max_search_rows} must be 0 (all rows) or positive"
            )
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ParameterError(f"parameter n_jobs={self.n_jobs} must be -1 (all cores) or positive")
        object.__setattr__(self, "scoring", _check_scoring(self.scoring, self.task))
        object.__setattr__(self, "search_space", _check_search_space(self))

    def space(self, family: str) -> dict[str, list[Any]]:
        """The search space used for ``family``: the caller's, or the default one."""
        if family in self.search_space:
            return {p: list(v) for p, v in self.search_space[family].items()}
        return {p: list(v) for p, v in DEFAULT_SEARCH_SPACES[self.task][family].items()}


def _check_scoring(scoring: str, task: str) -> str:
    from sklearn.metrics import get_scorer, get_scorer_names

    scoring = scoring or DEFAULT_SCORING[task]
    names = get_scorer_names()
    if scoring not in names:
        raise ParameterError(
            f"parameter scoring={scoring!r} is not a scikit-learn scorer; for {task} use for example "
            f"{DEFAULT_SCORING[task]!r}; all names: {', '.join(sorted(names))}"
        )
    # The scorer's metric function tells which kind of task it measures.
    module = getattr(getattr(get_scorer(scoring), "_score_func", None), "__module__", "") or ""
    wrong = (
        (task == CLASSIFICATION and module.endswith("_regression"))
        or (task == REGRESSION and module.endswith(("_classification", "_ranking")))
        or ".cluster" in module
    )
    if wrong:
        raise ParameterError(
            f"parameter scoring={scoring!r} does not measure {task}; use a {task} scorer such as "
            f"{DEFAULT_SCORING[task]!r}"
        )
    return scoring


def _check_search_space(config: TrainConfig) -> dict[str, dict[str, list[Any]]]:
    if not isinstance(config.search_space, Mapping):
        raise ParameterError(
            "parameter search_space must map a model family to {parameter: [values]}, "
            f"got {type(config.search_space).__name__}"
        )
    checked: dict[str, dict[str, list[Any]]] = {}
    for family, space in config.search_space.items():
        if family not in FAMILIES[config.task]:
            raise ParameterError(
                f"parameter search_space: unknown family {family!r} for task {config.task!r}; "
                f"valid: {', '.join(FAMILIES[config.task])}"
            )
        if not isinstance(space, Mapping) or not space:
            raise ParameterError(
                f"parameter search_space[{family!r}] must be a non-empty {{parameter: [values]}} mapping"
            )
        estimator = base_estimator(config.task, family, config.seed)
        valid = estimator.get_params(deep=False)
        checked[family] = {}
        for param, values in space.items():
            if param not in valid:
                raise ParameterError(
                    f"parameter search_space[{family!r}]: {type(estimator).__name__} has no parameter "
                    f"{param!r}; it has: {', '.join(sorted(valid))}"
                )
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ParameterError(
                    f"parameter search_space[{family!r}][{param!r}] must be a non-empty list of values, "
                    f"got {values!r}"
                )
            checked[family][param] = [
                _check_param_value(estimator, family, param, value, valid[param]) for value in values
            ]
    return checked


def _check_param_value(estimator: Any, family: str, param: str, value: Any, default: Any) -> Any:
    """``value`` as the estimator takes it, or a ParameterError saying why it cannot.

    KFP passes dict and list parameters as JSON through a protobuf Struct, where every number is a
    float: 200 arrives as 200.0. A whole float becomes an int when the parameter's default is an int
    or when only the int is valid (max_depth=10.0). A float the estimator accepts otherwise stays a
    float (max_features=1.0 means every feature).
    """
    if isinstance(value, float) and value.is_integer():
        int_default = isinstance(default, int) and not isinstance(default, bool)
        if (int_default or _param_error(estimator, param, value) is not None) and _param_error(
            estimator, param, int(value)
        ) is None:
            value = int(value)
    error = _param_error(estimator, param, value)
    if error is not None:
        raise ParameterError(f"parameter search_space[{family!r}][{param!r}]: value {value!r}: {error}")
    return value


def _param_error(estimator: Any, param: str, value: Any) -> str | None:
    """Why ``estimator`` would reject ``param=value``, or None if it takes it."""
    from sklearn.base import clone

    candidate = clone(estimator).set_params(**{param: value})
    # scikit-learn checks parameter values when fitting; its validator lets us fail before any fit.
    validate = getattr(candidate, "_validate_params", None)
    if validate is None:
        return None
    try:
        validate()
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class TrainResult:
    """The trained model and how it was chosen.

    model: Pipeline([("features", feature pipeline), ("model", fitted estimator)]) on raw rows. When
        the feature pipeline can output arrays (scikit-learn's set_output), as engineer_features'
        does, the model holds a copy of it set to do so, and the estimator is fitted on that
        array rather than on the DataFrame: the same numbers, without the estimator's
        column-by-column DataFrame checks on every call.
    search_results: one row per candidate: family, params (JSON), mean_cv_score, std_cv_score,
        rank (1 = the chosen one; over all families), fit_time_seconds (mean per fold).
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


def train(
    train_df: pd.DataFrame,
    feature_pipeline: Any,
    config: TrainConfig,
    *,
    input_columns: Sequence[str] | None = None,
) -> TrainResult:
    """Search every configured family with cross-validation and return the best one, refit.

    ``feature_pipeline`` is already fitted on ``train_df`` and is not refit. ``input_columns`` are
    the raw columns the served model takes, in order; by default the columns the feature pipeline
    was fitted on (``feature_names_in_``), else every column but the label.
    """
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    if len(train_df) == 0:
        raise InputDataError("the training data has no rows")
    y = _check_label(train_df, config.label_column, config.task)
    columns = _input_columns(train_df, feature_pipeline, config.label_column, input_columns)
    raw = train_df[columns]
    features = _transform(feature_pipeline, raw)
    search_index = _search_sample(y, config)
    _check_folds(y[search_index], config, sampled=len(search_index) < len(y))

    tables = []
    best: tuple[float, str, dict[str, Any]] | None = None
    for family in config.model_families:
        search = _search_cv(family, config)
        try:
            search.fit(features.iloc[search_index], y[search_index])
        except ValueError as exc:
            raise ParameterError(
                f"the cross-validated search of model family {family!r} failed with "
                f"scoring={config.scoring!r}: {exc}; check scoring and search_space[{family!r}]"
            ) from exc
        tables.append(_family_table(family, search.cv_results_))
        score = float(search.best_score_)
        if best is None or score > best[0]:
            best = (score, family, dict(search.best_params_))
    assert best is not None  # model_families is never empty after TrainConfig's checks
    best_score, best_family, best_params = best

    estimator = clone(base_estimator(config.task, best_family, config.seed)).set_params(**best_params)
    array_features = _array_output(feature_pipeline, raw, features)
    if array_features is None:
        estimator.fit(features, y)
        model = Pipeline([("features", feature_pipeline), ("model", estimator)])
    else:
        # The estimator takes the features as an array: checking a DataFrame column by column
        # costs it ~0.6 ms per call for 16 columns, ~1 ms for 110 (measured), more than the whole
        # feature pipeline takes for one row.
        estimator.fit(features.to_numpy(), y)
        model = Pipeline([("features", array_features), ("model", estimator)])
    _check_predictions(model, raw, config)
    classes = [_native(c) for c in estimator.classes_] if config.task == CLASSIFICATION else None
    return TrainResult(
        model=model,
        task=config.task,
        label_column=config.label_column,
        best_family=best_family,
        best_params={k: _native(v) for k, v in best_params.items()},
        best_score=best_score,
        scoring=config.scoring,
        cv_folds=config.cv_folds,
        search=config.search,
        classes=classes,
        search_results=_rank(pd.concat(tables, ignore_index=True)),
        train_rows=len(train_df),
        search_rows=len(search_index),
        input_columns=list(columns),
        feature_names=[str(c) for c in features.columns],
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
    frame = frame.reset_index(drop=True)
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
        listed = ", ".join(f"{_native(k)!r} ({n} rows)" for k, n in rare.items())
        raise InputDataError(
            f"class(es) {listed} of label column {config.label_column!r} have fewer rows in {where} than "
            f"cv_folds={config.cv_folds}, so stratified folds cannot all hold them: {fix}, or drop or "
            "merge those classes"
        )


def _search_cv(family: str, config: TrainConfig) -> Any:
    from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold

    estimator = base_estimator(config.task, family, config.seed)
    space = config.space(family)
    splitter_type = StratifiedKFold if config.task == CLASSIFICATION else KFold
    folds = splitter_type(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)
    common = {
        "scoring": config.scoring,
        "cv": folds,
        "refit": False,  # only the winning family is refit, on every training row
        "n_jobs": config.n_jobs,
        "error_score": "raise",
    }
    if config.search == "grid":
        return GridSearchCV(estimator, space, **common)
    grid_size = int(np.prod([len(v) for v in space.values()]))
    # Asking for more candidates than the grid has would make scikit-learn warn and search it all.
    return RandomizedSearchCV(
        estimator, space, n_iter=min(config.n_iter, grid_size), random_state=config.seed, **common
    )


def _family_table(family: str, cv_results: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "family": family,
            "params": [
                json.dumps({k: _native(v) for k, v in p.items()}, sort_keys=True)
                for p in cv_results["params"]
            ],
            "mean_cv_score": np.asarray(cv_results["mean_test_score"], dtype=float),
            "std_cv_score": np.asarray(cv_results["std_test_score"], dtype=float),
            "fit_time_seconds": np.asarray(cv_results["mean_fit_time"], dtype=float),
        }
    )


def _rank(table: pd.DataFrame) -> pd.DataFrame:
    # "first" breaks ties by list order (families in preference order, then candidates), the same
    # rule that picks the winner, so rank 1 is always the chosen candidate.
    ranked = table.copy()
    ranked.insert(4, "rank", ranked["mean_cv_score"].rank(ascending=False, method="first").astype(int))
    return ranked


def _check_predictions(model: Any, raw: pd.DataFrame, config: TrainConfig) -> None:
    rows = raw
    if len(raw) > _PREDICTION_CHECK_ROWS:
        rows = raw.sample(n=_PREDICTION_CHECK_ROWS, random_state=config.seed)
    if config.task == CLASSIFICATION:
        output = model.predict_proba(rows)
    else:
        output = np.asarray(model.predict(rows), dtype=float)
    if not np.isfinite(output).all():
        raise InputDataError(
            "the trained pipeline predicts non-finite values on raw training rows: check the feature "
            "pipeline's output for extreme values"
        )


def _native(value: Any) -> Any:
    """A JSON-friendly Python value for a numpy scalar."""
    return value.item() if isinstance(value, np.generic) else value


# --- export ------------------------------------------------------------------------------------


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


# --- reports -----------------------------------------------------------------------------------


def _explanation(result: TrainResult) -> str:
    candidates = len(result.search_results)
    families = result.search_results["family"].nunique()
    text = (
        f"{result.best_family} with {json.dumps(result.best_params, sort_keys=True)} has the best mean "
        f"{result.cv_folds}-fold cross-validated {result.scoring} ({result.best_score:.4g}) of "
        f"{candidates} candidate(s) in {families} model famil{'y' if families == 1 else 'ies'} "
        f"({result.search} search); it was refit on all {result.train_rows:,} training rows."
    )
    if result.search_rows < result.train_rows:
        text += (
            f" The search ran on a seeded{' stratified' if result.task == CLASSIFICATION else ''} "
            f"sample of {result.search_rows:,} rows (max_search_rows)."
        )
    return text


def _table_rows(result: TrainResult) -> list[dict[str, Any]]:
    rows = result.search_results.sort_values("rank", kind="stable").to_dict("records")
    for row in rows:
        row["chosen"] = "best" if row["rank"] == 1 else ""
    return rows


_TABLE_COLUMNS = ["rank", "chosen", "family", "params", "mean_cv_score", "std_cv_score", "fit_time_seconds"]


def render_html(result: TrainResult) -> str:
    """The search report: the chosen model and why, and every candidate sorted by rank."""
    from mlstages.components.common.reports import html_page, html_paragraph, html_table

    table = html_table(_table_rows(result), _TABLE_COLUMNS)
    # Rows are sorted by rank, so the first body row is the chosen candidate.
    table = table.replace("<tbody><tr>", '<tbody><tr class="ok" style="font-weight:600">', 1)
    chosen = [
        {"setting": "task", "value": result.task},
        {"setting": "label column", "value": result.label_column},
        {"setting": "family", "value": result.best_family},
        {"setting": "parameters", "value": json.dumps(result.best_params, sort_keys=True)},
        {"setting": f"mean CV {result.scoring}", "value": result.best_score},
        {"setting": "training rows", "value": result.train_rows},
        {"setting": "search rows", "value": result.search_rows},
    ]
    if result.classes is not None:
        chosen.append({"setting": "classes", "value": ", ".join(map(str, result.classes))})
    return html_page(
        "Training: model search",
        [
            ("Chosen model", html_paragraph(_explanation(result)) + html_table(chosen, ["setting", "value"])),
            (
                f"Search results ({result.scoring}, higher is better)",
                table,
            ),
        ],
    )


def render_markdown(result: TrainResult) -> str:
    """The run summary: the chosen model, why, and the best candidate of each family."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    per_family = (
        result.search_results.sort_values("rank", kind="stable").groupby("family", sort=False).head(1)
    )
    lines = [
        "# Train",
        "",
        markdown_text(_explanation(result)),
        "",
        f"Best candidate of each family ({markdown_text(result.scoring)}, higher is better):",
        "",
        markdown_table(
            per_family.to_dict("records"), ["rank", "family", "params", "mean_cv_score", "std_cv_score"]
        ),
        "",
    ]
    return "\n".join(lines)
