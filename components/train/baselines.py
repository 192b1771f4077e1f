"""The quality floor: plain baselines scored on the same folds as the search, and fitted for the test.

Two baselines, whatever the configured families:
- ``dummy``: the most frequent class (class priors for probabilities) or the mean: a model that
  learns nothing, so anything below it is broken;
- ``default_gradient_boosting``: scikit-learn's HistGradientBoosting with its default settings, the
  model a user gets in three lines. The suite must never ship a model worse than this one.

Both are cross-validated on the search's rows and folds, so their scores sit beside the candidates';
both are refit on every training row and exported beside the model (``baselines.joblib``), so that
evaluate reports their test metrics and the blessing gate can refuse a model worse than them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.baselines import BASELINES_FILE, DEFAULT_GRADIENT_BOOSTING, DUMMY
from mlstages.components.common.progress import duration, report
from mlstages.components.train.config import CLASSIFICATION, base_estimator
from mlstages.components.train.holdout_fit import fit_on_matrix


@dataclass(frozen=True)
class BaselineScore:
    """A baseline's cross-validated score on the search's folds (higher is better)."""

    name: str
    mean_cv_score: float
    std_cv_score: float
    fit_time_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mean_cv_score": self.mean_cv_score,
            "std_cv_score": self.std_cv_score,
            "fit_time_seconds": self.fit_time_seconds,
        }


def baseline_estimators(task: str, seed: int) -> dict[str, Any]:
    """The unfitted baselines of ``task``, by name."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    dummy = DummyClassifier(strategy="prior") if task == CLASSIFICATION else DummyRegressor(strategy="mean")
    # base_estimator's gradient boosting carries no setting but the seed: scikit-learn's defaults.
    return {DUMMY: dummy, DEFAULT_GRADIENT_BOOSTING: base_estimator(task, "gradient_boosting", seed)}


def score_baselines(
    features: pd.DataFrame, y: np.ndarray, folds: Any, scoring: str, task: str, seed: int, n_jobs: int = 1
) -> list[BaselineScore]:
    """Each baseline's mean and standard deviation of ``scoring`` over ``folds`` (a splitter).

    The default booster's folds on a few hundred thousand rows take minutes (4 min 55 s on 586,615
    rows x 143 features): each baseline reports its fits as the search's families do, and its score."""
    from sklearn.model_selection import cross_validate

    from mlstages.components.train.search import FitCountingScorer

    scores = []
    for name, estimator in baseline_estimators(task, seed).items():
        started = time.monotonic()
        counting = FitCountingScorer(scoring, name, folds.get_n_splits())
        result = cross_validate(
            estimator, features, y, cv=folds, scoring=counting, n_jobs=n_jobs, error_score="raise"
        )
        score = BaselineScore(
            name=name,
            mean_cv_score=float(np.mean(result["test_score"])),
            std_cv_score=float(np.std(result["test_score"])),
            fit_time_seconds=float(np.mean(result["fit_time"])),
        )
        report(
            f"baseline {name} scored in {duration(time.monotonic() - started)}: "
            f"{scoring} {score.mean_cv_score:.4f}"
        )
        scores.append(score)
    return scores


def fit_baselines(
    feature_pipeline: Any, features: Any, y: np.ndarray, task: str, seed: int
) -> dict[str, Any]:
    """Each baseline refit on every training row, wrapped with ``feature_pipeline`` into a Pipeline on
    raw rows like the exported model (``features`` is that pipeline's output on the training rows)."""
    from sklearn.pipeline import Pipeline

    fitted = {}
    for name, estimator in baseline_estimators(task, seed).items():
        fit_on_matrix(estimator, features, y, seed)
        fitted[name] = Pipeline([("features", feature_pipeline), ("model", estimator)])
    return fitted


def save_baselines(
    fitted: Mapping[str, Any], scores: list[BaselineScore], scoring: str, directory: str
) -> dict[str, Any]:
    """Write the fitted baselines to ``<directory>/baselines.joblib``; return the model card's entry
    for them: the file, its sha256, the scorer and each baseline's CV score."""
    from mlstages.components.common.artifacts import dump_joblib

    sha256 = dump_joblib(dict(fitted), directory, BASELINES_FILE)
    return {
        "file": f"{BASELINES_FILE}.joblib",
        "sha256": sha256,
        "scoring": scoring,
        "cv_scores": {s.name: s.to_dict() for s in scores},
    }
