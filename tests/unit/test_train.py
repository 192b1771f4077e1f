"""Unit tests of the training logic: model search, refit, export and reports."""

from __future__ import annotations

import json
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from feature_helpers import fit_features
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mlstages.components.common.artifacts import file_sha256, load_estimator, read_metadata, save_estimator
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.train.config import DEFAULT_SCORING, FAMILIES, TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.report import render_html, render_markdown
from mlstages.components.train.train import _search_sample, train

# Tiny spaces keep every search to a few fits.
FAST_SPACES = {
    "classification": {
        "logistic_regression": {"C": [0.1, 1.0]},
        "random_forest": {"n_estimators": [10], "max_depth": [None, 3]},
        "gradient_boosting": {"max_iter": [10], "learning_rate": [0.1]},
    },
    "regression": {
        "linear_regression": {"alpha": [0.1, 1.0]},
        "random_forest": {"n_estimators": [10], "max_depth": [None, 3]},
        "gradient_boosting": {"max_iter": [10], "learning_rate": [0.1]},
    },
}


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_fit():
    # Gradient boosting's OpenMP threads spin while waiting; on a small shared machine that
    # makes these tiny fits many times slower than running them on one thread.
    with threadpool_limits(limits=1):
        yield


def classification_frame(n_classes: int = 2, rows: int = 120, seed: int = 0) -> pd.DataFrame:
    X, y = make_classification(
        n_samples=rows,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        class_sep=1.5,
        random_state=seed,
    )
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    rng = np.random.default_rng(seed)
    # A categorical column with missing values, as real raw rows have.
    df["colour"] = rng.choice(["red", "green", "blue"], size=rows)
    df.loc[rng.choice(rows, size=rows // 10, replace=False), "colour"] = None
    df.loc[rng.choice(rows, size=rows // 10, replace=False), "b"] = np.nan
    df["label"] = np.array(["no", "yes", "maybe"])[y] if n_classes <= 3 else y
    return df


def regression_frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    X, y = make_regression(n_samples=rows, n_features=4, noise=5.0, random_state=seed)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["colour"] = np.random.default_rng(seed).choice(["red", "green"], size=rows)
    df["target"] = y
    return df


def config(task: str = "classification", **overrides) -> TrainConfig:
    label = "label" if task == "classification" else "target"
    settings = {"cv_folds": 3, "search_space": FAST_SPACES[task]}
    settings.update(overrides)
    return TrainConfig(label_column=label, task=task, **settings)


@pytest.fixture(scope="module")
def binary():
    df = classification_frame(2)
    return df, fit_features(df, "label")


@pytest.fixture(scope="module")
def regression():
    df = regression_frame()
    return df, fit_features(df, "target")


# --- every family trains -----------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES["classification"])
def test_every_classification_family_trains_a_pipeline_on_raw_rows(binary, family):
    df, features = binary
    result = train(df, features, config(model_families=(family,)))

    assert result.best_family == family
    assert isinstance(result.model, Pipeline)
    assert [name for name, _ in result.model.steps] == ["features", "model"]
    assert result.model.named_steps["features"] is features
    assert result.classes == ["no", "yes"]
    raw = df.drop(columns=["label"])
    assert set(result.model.predict(raw)) <= {"no", "yes"}
    assert np.isfinite(result.model.predict_proba(raw)).all()
    assert result.scoring == "f1_macro"
    assert (result.search_results["family"] == family).all()


@pytest.mark.parametrize("family", FAMILIES["regression"])
def test_every_regression_family_trains_a_pipeline_on_raw_rows(regression, family):
    df, features = regression
    result = train(df, features, config("regression", model_families=(family,)))

    assert result.best_family == family
    assert result.classes is None
    assert result.scoring == "neg_root_mean_squared_error"
    predictions = result.model.predict(df.drop(columns=["target"]))
    assert predictions.shape == (len(df),)
    assert np.isfinite(predictions).all()
    # A fitted regressor explains the signal: far better than predicting the mean.
    assert np.corrcoef(predictions, df["target"])[0, 1] > 0.8


def test_multiclass_with_categorical_and_missing_values_trains_every_family():
    df = classification_frame(3, rows=150)
    result = train(df, fit_features(df, "label"), config())

    assert list(result.search_results["family"].unique()) == list(FAMILIES["classification"])
    assert result.classes == ["maybe", "no", "yes"]
    assert result.model.predict_proba(df.drop(columns=["label"])).shape == (150, 3)


def test_default_families_are_every_family_of_the_task():
    assert TrainConfig("y", "classification").model_families == FAMILIES["classification"]
    assert TrainConfig("y", "regression").model_families == FAMILIES["regression"]
    assert TrainConfig("y", "regression").scoring == DEFAULT_SCORING["regression"]


def test_spaces_of_families_not_searched_are_checked_but_not_searched(binary):
    df, features = binary
    cfg = config(model_families=("logistic_regression",))
    assert "random_forest" in cfg.search_space
    assert set(train(df, features, cfg).search_results["family"]) == {"logistic_regression"}
    with pytest.raises(ParameterError, match="RandomForestClassifier has no parameter 'trees'"):
        config(model_families=("logistic_regression",), search_space={"random_forest": {"trees": [1]}})


def test_default_search_space_is_used_when_none_is_given(binary):
    df, features = binary
    result = train(df, features, config(model_families=("logistic_regression",), search_space={}))
    searched = result.search_results[~result.search_results["default"]]
    assert sorted(json.loads(p)["C"] for p in searched["params"]) == [0.01, 0.1, 1.0, 10.0, 100.0]


# --- search ------------------------------------------------------------------------------------


def test_grid_search_scores_every_candidate(binary):
    df, features = binary
    result = train(df, features, config(search="grid"))

    assert result.search == "grid"
    # 2 (C) + 2 (max_depth) + 1 (gradient boosting) candidates, and the default gradient boosting.
    assert result.search_results["family"].value_counts().to_dict() == {
        "logistic_regression": 2,
        "random_forest": 2,
        "gradient_boosting": 2,
    }
    assert list(result.search_results.columns) == [
        "family",
        "params",
        "mean_cv_score",
        "std_cv_score",
        "rank",
        "fit_time_seconds",
        "rows_scored",
        "final",
        "default",
    ]
    assert sorted(result.search_results["rank"]) == [1, 2, 3, 4, 5, 6]
    assert result.search_results["final"].all()
    assert result.search_results["default"].sum() == 1


def test_random_search_draws_n_iter_candidates_per_family(binary):
    df, features = binary
    space = {"random_forest": {"n_estimators": [5, 10, 15], "max_depth": [2, 3, 4, None]}}
    result = train(
        df,
        features,
        config(model_families=("random_forest",), search="random", n_iter=3, search_space=space),
    )
    assert len(result.search_results) == 3
    assert result.search_results["params"].nunique() == 3
    # More candidates than the grid holds: the whole grid, without repeats.
    small = train(
        df,
        features,
        config(model_families=("logistic_regression",), search="random", n_iter=50),
    )
    assert len(small.search_results) == 2


def test_two_runs_with_the_same_seed_give_identical_results(binary):
    df, features = binary
    first = train(df, features, config(search="random", n_iter=2))
    second = train(df, features, config(search="random", n_iter=2))

    stable = ["family", "params", "mean_cv_score", "std_cv_score", "rank"]  # fit times vary
    pd.testing.assert_frame_equal(first.search_results[stable], second.search_results[stable])
    raw = df.drop(columns=["label"])
    np.testing.assert_array_equal(first.model.predict_proba(raw), second.model.predict_proba(raw))
    assert (first.best_family, first.best_params) == (second.best_family, second.best_params)


def test_best_candidate_has_the_highest_mean_cv_score(binary):
    df, features = binary
    result = train(df, features, config())
    table = result.search_results

    top = table.loc[table["mean_cv_score"].idxmax()]
    assert result.best_score == pytest.approx(top["mean_cv_score"])
    assert result.best_family == top["family"]
    assert json.dumps(result.best_params, sort_keys=True) == top["params"]
    assert table.loc[table["rank"] == 1, "family"].item() == result.best_family
    estimator = result.model.named_steps["model"]
    assert {k: estimator.get_params()[k] for k in result.best_params} == result.best_params


def test_a_nonlinear_label_is_won_by_a_tree_family():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.uniform(-1, 1, 300), "z": rng.uniform(-1, 1, 300)})
    df["label"] = np.where(df["x"] * df["z"] > 0, "same", "differ")  # XOR: no linear boundary
    result = train(
        df,
        fit_features(df, "label"),
        config(model_families=("logistic_regression", "random_forest")),
    )
    assert result.best_family == "random_forest"
    scores = result.search_results.groupby("family")["mean_cv_score"].max()
    assert scores["random_forest"] > scores["logistic_regression"] + 0.2


@pytest.mark.parametrize(
    "order", [("logistic_regression", "random_forest"), ("random_forest", "logistic_regression")]
)
def test_ties_go_to_the_family_listed_first(order):
    df = pd.DataFrame({"x": np.r_[np.linspace(-10, -5, 30), np.linspace(5, 10, 30)]})
    df["label"] = np.where(df["x"] > 0, "pos", "neg")  # any family separates it perfectly
    space = {"logistic_regression": {"C": [1.0]}, "random_forest": {"n_estimators": [5]}}
    result = train(df, fit_features(df, "label"), config(model_families=order, search_space=space))

    assert set(result.search_results["mean_cv_score"]) == {1.0}
    assert result.best_family == order[0]


def test_max_search_rows_searches_a_stratified_sample_and_refits_on_all_rows(binary):
    df, features = binary
    result = train(df, features, config(model_families=("logistic_regression",), max_search_rows=60))
    assert (result.search_rows, result.train_rows) == (60, len(df))

    # The chosen candidate was refit on every training row, not on the sample.
    full = features.transform(df.drop(columns=["label"]))
    expected = clone(result.model.named_steps["model"]).fit(full, df["label"])
    np.testing.assert_allclose(result.model.named_steps["model"].coef_, expected.coef_)

    y = df["label"].to_numpy()
    sample = _search_sample(y, config(max_search_rows=60))
    assert len(sample) == 60 and len(set(sample)) == 60
    shares = pd.Series(y[sample]).value_counts(normalize=True)
    assert shares.to_dict() == pytest.approx(pd.Series(y).value_counts(normalize=True).to_dict(), abs=0.02)


def test_max_search_rows_above_the_row_count_searches_every_row(binary):
    df, features = binary
    result = train(df, features, config(model_families=("logistic_regression",), max_search_rows=10_000))
    assert result.search_rows == result.train_rows == len(df)


def test_whole_floats_from_kfp_json_become_ints_where_the_estimator_needs_them(binary):
    df, features = binary
    # KFP passes dict parameters through a protobuf Struct: every number arrives as a float.
    space = {
        "random_forest": {"n_estimators": [10.0], "max_depth": [3.0]},
        "logistic_regression": {"C": [1.0]},
    }
    cfg = config(model_families=("random_forest", "logistic_regression"), search_space=space)
    assert cfg.search_space["random_forest"] == {"n_estimators": [10], "max_depth": [3]}
    assert type(cfg.search_space["random_forest"]["n_estimators"][0]) is int
    assert type(cfg.search_space["logistic_regression"]["C"][0]) is float
    result = train(df, features, cfg)
    assert type(result.model.named_steps["model"].get_params()["n_estimators"]) is int


# --- bad parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"model_families": ("logistic_regression", "svm")},
            "model_families: unknown family 'svm' for task 'classification'; valid: "
            "logistic_regression, random_forest, gradient_boosting",
        ),
        ({"model_families": ("random_forest", "random_forest")}, "lists a family twice"),
        ({"scoring": "accuracy_score"}, "parameter scoring='accuracy_score' is not a scikit-learn scorer"),
        ({"scoring": "r2"}, "parameter scoring='r2' does not measure classification"),
        (
            {"search_space": {"random_forest": {"n_trees": [10]}}},
            "search_space['random_forest']: RandomForestClassifier has no parameter 'n_trees'",
        ),
        (
            {"search_space": {"logistic_regression": {"C": [-1.0]}}},
            "search_space['logistic_regression']['C']: value -1.0",
        ),
        ({"search_space": {"logistic_regression": {"C": 1.0}}}, "must be a non-empty list of values"),
        ({"search_space": {"logistic_regression": {}}}, "must be a non-empty {parameter: [values]}"),
        ({"search_space": {"svm": {"C": [1.0]}}}, "search_space: unknown family 'svm'"),
        ({"cv_folds": 1}, "parameter cv_folds=1 must be at least 2"),
        ({"search": "bayes"}, "parameter search='bayes' is not one of: 'halving', 'random', 'grid'"),
        ({"n_iter": 0}, "parameter n_iter=0 must be at least 1"),
        ({"max_search_rows": -5}, "parameter max_search_rows=-5 must be 0"),
        ({"n_jobs": 0}, "parameter n_jobs=0 must be -1"),
        ({"seed": "7"}, "parameter seed='7' must be an integer"),
    ],
)
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(ParameterError) as error:
        config(**overrides)
    assert message in str(error.value)


def test_unknown_regression_family_lists_the_regression_families():
    with pytest.raises(ParameterError, match="valid: linear_regression, random_forest, gradient_boosting"):
        TrainConfig("target", "regression", model_families=("logistic_regression",))


def test_bad_task_and_empty_label_column_are_named():
    with pytest.raises(ParameterError, match="parameter task='clustering' is not one of"):
        TrainConfig("y", "clustering")
    with pytest.raises(ParameterError, match="parameter label_column is empty"):
        TrainConfig(" ", "classification")


# --- bad data ----------------------------------------------------------------------------------


def test_missing_label_column_is_named(binary):
    df, features = binary
    with pytest.raises(InputDataError, match="label_column 'species' is not a column of the training split"):
        train(df, features, TrainConfig("species", "classification", cv_folds=3))


def test_missing_label_values_are_counted_and_located(binary):
    df, features = binary
    broken = df.copy()
    broken.loc[[3, 7], "label"] = None
    with pytest.raises(InputDataError, match=r"2 missing value\(s\), first at row\(s\) 3, 7"):
        train(broken, features, config())


def test_a_single_class_cannot_be_learned(binary):
    df, features = binary
    with pytest.raises(InputDataError, match="single class"):
        train(df.assign(label="yes"), features, config())


def test_regression_on_text_labels_is_refused(binary):
    df, features = binary
    with pytest.raises(InputDataError, match="task='regression' needs a numeric label"):
        train(df, features, TrainConfig("label", "regression", cv_folds=3))


def test_fractional_labels_for_classification_are_refused(regression):
    df, features = regression
    with pytest.raises(InputDataError, match="fractional.*use task='regression'"):
        train(df, features, TrainConfig("target", "classification", cv_folds=3))


def test_a_class_rarer_than_cv_folds_is_named(binary):
    df, features = binary
    rare = df.copy()
    rare.loc[[0, 1], "label"] = "rare"
    with pytest.raises(InputDataError, match=r"class\(es\) 'rare' \(2 rows\).*cv_folds=3.*lower cv_folds"):
        train(rare, features, config())


def test_a_search_sample_too_small_for_the_folds_says_to_raise_max_search_rows(binary):
    df, features = binary
    with pytest.raises(InputDataError, match="search sample of 8 rows.*raise max_search_rows"):
        train(df, features, config(max_search_rows=8, cv_folds=5))


def test_a_feature_pipeline_that_leaves_missing_values_is_refused(binary):
    df, _ = binary
    raw = df.drop(columns=["label", "colour"])
    no_imputation = ColumnTransformer([("num", StandardScaler(), ["a", "b", "c", "d"])])
    no_imputation.set_output(transform="pandas").fit(raw)
    with pytest.raises(InputDataError, match=r"missing or infinite values in feature\(s\) 'num__b'"):
        train(df, no_imputation, config())


def test_training_data_without_the_feature_pipelines_inputs_is_refused(binary):
    df, features = binary
    with pytest.raises(InputDataError, match="lacks the feature pipeline's input column\\(s\\) 'colour'"):
        train(df.drop(columns=["colour"]), features, config())


def test_empty_training_data_is_refused(binary):
    df, features = binary
    with pytest.raises(InputDataError, match="the training data has no rows"):
        train(df.iloc[:0], features, config())


# --- export ------------------------------------------------------------------------------------


def test_export_writes_a_model_that_loads_back_and_predicts_on_raw_rows(binary, tmp_path):
    df, features = binary
    result = train(df, features, config())
    types = {"a": "numeric", "b": "numeric", "c": "numeric", "d": "numeric", "colour": "categorical"}
    written = export_model(result, tmp_path / "model", types, extra_metadata={"run": "test"})

    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "baselines.joblib",
        "metadata.json",
        "model.joblib",
    ]
    metadata = read_metadata(tmp_path / "model")
    assert metadata == json.loads(json.dumps(written.to_dict(), default=str))
    assert metadata["sha256"] == file_sha256(tmp_path / "model" / "model.joblib")
    assert metadata["framework"] == "scikit-learn"
    assert metadata["versions"]["scikit-learn"]
    assert metadata["task"] == "classification"
    assert metadata["label_column"] == "label"
    assert metadata["classes"] == ["no", "yes"]
    assert metadata["input_features"] == [
        {"name": "a", "type": "numeric"},
        {"name": "b", "type": "numeric"},
        {"name": "c", "type": "numeric"},
        {"name": "d", "type": "numeric"},
        {"name": "colour", "type": "categorical"},
    ]
    assert metadata["output"]["classes"] == ["no", "yes"]
    assert metadata["best_family"] == result.best_family
    assert metadata["best_params"] == result.best_params
    assert metadata["cv_score"] == pytest.approx(result.best_score)
    assert metadata["scoring"] == "f1_macro"
    assert metadata["train_rows"] == len(df)
    assert metadata["run"] == "test"

    loaded = joblib.load(tmp_path / "model" / "model.joblib")
    assert isinstance(loaded, Pipeline)
    raw = df.drop(columns=["label"]).head(20)
    raw.loc[raw.index[0], "colour"] = None  # raw rows with missing values, as requests carry
    np.testing.assert_array_equal(loaded.predict(raw), result.model.predict(raw))
    np.testing.assert_allclose(
        load_estimator(tmp_path / "model", "model").predict_proba(raw), loaded.predict_proba(raw)
    )


def test_export_needs_the_type_of_every_input_column(binary, tmp_path):
    df, features = binary
    result = train(df, features, config(model_families=("logistic_regression",)))
    with pytest.raises(
        InputDataError, match="input_columns lacks the type of model input column\\(s\\) 'colour'"
    ):
        export_model(result, tmp_path / "model", {c: "numeric" for c in "abcd"})
    assert not (tmp_path / "model").exists()


def test_feature_pipeline_saved_as_an_artifact_trains_like_the_original(binary, tmp_path):
    df, features = binary
    save_estimator(
        features, tmp_path / "features", "features", {"feature_names": list(features.get_feature_names_out())}
    )
    reloaded = load_estimator(tmp_path / "features", "features")
    result = train(df, reloaded, config(model_families=("logistic_regression",)))
    assert result.input_columns == ["a", "b", "c", "d", "colour"]
    assert result.feature_names == list(features.get_feature_names_out())


# --- the exported model of the whole suite, against the scikit-learn composition it replaced ------


def every_kind_frame(n: int = 400, seed: int = 2) -> pd.DataFrame:
    """Raw rows with every column kind: numbers (with an outlier, an int and a nullable Int64
    column), categories (text with rare values, a pandas Categorical), booleans (numpy and
    nullable), free text, a datetime; missing values in most; a binary label that depends on them."""
    rng = np.random.default_rng(seed)

    def some(count: int) -> np.ndarray:
        return rng.choice(n, count, replace=False)

    x = rng.normal(10, 2, n)
    colour = rng.choice(["red", "green", "blue", "teal", "rare"], n, p=[0.35, 0.3, 0.2, 0.12, 0.03]).astype(
        object
    )
    flag = rng.random(n) > 0.5
    words = np.array(["great", "fish", "penguin", "awful", "cold", "happy", "sea", "ice"])
    review = np.array([" ".join(rng.choice(words, 3)) for _ in range(n)], dtype=object)
    logit = (x - 10) + 1.5 * (colour == "red") - flag + np.array(["great" in r for r in review])
    label = np.where(logit + rng.logistic(0, 0.5, n) > 0, "yes", "no")
    x[some(20)] = np.nan
    x[0] = 1000.0
    nullable = pd.array(rng.integers(0, 50, n), dtype="Int64")
    nullable[some(15)] = pd.NA
    colour[some(12)] = None
    maybe = pd.array(rng.random(n) > 0.3, dtype="boolean")
    maybe[some(10)] = pd.NA
    review[some(10)] = None
    return pd.DataFrame(
        {
            "x": x,
            "counts": rng.poisson(3, n),
            "nullable": nullable,
            "colour": colour,
            "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
            "flag": flag,
            "maybe": maybe,
            "review": review,
            "when": pd.Series(pd.date_range("2024-01-01", periods=n, freq="7h")[rng.permutation(n)]),
            "label": label,
        }
    )


def suite_model(data: pd.DataFrame, label: str, derived: list, preprocess_overrides: dict, selection: str):
    """preprocess → engineer_features → train (logistic regression), as the pipeline runs them."""
    from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess

    prepared = preprocess(data, PreprocessConfig(label_column=label, seed=3, **preprocess_overrides))
    features = engineer_features(
        prepared.train,
        prepared.preprocessor,
        FeatureConfig(label_column=label, task=prepared.task, derived=derived, selection=selection),
    )
    result = train(
        prepared.train,
        features.feature_pipeline,
        TrainConfig(
            label_column=label,
            task=prepared.task,
            model_families=("logistic_regression",),
            cv_folds=2,
            search_space={"logistic_regression": {"C": [1.0]}},
        ),
    )
    return prepared, features, result


def feature_union_model(prepared, features, result, label: str) -> Pipeline:
    """The same model built the way the suite built it before: FeatureUnion(FrozenEstimator(the
    preprocessor), DerivedFeatures) with pandas output, a ColumnTransformer passing the selected
    columns through by name, and the estimator fitted on that DataFrame."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import FeatureUnion

    from mlstages.components.common.estimators.derived import DerivedFeatures

    train_X = prepared.train[result.input_columns]
    union = FeatureUnion(
        [
            ("preprocessed", FrozenEstimator(prepared.preprocessor)),
            ("derived", DerivedFeatures(features.config.derived, features.scaling)),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    candidates = union.fit(train_X).transform(train_X)
    select = ColumnTransformer(
        [("selected", "passthrough", list(features.feature_names))],
        remainder="drop",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipeline = Pipeline([("union", union), ("select", select.fit(candidates))])
    estimator = clone(result.model.named_steps["model"]).fit(
        pipeline.transform(train_X), prepared.train[label]
    )
    return Pipeline([("features", pipeline), ("model", estimator)])


def request_rows(rows: pd.DataFrame, categorical: list[str], numeric: list[str]) -> list[pd.DataFrame]:
    """Rows as requests bring them: real ones, one at a time, every value missing, categories never
    seen, extreme numbers."""
    return [
        rows,
        *[rows.iloc[[i]] for i in range(0, len(rows), 7)],
        pd.DataFrame({c: [None] for c in rows.columns}, dtype=object),
        rows.iloc[:3].assign(**dict.fromkeys(categorical, "never-seen")),
        rows.iloc[3:5].assign(**dict.fromkeys(numeric, 1e12)),
    ]


SUITE_CASES = {
    "penguins": (
        "species",
        [{"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]}],
        {},
        "none",
        ["island", "sex"],
        ["bill_length_mm", "bill_depth_mm", "body_mass_g"],
    ),
    "every_kind": (
        "label",
        [
            {"name": "x_per_count", "kind": "ratio", "columns": ["x", "counts"]},
            {"name": "log_x", "kind": "log", "columns": ["x"]},
            {"name": "x_bin", "kind": "bin", "columns": ["x"]},
            {
                "name": "when",
                "kind": "date_parts",
                "columns": ["when"],
                "parts": ["month", "dayofweek", "hour"],
            },
            {"name": "xc", "kind": "interaction", "columns": ["x", "counts", "nullable"], "pairwise": True},
        ],
        {"max_categories": 4},
        "variance",
        ["colour", "size", "review"],
        ["x", "counts"],
    ),
}


@pytest.mark.parametrize("case", list(SUITE_CASES))
def test_the_exported_model_predicts_what_the_feature_union_model_predicted(case):
    import palmerpenguins

    label, derived, overrides, selection, categorical, numeric = SUITE_CASES[case]
    data = palmerpenguins.load_penguins() if case == "penguins" else every_kind_frame()
    prepared, features, result = suite_model(data, label, derived, overrides, selection)
    reference = feature_union_model(prepared, features, result, label)
    # The estimator is fitted on the same numbers, so it is the same model.
    np.testing.assert_array_equal(
        result.model.named_steps["model"].coef_, reference.named_steps["model"].coef_
    )
    rows = prepared.test.drop(columns=label)
    for batch in request_rows(rows, categorical, numeric):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the encoder's "unknown categories", on purpose
            expected_proba = reference.predict_proba(batch)
            expected = reference.predict(batch)
        np.testing.assert_allclose(result.model.predict_proba(batch), expected_proba, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(result.model.predict(batch), expected)


def test_the_estimator_takes_arrays_and_the_callers_feature_pipeline_is_left_as_it_was():
    import palmerpenguins

    label, derived, overrides, selection, _, _ = SUITE_CASES["penguins"]
    prepared, features, result = suite_model(
        palmerpenguins.load_penguins(), label, derived, overrides, selection
    )
    rows = prepared.test.drop(columns=label)
    step = result.model.named_steps["features"]
    assert step is not features.feature_pipeline
    values = step.transform(rows)
    assert isinstance(values, np.ndarray)
    # The estimator was fitted on that array, so predicting checks no DataFrame column by column.
    assert not hasattr(result.model.named_steps["model"], "feature_names_in_")
    frame = features.feature_pipeline.transform(rows)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == result.feature_names
    np.testing.assert_array_equal(values, frame.to_numpy())
    assert list(result.model.feature_names_in_) == result.input_columns


def test_a_feature_pipeline_that_cannot_give_arrays_cleanly_is_used_as_it_is(binary):
    # A ColumnTransformer fitted with pandas output between its steps warns about feature names
    # once switched to arrays, so train keeps it, and the estimator takes its DataFrame.
    df, features = binary
    result = train(df, features, config(model_families=("logistic_regression",)))
    assert result.model.named_steps["features"] is features
    assert list(result.model.named_steps["model"].feature_names_in_) == result.feature_names


# --- reports -----------------------------------------------------------------------------------


def test_html_report_ranks_candidates_highlights_the_best_and_escapes_names(tmp_path):
    df = classification_frame(2).rename(columns={"label": "<b>y</b>"})
    result = train(
        df,
        fit_features(df, "<b>y</b>"),
        TrainConfig("<b>y</b>", "classification", cv_folds=3, search_space=FAST_SPACES["classification"]),
    )
    page = render_html(result)

    assert "<b>y</b>" not in page and "&lt;b&gt;y&lt;/b&gt;" in page
    assert "<script" not in page
    body = page.split("<tbody>")[-1]
    assert body.startswith('<tr class="ok" style="font-weight:600"><td class="num">1</td><td>best</td>')
    ranks = [int(r.split("</td>")[0]) for r in body.split('<td class="num">')[1::5]]
    assert ranks == sorted(ranks)
    assert result.best_family in page


def test_markdown_summary_names_the_choice_and_the_sample(binary):
    df, features = binary
    result = train(df, features, config(max_search_rows=60))
    text = render_markdown(result)

    assert text.startswith("# Train")
    assert f"{result.best_family} with" in text
    assert "sample of 60 rows (max_search_rows)" in text
    assert f"refit on all {len(df)} training rows" in text
    for family in FAMILIES["classification"]:
        assert f"| {family} |" in text
