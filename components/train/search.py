"""The hyperparameter search: each family's candidates cross-validated on the same folds, within a
time budget.

``halving`` (the default) is scikit-learn's successive halving (``HalvingRandomSearchCV``): every
candidate is first scored on a third of a third of the rows, the best third go on to three times as
many rows, and so on until the last few are scored on all of them; so a search of 20 candidates
costs about as much as eight full cross-validations, and the time goes to the promising ones. On
tables too small for a first round of ``MIN_ROWS_PER_ROUND`` rows it scores every candidate on
every row, like ``random``.

The time budget is checked before each family but the first: a family that would start after it is
skipped and the report says so. Families are searched cheapest first (linear, then gradient boosting, then
random forests), so a budget cuts the slowest ones; ties in score still go to the family listed
first in ``model_families``.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import ParameterError
from mlstages.components.common.progress import Throttle, duration, report
from mlstages.components.train.config import (
    CLASSIFICATION,
    TrainConfig,
    family_estimator,
    routed_params,
    unrouted_params,
)

# Halving needs enough rows in its first round for every fold to hold a fair sample of the
# classes; below this the table is small enough to score every candidate on every row.
MIN_ROWS_PER_ROUND = 100


# Rows grow, and candidates shrink, by this factor from one round to the next (scikit-learn's default).
HALVING_FACTOR = 3


# Cheapest first, so that a time budget cuts the slowest families.
_SEARCH_COST = {
    "logistic_regression": 0,
    "linear_regression": 0,
    "gradient_boosting": 1,
    "lightgbm": 1,
    "random_forest": 2,
}


@dataclass(frozen=True)
class FamilyOutcome:
    """One family's search: its candidates' table, its best candidate, or why it was skipped."""

    family: str
    table: pd.DataFrame | None
    best_score: float | None
    best_params: dict[str, Any]
    seconds: float
    skipped: str = ""


def cv_folds(config: TrainConfig) -> Any:
    """The folds every candidate and baseline is scored on: stratified for classification, shuffled."""
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter_type = StratifiedKFold if config.task == CLASSIFICATION else KFold
    return splitter_type(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)


def search_families(
    features: pd.DataFrame,
    y: np.ndarray,
    config: TrainConfig,
    started: float | None = None,
    category_groups: Sequence[tuple[str, Sequence[int]]] = (),
) -> list[FamilyOutcome]:
    """Search every configured family (cheapest first) until the time budget is spent; the outcomes
    come back in ``model_families`` order. ``started`` is when the budget began (default: now);
    ``category_groups`` are the features' one-hot groups, which gradient boosting splits natively."""
    started = time.monotonic() if started is None else started
    outcomes: dict[str, FamilyOutcome] = {}
    for position, family in enumerate(search_order(config)):
        skipped = budget_skipped(position, config, time.monotonic() - started)
        if skipped:
            report(f"{family} not searched: {skipped}")
            outcomes[family] = FamilyOutcome(family, None, None, {}, 0.0, skipped=skipped)
            continue
        outcomes[family] = search_family(family, features, y, config, category_groups)
    return [outcomes[f] for f in config.model_families]


def search_order(config: TrainConfig) -> list[str]:
    """The configured families in the order they are searched: cheapest first."""
    return sorted(config.model_families, key=lambda f: _SEARCH_COST.get(f, len(_SEARCH_COST)))


def budget_skipped(position: int, config: TrainConfig, spent: float) -> str:
    """Why the family at ``position`` of ``search_order`` is not searched when ``spent`` seconds
    of the time budget are gone, or "" when it is."""
    # The first family always runs, so that a budget spent on the baselines still searches.
    if position and config.time_budget_seconds and spent >= config.time_budget_seconds:
        return f"time budget of {config.time_budget_seconds:g} s spent after {spent:.0f} s"
    return ""


def search_family(
    family: str,
    features: pd.DataFrame,
    y: np.ndarray,
    config: TrainConfig,
    category_groups: Sequence[tuple[str, Sequence[int]]] = (),
) -> FamilyOutcome:
    """One family's candidates cross-validated on ``config``'s folds: what ``search_families``
    does for each family, and a trial branch (``trials.py``) for its one."""
    from sklearn.exceptions import FitFailedWarning

    began = time.monotonic()
    estimator = family_estimator(config.task, family, config.seed, category_groups, features.shape[1])
    search = _search_cv(estimator, family, config, len(y))
    report(f"searching {family}: {_plan(search, config, features.shape)}")
    with warnings.catch_warnings():
        # A halving round on a third of a third of the rows can miss a rare class in a fold, so a
        # scorer that needs every class fails there; that candidate scores NaN and is dropped.
        warnings.simplefilter("ignore", FitFailedWarning)
        warnings.filterwarnings("ignore", message="One or more of the test scores are non-finite")
        try:
            search.fit(features, y)
        except ValueError as exc:
            raise ParameterError(
                f"the cross-validated search of model family {family!r} failed with "
                f"scoring={config.scoring!r}: {exc}; check scoring and search_space[{family!r}]"
            ) from exc
    table = family_table(family, search.cv_results_, len(y))
    best_score = float(search.best_score_)
    if not np.isfinite(best_score):
        raise ParameterError(
            f"every candidate of model family {family!r} failed to score with scoring={config.scoring!r} "
            f"on {config.cv_folds} folds; check scoring and search_space[{family!r}], or lower cv_folds"
        )
    seconds = time.monotonic() - began
    report(
        f"{family} searched in {duration(seconds)}: {search.scoring.fits} fits, best "
        f"{config.scoring} {best_score:.4f}"
    )
    return FamilyOutcome(family, table, best_score, unrouted_params(search.best_params_), seconds)


def halving_rounds(rows: int, candidates: int) -> int:
    """How many rounds successive halving runs on ``rows`` for ``candidates`` (1: no halving): as
    many as the candidates need, while the first round keeps MIN_ROWS_PER_ROUND rows."""
    needed = 1
    while HALVING_FACTOR**needed <= candidates:
        needed += 1
    possible = 1
    while rows // HALVING_FACTOR**possible >= MIN_ROWS_PER_ROUND:
        possible += 1
    return min(needed, possible)


def _search_cv(estimator: Any, family: str, config: TrainConfig, rows: int) -> Any:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401 (registers the class)
    from sklearn.model_selection import GridSearchCV, HalvingRandomSearchCV, RandomizedSearchCV

    space = routed_params(estimator, config.space(family))
    common = {
        "scoring": FitCountingScorer(config.scoring, family, config.cv_folds),
        "cv": cv_folds(config),
        "refit": False,  # only the winner is refit, on every training row
        "n_jobs": config.n_jobs,
    }
    if config.search == "grid":
        return GridSearchCV(estimator, space, error_score="raise", **common)
    # Asking for more candidates than the grid has would make scikit-learn warn and search it all.
    candidates = min(config.n_iter, grid_size(space))
    rounds = halving_rounds(rows, candidates) if config.search == "halving" else 1
    if rounds == 1:
        return RandomizedSearchCV(
            estimator, space, n_iter=candidates, random_state=config.seed, error_score="raise", **common
        )
    return HalvingRandomSearchCV(
        estimator,
        space,
        n_candidates=candidates,
        factor=HALVING_FACTOR,
        resource="n_samples",
        min_resources=rows // HALVING_FACTOR ** (rounds - 1),
        # Too few rounds for the candidates to dwindle to one: drop more of them in the first rounds.
        aggressive_elimination=True,
        # scikit-learn's halving also scores every candidate on its own training folds by default:
        # predictions on cv_folds - 1 times the rows it is scored on, which nothing here reads.
        return_train_score=False,
        random_state=config.seed,
        error_score=np.nan,
        **common,
    )


class FitCountingScorer:
    """The search's scorer (``scoring``, scikit-learn's name of one), which also counts the fits it
    scores (one call per fit and fold) and reports the count at most once a minute, so that a
    search of an hour shows it is moving. The count is of this process: with n_jobs > 1 the fits
    run in worker processes, which report nothing."""

    def __init__(self, scoring: str, family: str, folds: int, every_seconds: float = 60.0) -> None:
        from sklearn.metrics import get_scorer

        self.family = family
        self.folds = folds
        self.fits = 0
        self._scorer = get_scorer(scoring)
        self._started = time.monotonic()
        self._throttle = Throttle(every_seconds)

    def __call__(self, estimator: Any, X: Any, y: Any, **kwargs: Any) -> float:
        score = self._scorer(estimator, X, y, **kwargs)
        self.fits += 1
        if self._throttle.due():
            report(
                f"{self.family}: {self.fits} fits scored in "
                f"{duration(time.monotonic() - self._started)}, now on about {len(y) * self.folds:,} rows"
            )
        return score


def _plan(search: Any, config: TrainConfig, shape: tuple[int, int]) -> str:
    """What a family's search will do, in words, for the progress line before it starts."""
    rows, features = shape
    folds = config.cv_folds
    if hasattr(search, "n_candidates"):
        first = search.min_resources
        return (
            f"{search.n_candidates} candidates by successive halving, from {first:,} rows to {rows:,} "
            f"rows x {features} features, {folds} folds"
        )
    candidates = grid_size(search.param_grid) if hasattr(search, "param_grid") else search.n_iter
    return f"{candidates} candidates x {folds} folds = {candidates * folds} fits on {rows:,} rows x {features} features"


def grid_size(space: Mapping[str, list[Any]]) -> int:
    return int(np.prod([len(v) for v in space.values()]))


def family_table(family: str, cv_results: Mapping[str, Any], rows: int) -> pd.DataFrame:
    """One row per candidate: its score on the most rows it reached (halving scores a candidate in
    every round it survives), and whether it reached the last round (final): only those compete
    for the choice, the others were dropped on fewer rows."""
    candidates = len(cv_results["params"])
    rounds = np.asarray(cv_results.get("iter", [0] * candidates))
    table = pd.DataFrame(
        {
            "family": family,
            "params": [
                json.dumps({k: native(v) for k, v in unrouted_params(p).items()}, sort_keys=True)
                for p in cv_results["params"]
            ],
            "mean_cv_score": np.asarray(cv_results["mean_test_score"], dtype=float),
            "std_cv_score": np.asarray(cv_results["std_test_score"], dtype=float),
            "fit_time_seconds": np.asarray(cv_results["mean_fit_time"], dtype=float),
            "rows_scored": np.asarray(cv_results.get("n_resources", [rows] * candidates), dtype=int),
            "final": rounds == rounds.max(),
        }
    )
    return table.drop_duplicates("params", keep="last").reset_index(drop=True)


def native(value: Any) -> Any:
    """A JSON-friendly Python value for a numpy scalar."""
    return value.item() if isinstance(value, np.generic) else value
