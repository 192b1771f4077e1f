"""The gradient-boosting family splits on categories natively: the preprocessor's one-hot groups
turned back into codes (OneHotCodes), found from the fitted encoder (onehot_groups)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier

from mlstages.components.common.estimators.categories import (
    CODES_STEP,
    MODEL_STEP,
    OneHotCodes,
    onehot_groups,
    with_native_categories,
)
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.train.config import TrainConfig, routed_params, unrouted_params
from mlstages.components.train.train import train


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins().dropna(subset=["species"]).reset_index(drop=True)


def test_onehot_codes_turn_each_group_into_the_position_of_its_one():
    X = np.array(
        [
            # a, b0, b1, b2, c, d0, d1
            [0.5, 0, 1, 0, 7.0, 1, 0],
            [1.5, 0, 0, 1, 8.0, 0, 1],
            [2.5, 0, 0, 0, 9.0, 0, 0],  # unknown categories: all zeros → missing
        ]
    )
    codes = OneHotCodes(groups=(("b", (1, 2, 3)), ("d", (5, 6)))).fit(X)
    out = codes.transform(X)
    np.testing.assert_array_equal(out[:, :2], X[:, [0, 4]])
    np.testing.assert_array_equal(out[:2, 2:], [[1, 0], [2, 1]])
    assert np.isnan(out[2, 2:]).all()
    assert codes.categorical_mask(7) == [False, False, True, True]
    assert list(codes.get_feature_names_out()) == ["x0", "x4", "b", "d"]


@pytest.mark.parametrize("groups", [(("b", (1, 9)),), (("b", (1, 2)), ("c", (2, 3)))])
def test_onehot_codes_refuse_groups_that_do_not_fit_the_columns(groups):
    with pytest.raises(ValueError, match="distinct column positions below 4"):
        OneHotCodes(groups=groups).fit(np.zeros((2, 4)))


def test_groups_come_from_the_fitted_encoder_with_rare_categories_grouped(penguins):
    result = preprocess(penguins, PreprocessConfig("species", max_categories=2))
    names = list(result.feature_names)
    groups = dict(onehot_groups(result.preprocessor, names))
    # island has three categories: with a cap of two, one frequent column plus "infrequent".
    assert set(groups) == {"cat__island", "cat__sex"}
    assert [names[p] for p in groups["cat__island"]] == [n for n in names if n.startswith("cat__island_")]
    assert len(groups["cat__island"]) == 2
    ordinal = preprocess(penguins, PreprocessConfig("species", encoding="ordinal"))
    assert onehot_groups(ordinal.preprocessor, list(ordinal.feature_names)) == []


def test_a_group_selection_cut_to_one_column_stays_one_hot(penguins):
    result = preprocess(penguins, PreprocessConfig("species"))
    kept = [n for n in result.feature_names if not n.startswith("cat__island_") or n.endswith("Biscoe")]
    assert "cat__island" not in dict(onehot_groups(result.preprocessor, kept))


def test_search_space_names_are_routed_to_the_booster_and_back():
    booster = HistGradientBoostingClassifier(random_state=0)
    model = with_native_categories(booster, [("cat__x", [1, 2])], n_features=3)
    assert list(model.named_steps) == [CODES_STEP, MODEL_STEP]
    assert model.named_steps[MODEL_STEP].categorical_features == [False, True]
    routed = routed_params(model, {"learning_rate": 0.1})
    assert routed == {f"{MODEL_STEP}__learning_rate": 0.1}
    assert clone(model).set_params(**routed).named_steps[MODEL_STEP].learning_rate == 0.1
    assert unrouted_params(routed) == {"learning_rate": 0.1}
    assert with_native_categories(booster, [], n_features=3) is booster


def _train(data: pd.DataFrame, **settings) -> object:
    result = preprocess(data, PreprocessConfig("species"))
    config = TrainConfig(
        "species",
        "classification",
        model_families=("gradient_boosting",),
        cv_folds=3,
        search="random",
        **settings,
    )
    return result, train(result.train, result.preprocessor, config)


def test_train_gives_gradient_boosting_native_categories_and_reports_plain_parameters(penguins):
    result, trained = _train(penguins, n_iter=3)
    chosen = trained.search_results.loc[trained.search_results["rank"] == 1]
    assert not chosen["default"].item()
    estimator = trained.model.named_steps["model"]
    assert list(estimator.named_steps) == [CODES_STEP, MODEL_STEP]
    booster = estimator.named_steps[MODEL_STEP]
    assert sum(booster.categorical_features) == 2  # island and sex
    assert booster.early_stopping is False  # a candidate fits the max_iter it was scored with
    assert booster.learning_rate == trained.best_params["learning_rate"]
    assert all(
        not key.startswith(MODEL_STEP) for p in trained.search_results["params"] for key in json.loads(p)
    )
    predictions = trained.model.predict(result.test.drop(columns="species"))
    assert (predictions == result.test["species"].to_numpy()).mean() > 0.9


def test_the_default_candidate_is_refit_as_it_was_scored_on_the_one_hot_columns(penguins):
    # Boosters of one iteration cannot beat the default: it wins, and is refit unchanged.
    _, trained = _train(penguins, n_iter=1, search_space={"gradient_boosting": {"max_iter": [1]}})
    assert trained.search_results.loc[trained.search_results["rank"] == 1, "default"].item()
    assert isinstance(trained.model.named_steps["model"], HistGradientBoostingClassifier)


def test_the_native_booster_predicts_as_a_booster_fitted_on_the_codes(penguins):
    result = preprocess(penguins, PreprocessConfig("species"))
    features = result.preprocessor.transform(result.train.drop(columns="species"))
    groups = onehot_groups(result.preprocessor, list(features.columns))
    model = with_native_categories(HistGradientBoostingClassifier(random_state=0), groups, features.shape[1])
    model.fit(features, result.train["species"])
    codes = OneHotCodes(groups=tuple((n, tuple(p)) for n, p in groups)).fit(features).transform(features)
    mask = [False] * (codes.shape[1] - len(groups)) + [True] * len(groups)
    direct = HistGradientBoostingClassifier(random_state=0, categorical_features=mask).fit(
        codes, result.train["species"]
    )
    np.testing.assert_allclose(model.predict_proba(features), direct.predict_proba(codes))
