"""The search's quality floor (baselines), successive halving and time budget, on public tables."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mlstages.components.common.baselines import DEFAULT_GRADIENT_BOOSTING, DUMMY, load_baselines
from mlstages.components.common.errors import DigestMismatch
from mlstages.components.common.model_card import ModelCard
from mlstages.components.train import search as search_module
from mlstages.components.train.baselines import baseline_estimators
from mlstages.components.train.config import TrainConfig, family_estimator, routed_params
from mlstages.components.train.export import export_model
from mlstages.components.train.report import render_markdown
from mlstages.components.train.search import MIN_ROWS_PER_ROUND, halving_rounds
from mlstages.components.train.train import train

SMALL = {
    "logistic_regression": {"C": [0.1, 1.0]},
    "linear_regression": {"alpha": [0.1, 1.0]},
    "random_forest": {"n_estimators": [20], "max_depth": [None, 4]},
    "gradient_boosting": {"max_iter": [20, 50], "learning_rate": [0.1]},
}


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_fit():
    with threadpool_limits(limits=1):
        yield


def scaled(df: pd.DataFrame, label: str) -> ColumnTransformer:
    columns = [c for c in df.columns if c != label]
    return (
        ColumnTransformer([("n", StandardScaler(), columns)]).set_output(transform="pandas").fit(df[columns])
    )


def spaces(task: str, families: tuple[str, ...]) -> dict:
    return {f: SMALL[f] for f in families}


@pytest.fixture(scope="module")
def diabetes():
    df = load_diabetes(as_frame=True).frame
    return df, scaled(df, "target")


@pytest.fixture(scope="module")
def cancer():
    df = load_breast_cancer(as_frame=True).frame
    df["target"] = df["target"].map({0: "malignant", 1: "benign"})
    return df, scaled(df, "target")


def test_baselines_are_scored_on_the_search_folds_and_match_a_plain_cross_validation(
    cancer, progress_lines, monkeypatch
):
    df, features = cancer
    families = ("logistic_regression", "gradient_boosting")
    config = TrainConfig(
        "target", "classification", model_families=families, search_space=spaces("c", families)
    )
    # Every fit due a line: the baselines' folds report as a family's do (minutes on large tables).
    monkeypatch.setattr(search_module.Throttle, "due", lambda self: True)
    result = train(df, features, config)
    boosting = [line for line in progress_lines if line.startswith(f"{DEFAULT_GRADIENT_BOOSTING}: ")]
    assert [line.split(" fits scored")[0] for line in boosting] == [
        f"{DEFAULT_GRADIENT_BOOSTING}: {n}" for n in range(1, 6)
    ]
    done = next(
        line for line in progress_lines if line.startswith(f"baseline {DEFAULT_GRADIENT_BOOSTING} scored")
    )
    assert done.endswith(f"f1_macro {result.baselines[1].mean_cv_score:.4f}")

    scores = {b.name: b.mean_cv_score for b in result.baselines}
    assert set(scores) == {DUMMY, DEFAULT_GRADIENT_BOOSTING}
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    X, y = features.transform(df.drop(columns="target")), df["target"].to_numpy()
    expected = cross_val_score(
        HistGradientBoostingClassifier(random_state=42), X, y, cv=folds, scoring="f1_macro"
    )
    assert scores[DEFAULT_GRADIENT_BOOSTING] == pytest.approx(expected.mean())
    # The prior predicts the majority class for every row: macro F1 of one class out of two.
    assert scores[DUMMY] < 0.5
    # The default gradient boosting is a candidate too, so the choice is never below it in CV.
    assert result.best_score >= scores[DEFAULT_GRADIENT_BOOSTING]
    assert result.search_results["default"].sum() == 1


def test_the_default_gradient_boosting_wins_when_the_searched_candidates_are_worse(diabetes):
    df, features = diabetes
    # Two deliberately weak candidates: a very strongly regularised booster.
    config = TrainConfig(
        "target",
        "regression",
        model_families=("gradient_boosting",),
        search="grid",
        search_space={"gradient_boosting": {"max_iter": [2], "learning_rate": [0.01, 0.02]}},
    )
    result = train(df, features, config)

    assert result.best_params == {}
    chosen = result.search_results.loc[result.search_results["rank"] == 1].iloc[0]
    assert bool(chosen["default"])
    folds = KFold(n_splits=5, shuffle=True, random_state=42)
    X, y = features.transform(df.drop(columns="target")), df["target"].to_numpy()
    expected = cross_val_score(
        HistGradientBoostingRegressor(random_state=42), X, y, cv=folds, scoring="neg_root_mean_squared_error"
    )
    assert result.best_score == pytest.approx(expected.mean())
    assert result.model.named_steps["model"].get_params()["max_iter"] == 100


def test_without_gradient_boosting_the_report_says_the_choice_is_below_the_default(diabetes):
    df, features = diabetes
    config = TrainConfig(
        "target",
        "regression",
        model_families=("random_forest",),
        search="grid",
        search_space={"random_forest": {"n_estimators": [2], "max_depth": [1]}},
    )
    result = train(df, features, config)

    assert not result.search_results["default"].any()
    assert "BELOW the default gradient boosting baseline" in render_markdown(result)


def test_halving_scores_few_rows_first_and_all_rows_last():
    X, y = make_classification(n_samples=3 * 3 * MIN_ROWS_PER_ROUND + 30, n_features=8, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)]).assign(label=np.where(y, "a", "b"))
    features = scaled(df, "label")
    config = TrainConfig(
        "label",
        "classification",
        model_families=("gradient_boosting",),
        n_iter=9,
        cv_folds=3,
        search_space={"gradient_boosting": {"max_iter": [10, 20, 30], "learning_rate": [0.05, 0.1, 0.2]}},
    )
    result = train(df, features, config)

    searched = result.search_results[~result.search_results["default"]]
    assert len(searched) == 9
    rows = sorted(set(searched["rows_scored"]))
    assert len(rows) == 3 and rows[0] < rows[1] < rows[2] <= len(df)
    assert rows[2] >= len(df) - 9  # the last round sees (nearly) every row
    final = searched[searched["final"]]
    assert set(final["rows_scored"]) == {rows[2]}
    # The chosen one reached the last round; a candidate dropped early never ranks above those that did.
    chosen = result.search_results.loc[result.search_results["rank"] == 1].iloc[0]
    assert bool(chosen["final"])
    worst_final_rank = result.search_results.loc[result.search_results["final"], "rank"].max()
    assert (result.search_results.loc[~result.search_results["final"], "rank"] > worst_final_rank).all()


@pytest.mark.parametrize(
    ("rows", "candidates", "rounds"),
    [
        (200, 10, 1),
        (MIN_ROWS_PER_ROUND * 3, 10, 2),
        (MIN_ROWS_PER_ROUND * 9, 10, 3),
        (10**6, 10, 3),
        (10**6, 1, 1),
    ],
)
def test_halving_rounds_keep_enough_rows_in_the_first_round(rows, candidates, rounds):
    assert halving_rounds(rows, candidates) == rounds


def test_a_spent_time_budget_skips_later_families_and_says_so(cancer, monkeypatch):
    df, features = cancer
    real = search_module.search_family

    def slow(family, *args):
        outcome = real(family, *args)
        time.sleep(1.2)
        return outcome

    monkeypatch.setattr(search_module, "search_family", slow)
    families = ("logistic_regression", "random_forest", "gradient_boosting")
    config = TrainConfig(
        "target",
        "classification",
        model_families=families,
        search_space=spaces("c", families),
        time_budget_seconds=1,
    )
    result = train(df, features, config)

    # Cheapest first: the linear family ran, then the budget was spent.
    assert set(result.search_results.loc[~result.search_results["default"], "family"]) == {
        "logistic_regression"
    }
    assert set(result.skipped) == {"random_forest", "gradient_boosting"}
    assert "time budget of 1 s spent" in result.skipped["gradient_boosting"]
    assert "Not searched: random_forest (time budget" in render_markdown(result)


@pytest.mark.parametrize("budget", [-1, "10", True, float("nan")])
def test_a_bad_time_budget_is_named(budget):
    from mlstages.components.common.errors import ParameterError

    with pytest.raises(ParameterError, match="time_budget_seconds"):
        TrainConfig("y", "regression", time_budget_seconds=budget)


def test_baselines_are_exported_beside_the_model_and_checked_when_loaded(cancer, tmp_path):
    df, features = cancer
    families = ("logistic_regression",)
    config = TrainConfig(
        "target", "classification", model_families=families, search_space=spaces("c", families)
    )
    result = train(df, features, config)
    types = {c: "numeric" for c in result.input_columns}
    card = export_model(result, tmp_path / "model", types)

    read = ModelCard.read(tmp_path / "model")
    assert read.baselines == card.baselines
    assert set(read.baselines["cv_scores"]) == {DUMMY, DEFAULT_GRADIENT_BOOSTING}
    loaded = load_baselines(str(tmp_path / "model"), read.baselines)
    raw = df.drop(columns="target")
    assert set(loaded[DUMMY].predict(raw)) == {"benign"}  # the majority class
    assert (loaded[DEFAULT_GRADIENT_BOOSTING].predict(raw) == df["target"]).mean() > 0.95
    json.dumps(read.to_dict())  # the card stays plain JSON

    with open(tmp_path / "model" / "baselines.joblib", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(DigestMismatch):
        load_baselines(str(tmp_path / "model"), read.baselines)
    assert load_baselines(str(tmp_path / "model"), {}) == {}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_gradient_boosting_candidates_fit_the_trees_they_are_given_and_the_default_stops_early(task):
    # Above 10,000 rows scikit-learn's booster stops early by default, which would make a searched
    # max_iter only a cap (on a rare class far too low). The family's candidates, with or without
    # native categories, fit the max_iter they are given; the default baseline keeps every default.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12_000, 4))
    signal = X[:, 0] + rng.normal(size=len(X))
    y = (signal > 2.0).astype(int) if task == "classification" else signal
    candidate = family_estimator(task, "gradient_boosting", 0).set_params(max_iter=60).fit(X, y)
    assert candidate.n_iter_ == 60 and not candidate.do_early_stopping_
    native = family_estimator(task, "gradient_boosting", 0, [("g", [2, 3])], 4)
    assert native[-1].get_params()["early_stopping"] is False
    default = baseline_estimators(task, 0)[DEFAULT_GRADIENT_BOOSTING].fit(X, y)
    assert default.get_params()["early_stopping"] == "auto" and default.do_early_stopping_


def test_a_search_reports_its_plan_its_fits_and_its_outcome_with_the_scores_unchanged(
    cancer, progress_lines, monkeypatch
):
    df, features = cancer
    config = TrainConfig(
        "target",
        "classification",
        model_families=("logistic_regression", "gradient_boosting"),
        search="halving",
        n_iter=4,
        cv_folds=3,
        search_space={
            "logistic_regression": SMALL["logistic_regression"],
            "gradient_boosting": {"max_iter": [10, 20], "learning_rate": [0.1, 0.2]},
        },
    )
    # Every fit is due a line, as a minute's worth of fits would be on a long search.
    monkeypatch.setattr(search_module.Throttle, "due", lambda self: True)
    result = train(df, features, config)

    grid = [line for line in progress_lines if line.startswith("searching logistic_regression")]
    assert grid == [
        f"searching logistic_regression: 2 candidates x 3 folds = 6 fits on {result.search_rows:,} rows x 30 features"
    ]
    assert any(
        line.startswith("searching gradient_boosting: 4 candidates by successive halving")
        for line in progress_lines
    )
    fit_lines = [
        line for line in progress_lines if line.startswith("gradient_boosting: ") and "fits scored" in line
    ]
    searched = result.search_results[
        (result.search_results["family"] == "gradient_boosting") & ~result.search_results["default"]
    ]
    done = next(line for line in progress_lines if line.startswith("gradient_boosting searched in"))
    fits = int(done.split(": ")[1].split(" fits")[0])
    # 569 rows afford 2 rounds of 100+ rows: the 4 candidates, then the best 2 (ceil(4 / 3)), on 3
    # folds each; the candidates' own training folds are not scored.
    assert len(searched) == 4 and len(fit_lines) == fits == (4 + 2) * 3
    assert any(
        line.startswith("logistic_regression searched in ") and ": 6 fits" in line for line in progress_lines
    )
    assert fit_lines[-1].startswith(f"gradient_boosting: {fits} fits scored")
    assert any(line.startswith("chose ") and "refitting it on" in line for line in progress_lines)
    # Counting the fits does not change a score: the same as scikit-learn's own scorer on the same folds.
    lr = result.search_results[result.search_results["family"] == "logistic_regression"]
    X = features.transform(df.drop(columns="target"))
    for params, score in zip(lr["params"], lr["mean_cv_score"], strict=True):
        estimator = family_estimator("classification", "logistic_regression", config.seed, (), X.shape[1])
        estimator.set_params(**routed_params(estimator, json.loads(params)))
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=config.seed)
        expected = cross_val_score(estimator, X, df["target"].to_numpy(), cv=folds, scoring="f1_macro").mean()
        assert score == pytest.approx(expected, abs=1e-12)
