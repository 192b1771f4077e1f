"""The training settings: tasks, model families, search spaces and scoring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from mlstages.components.common.errors import ParameterError, require_choice

CLASSIFICATION = "classification"


REGRESSION = "regression"


TASKS = (CLASSIFICATION, REGRESSION)


SEARCHES = ("halving", "random", "grid")


FAMILIES: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: ("logistic_regression", "random_forest", "gradient_boosting"),
    REGRESSION: ("linear_regression", "random_forest", "gradient_boosting"),
}


# Families a caller may name in model_families but that are not searched by default. LightGBM's
# defaults did not beat HistGradientBoosting's on the quality benchmark (txhousing 0.991, mpg
# 0.836); it is here for its Dask estimator: with engine=dask its winner can be refit on every
# training row on the cluster (full_refit.py), which no other family can.
OPTIONAL_FAMILIES: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: ("lightgbm",),
    REGRESSION: ("lightgbm",),
}


# Every family a task can search: the defaults, then the optional ones.
KNOWN_FAMILIES: dict[str, tuple[str, ...]] = {t: FAMILIES[t] + OPTIONAL_FAMILIES[t] for t in FAMILIES}


# full_refit settings: refit a lightgbm winner on the cluster only when the task holds a sample
# (auto), also when it holds every row (always), or never (off).
FULL_REFITS = ("auto", "always", "off")


DEFAULT_SCORING = {CLASSIFICATION: "f1_macro", REGRESSION: "neg_root_mean_squared_error"}


# LightGBM's counterpart of the gradient_boosting space (num_leaves for max_leaf_nodes,
# min_child_samples for min_samples_leaf), the same for both tasks.
_LIGHTGBM_SPACE: dict[str, list[Any]] = {
    "learning_rate": [0.03, 0.1, 0.2],
    "n_estimators": [100, 300],
    "num_leaves": [15, 31, 63],
    "min_child_samples": [10, 20, 50],
    "reg_lambda": [0.0, 1.0],
}


# Spaces around scikit-learn's defaults, wide enough to matter on tables of any size; halving
# search samples n_iter candidates of each and spends most of its time on the best few.
DEFAULT_SEARCH_SPACES: dict[str, dict[str, dict[str, list[Any]]]] = {
    CLASSIFICATION: {
        "logistic_regression": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]},
        "random_forest": {
            "n_estimators": [100, 300],
            "max_depth": [None, 10, 20],
            "min_samples_leaf": [1, 2, 5],
            "max_features": ["sqrt", 0.5, 1.0],
        },
        "gradient_boosting": {
            "learning_rate": [0.03, 0.1, 0.2],
            "max_iter": [100, 300],
            "max_leaf_nodes": [15, 31, 63],
            "min_samples_leaf": [10, 20, 50],
            "l2_regularization": [0.0, 1.0],
        },
        "lightgbm": _LIGHTGBM_SPACE,
    },
    REGRESSION: {
        "linear_regression": {"alpha": [0.01, 0.1, 1.0, 10.0, 100.0]},
        "random_forest": {
            "n_estimators": [100, 300],
            "max_depth": [None, 10, 20],
            "min_samples_leaf": [1, 2, 5],
            "max_features": [0.33, 0.5, 1.0],
        },
        "gradient_boosting": {
            "learning_rate": [0.03, 0.1, 0.2],
            "max_iter": [100, 300],
            "max_leaf_nodes": [15, 31, 63],
            "min_samples_leaf": [10, 20, 50],
            "l2_regularization": [0.0, 1.0],
        },
        "lightgbm": _LIGHTGBM_SPACE,
    },
}


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
    require_choice("model_families", family, KNOWN_FAMILIES[task])
    if family == "lightgbm":
        return _lightgbm_estimator(task, seed)
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


def _require_lightgbm() -> None:
    import importlib.util

    if importlib.util.find_spec("lightgbm") is None:
        raise ParameterError(
            "parameter model_families names lightgbm, which this environment lacks: pip install "
            "'mlstages[lightgbm]' (the images that fit or load models have it)"
        )


def _lightgbm_estimator(task: str, seed: int) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    from mlstages.components.common.threads import task_threads

    # The task's thread allowance, as limit_threads gives every other pool: LightGBM's own default
    # (every core OpenMP sees) oversubscribes a pod sharing its node. verbose=-1: LightGBM's
    # per-fit info lines would flood the task's log during the search.
    estimator = LGBMClassifier if task == CLASSIFICATION else LGBMRegressor
    return estimator(random_state=seed, n_jobs=task_threads(), verbose=-1)


def family_estimator(
    task: str,
    family: str,
    seed: int,
    category_groups: Sequence[tuple[str, Sequence[int]]] = (),
    n_features: int = 0,
) -> Any:
    """The estimator a family's candidates are: ``base_estimator``; for gradient boosting without
    early stopping (each candidate fits the ``max_iter`` it is given) and, given the one-hot groups
    of the features (``estimators.categories.onehot_groups``), splitting on those categories
    natively."""
    from mlstages.components.common.estimators.categories import with_native_categories

    estimator = base_estimator(task, family, seed)
    if family != "gradient_boosting":
        return estimator
    # The search chooses max_iter by cross-validation; with scikit-learn's early stopping (on above
    # 10,000 rows) a candidate would stop where its held-out tenth's loss stops falling, whatever
    # max_iter it was given. On a rare class that is far too soon: diamonds' 1.4% worst clarity,
    # test f1_macro 0.88 with early stopping (85 trees) against 0.905 for 300 trees without. The
    # default booster, early stopping included, stays a candidate (train._candidates_table).
    estimator.set_params(early_stopping=False)
    if category_groups:
        return with_native_categories(estimator, category_groups, n_features)
    return estimator


def routed_params(estimator: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` named as a family's search space names them, as ``estimator`` (perhaps a
    ``with_native_categories`` Pipeline) takes them."""
    from mlstages.components.common.estimators.categories import MODEL_STEP

    if hasattr(estimator, "named_steps") and MODEL_STEP in estimator.named_steps:
        return {f"{MODEL_STEP}__{name}": value for name, value in params.items()}
    return dict(params)


def unrouted_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``routed_params`` undone: the names a family's search space uses."""
    from mlstages.components.common.estimators.categories import MODEL_STEP

    return {name.removeprefix(f"{MODEL_STEP}__"): value for name, value in params.items()}


@dataclass(frozen=True)
class TrainConfig:
    """How to search for and fit the model.

    label_column: the column to predict.
    task: classification or regression.
    model_families: families to search, in order of preference (ties go to the earlier one);
        empty means every family of the task. Classification: logistic_regression, random_forest,
        gradient_boosting; regression: linear_regression (Ridge), random_forest, gradient_boosting.
        gradient_boosting is scikit-learn's histogram-based booster, which scales to millions of rows;
        its candidates split each one-hot encoded column's categories natively and fit the max_iter
        trees they are given, without early stopping (``family_estimator``).
    search: halving (successive halving over n_iter seeded candidates per family: all of them on a
        few rows, the best on more, the last on all), random (n_iter seeded candidates per family,
        each on every row) or grid (every candidate of the space on every row).
    n_iter: candidates per family for halving and random search.
    time_budget_seconds: 0 for no limit; otherwise no family's search starts after this many seconds
        (a started one finishes), and the report names the families skipped. The baselines and the
        first family always run. A budget makes the choice depend on the machine's speed.
    cv_folds: cross-validation folds, at least 2; stratified and shuffled for classification.
    scoring: a scikit-learn scorer name; empty means f1_macro for classification and
        neg_root_mean_squared_error for regression. Higher is better, as for every sklearn scorer.
    search_space: family -> {parameter: list of values}, replacing that family's default space;
        spaces of families not in model_families are checked but not searched.
    seed: seeds the estimators, the folds, the random search and the search sample.
    max_search_rows: 0 searches on all rows; otherwise the search runs on a seeded (stratified, for
        classification) sample of this many rows and the best candidate is refit on all rows.
    n_jobs: parallel fits during the search.
    engine: local, dask or a Dask scheduler's tcp:// address (common/engine.py). With a Dask
        engine a lightgbm winner can be refit on every training row on the cluster (full_refit).
    full_refit: auto refits a lightgbm winner on every training row on the Dask engine when the
        task holds only a sample of them (max_train_rows or the memory allowance); always does so
        also when the task holds every row; off never does. Other families are refit in the task.
    """

    label_column: str
    task: str
    model_families: tuple[str, ...] = ()
    search: str = "halving"
    n_iter: int = 10
    time_budget_seconds: float = 0.0
    cv_folds: int = 5
    scoring: str = ""
    search_space: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)
    seed: int = 42
    max_search_rows: int = 0
    max_train_rows: int = 0
    n_jobs: int = 1
    engine: str = "local"
    full_refit: str = "auto"

    def __post_init__(self) -> None:
        if not str(self.label_column).strip():
            raise ParameterError("parameter label_column is empty: name the column to predict")
        require_choice("task", self.task, TASKS)
        require_choice("search", self.search, SEARCHES)
        families = tuple(self.model_families) or FAMILIES[self.task]
        for family in families:
            if family not in KNOWN_FAMILIES[self.task]:
                raise ParameterError(
                    f"parameter model_families: unknown family {family!r} for task {self.task!r}; "
                    f"valid: {', '.join(KNOWN_FAMILIES[self.task])}"
                )
        if "lightgbm" in families:
            _require_lightgbm()
        if len(set(families)) != len(families):
            raise ParameterError(f"parameter model_families lists a family twice: {list(families)}")
        object.__setattr__(self, "model_families", families)
        for name in ("n_iter", "cv_folds", "max_search_rows", "max_train_rows", "n_jobs", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ParameterError(f"parameter {name}={value!r} must be an integer")
        if self.cv_folds < 2:
            raise ParameterError(
                f"parameter cv_folds={self.cv_folds} must be at least 2 (cross-validation needs a "
                "held-out fold)"
            )
        budget = self.time_budget_seconds
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0:
            raise ParameterError(
                f"parameter time_budget_seconds={budget!r} must be 0 (no limit) or a positive number of seconds"
            )
        if self.n_iter < 1:
            raise ParameterError(f"parameter n_iter={self.n_iter} must be at least 1")
        if self.max_search_rows < 0:
            raise ParameterError(
                f"parameter max_search_rows={self.max_search_rows} must be 0 (all rows) or positive"
            )
        if self.max_train_rows < 0:
            raise ParameterError(
                f"parameter max_train_rows={self.max_train_rows} must be 0 (as many as the task's memory "
                "allows) or positive"
            )
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ParameterError(f"parameter n_jobs={self.n_jobs} must be -1 (all cores) or positive")
        _check_full_refit(self)
        object.__setattr__(self, "scoring", _check_scoring(self.scoring, self.task))
        object.__setattr__(self, "search_space", _check_search_space(self))

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> TrainConfig:
        """The config from a component's parameters (its ``locals()``): the fields among them,
        model_families (a KFP list) as a tuple. train, search_family and plan_trials take the same
        settings under the same names, so they build their config one way."""
        given = {f.name: parameters[f.name] for f in fields(cls) if f.name in parameters}
        if "model_families" in given:
            given["model_families"] = tuple(given["model_families"])
        return cls(**given)

    def space(self, family: str) -> dict[str, list[Any]]:
        """The search space used for ``family``: the caller's, or the default one."""
        if family in self.search_space:
            return {p: list(v) for p, v in self.search_space[family].items()}
        return {p: list(v) for p, v in DEFAULT_SEARCH_SPACES[self.task][family].items()}


def _check_full_refit(config: TrainConfig) -> None:
    """The engine and full_refit together: an always that could never happen fails at once."""
    from mlstages.components.common.engine import LOCAL, check_engine

    check_engine(config.engine)
    require_choice("full_refit", config.full_refit, FULL_REFITS)
    if config.full_refit != "always":
        return
    if config.engine == LOCAL:
        raise ParameterError(
            "parameter full_refit='always' refits on a Dask cluster, but engine='local': set engine='dask' "
            "(or a scheduler's tcp:// address), or full_refit='auto'"
        )
    if "lightgbm" not in config.model_families:
        raise ParameterError(
            "parameter full_refit='always' refits a lightgbm winner on the cluster, but model_families "
            f"{list(config.model_families)} has no lightgbm: add it, or set full_refit='auto'"
        )


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
        if family not in KNOWN_FAMILIES[config.task]:
            raise ParameterError(
                f"parameter search_space: unknown family {family!r} for task {config.task!r}; "
                f"valid: {', '.join(KNOWN_FAMILIES[config.task])}"
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
    # LightGBM's estimators inherit the validator but declare no constraints: LightGBM checks its
    # values when it fits.
    if validate is None or not hasattr(candidate, "_parameter_constraints"):
        return None
    try:
        validate()
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None
