"""The search across pods (plan_trials, one search_family branch per family, train choosing from
their outcomes) gives the in-pod search's winner and scores, on the built-in data and on
scikit-learn's bundled tables."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from feature_helpers import fit_features
from palmerpenguins import load_penguins
from sklearn.datasets import load_breast_cancer, load_diabetes
from threadpoolctl import threadpool_limits

from mlstages.components.common.errors import InputDataError
from mlstages.components.plan_trials.plan_trials import plan_trials
from mlstages.components.search_family.search_family import outcome_markdown, run_trial
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.train import prepare_search, train
from mlstages.components.train.trials import collect_outcomes, load_outcome, save_outcome

# Enough candidates for halving to drop some (n_iter=6 on the larger tables), small enough to be quick.
TREES = {
    "random_forest": {"n_estimators": [15, 30], "max_depth": [None, 4, 8], "min_samples_leaf": [1, 5]},
    "gradient_boosting": {"max_iter": [20, 50], "learning_rate": [0.05, 0.2], "max_leaf_nodes": [7, 15]},
}
SPACES = {
    "classification": {"logistic_regression": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}, **TREES},
    "regression": {"linear_regression": {"alpha": [0.01, 0.1, 1.0, 10.0, 100.0]}, **TREES},
}


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_fit():
    with threadpool_limits(limits=1):
        yield


def penguins(label: str) -> pd.DataFrame:
    return load_penguins().dropna(subset=[label]).reset_index(drop=True)


def cancer() -> pd.DataFrame:
    df = load_breast_cancer(as_frame=True).frame
    df["target"] = df["target"].map({0: "malignant", 1: "benign"})
    return df


TABLES = {
    "penguins-species": (lambda: penguins("species"), "species", "classification"),
    "penguins-body-mass": (lambda: penguins("body_mass_g"), "body_mass_g", "regression"),
    "breast-cancer": (cancer, "target", "classification"),
    "diabetes": (lambda: load_diabetes(as_frame=True).frame, "target", "regression"),
}


def across_pods(df, features, config, folder, now=None) -> list:
    """What the pipeline does across pods, in one process: the plan, one branch per item (each
    preparing its own rows, as its pod does), the outcomes written and read back in any order."""
    paths = []
    for item in plan_trials(config, now=now):
        data = prepare_search(df, features, config)
        outcome = run_trial(data, item["family"], config, item["trials_started"], now=now)
        save_outcome(outcome, folder / item["family"])
        paths.append(folder / item["family"])
    random.Random(0).shuffle(paths)  # dsl.Collected promises no order
    return collect_outcomes(paths, config)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_trials_across_pods_choose_the_in_pod_winner_with_the_same_scores(table, tmp_path):
    load, label, task = TABLES[table]
    df = load()
    features = fit_features(df, label)
    config = TrainConfig(label, task, n_iter=6, cv_folds=3, search_space=SPACES[task], seed=7)

    in_pod = train(df, features, config)
    trials = train(df, features, config, outcomes=across_pods(df, features, config, tmp_path))

    assert trials.best_family == in_pod.best_family
    assert trials.best_params == in_pod.best_params
    assert trials.best_score == in_pod.best_score  # the same floats, not merely close
    columns = [c for c in in_pod.search_results.columns if c != "fit_time_seconds"]
    pd.testing.assert_frame_equal(trials.search_results[columns], in_pod.search_results[columns])
    assert [b.mean_cv_score for b in trials.baselines] == [b.mean_cv_score for b in in_pod.baselines]
    rows = df.drop(columns=[label]).head(20)
    np.testing.assert_array_equal(trials.model.predict(rows), in_pod.model.predict(rows))


def test_the_plan_lists_the_families_cheapest_first_with_the_budget_origin():
    config = TrainConfig("y", "classification", model_families=("random_forest", "logistic_regression"))
    assert plan_trials(config, now=1000.0) == [
        {"family": "logistic_regression", "learning_task": "classification", "trials_started": 0.0},
        {"family": "random_forest", "learning_task": "classification", "trials_started": 0.0},
    ]
    budgeted = TrainConfig("y", "regression", time_budget_seconds=60)
    assert plan_trials(budgeted, now=1000.0) == [
        {"family": f, "learning_task": "regression", "trials_started": 1000.0}
        for f in ("linear_regression", "gradient_boosting", "random_forest")
    ]


def test_a_branch_queued_past_the_budget_is_skipped_but_the_first_family_always_runs(tmp_path):
    df = cancer()
    features = fit_features(df, "target")
    config = TrainConfig(
        "target", "classification", cv_folds=3, search_space=SPACES["classification"], time_budget_seconds=5
    )
    data = prepare_search(df, features, config)
    late = run_trial(data, "random_forest", config, trials_started=1000.0, now=1006.0)
    assert late.table is None and "time budget of 5 s spent after 6 s" in late.skipped
    assert "Not searched: time budget" in outcome_markdown(late, config, 569)
    first = run_trial(data, "logistic_regression", config, trials_started=1000.0, now=1006.0)
    assert first.best_score is not None and not first.skipped
    on_time = run_trial(data, "gradient_boosting", config, trials_started=1000.0, now=1004.0)
    assert on_time.best_score is not None

    save_outcome(late, tmp_path / "late")
    assert load_outcome(tmp_path / "late") == late
    save_outcome(first, tmp_path / "first")
    read = load_outcome(tmp_path / "first")
    pd.testing.assert_frame_equal(read.table, first.table)
    assert (read.best_score, read.best_params) == (first.best_score, first.best_params)

    # train reports the skipped family as the in-pod search does.
    save_outcome(on_time, tmp_path / "gb")
    outcomes = collect_outcomes([tmp_path / "first", tmp_path / "late", tmp_path / "gb"], config)
    result = train(df, features, config, outcomes=outcomes)
    assert set(result.skipped) == {"random_forest"}


def test_outcomes_that_do_not_match_the_families_are_refused(tmp_path):
    df = cancer()
    features = fit_features(df, "target")
    config = TrainConfig("target", "classification", cv_folds=3, search_space=SPACES["classification"])
    data = prepare_search(df, features, config)
    save_outcome(run_trial(data, "logistic_regression", config, 0.0), tmp_path / "a")
    with pytest.raises(InputDataError, match="trial outcomes are for model families"):
        collect_outcomes([tmp_path / "a"], config)
    with pytest.raises(InputDataError, match="two trial outcomes for model family 'logistic_regression'"):
        collect_outcomes([tmp_path / "a", tmp_path / "a"], config)
    with pytest.raises(InputDataError, match="not among model_families"):
        run_trial(data, "linear_regression", config, 0.0)
