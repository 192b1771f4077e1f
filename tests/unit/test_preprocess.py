"""The preprocess logic: splitting, the fitted transformer, and every bad-input message."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, OrdinalEncoder, RobustScaler, StandardScaler

from mlstages.components.common.artifacts import load_estimator, save_estimator
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.estimators.fast_transform import compile_preprocessor, plan_mismatch
from mlstages.components.common.estimators.outliers import OutlierClipper
from mlstages.components.preprocess.columns import (
    build_preprocessor,
    features_and_label,
    fit_preprocessor,
    plan_columns,
)
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess, preprocessor_metadata, render_markdown
from mlstages.components.preprocess.split import split_dataset, split_sizes

# Transformer tests switch off everything but the option under test.
PLAIN = {"outliers": "none", "scaling": "none", "add_missing_indicators": False}


def make_frame(n: int = 100, seed: int = 0) -> pd.DataFrame:
    """Three classes (34/33/33), numeric and categorical columns with missing values, a boolean,
    a datetime and an ID."""
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, n)
    x[[i for i in (3, 17, 40) if i < n]] = np.nan
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    colour[[i for i in (5, 9) if i < n]] = None
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": x,
            "colour": colour,
            "flag": rng.random(n) > 0.5,
            "when": pd.date_range("2024-01-01", periods=n, freq="D")[rng.permutation(n)],
            "y": np.array(["a", "b", "c"])[np.arange(n) % 3],
        }
    )


def config(**overrides) -> PreprocessConfig:
    return PreprocessConfig(**{"label_column": "y", "drop_columns": ("id",), **overrides})


def fit_tiny(frame: pd.DataFrame, **overrides) -> pd.DataFrame:
    """Fit on ``frame`` (features only) and transform it."""
    return fit_preprocessor(frame, config(drop_columns=(), **overrides)).transform(frame)


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"label_column": ""}, "parameter label_column is empty"),
        ({"test_size": 0.0}, r"parameter test_size=0.0 must be a share of the rows strictly between 0 and 1"),
        ({"test_size": 1.0}, r"parameter test_size=1.0 must be a share"),
        ({"split": "kfold"}, r"parameter split='kfold' is not one of: 'stratified', 'random', 'time'"),
        ({"split": "time"}, r"split='time' needs parameter time_column"),
        ({"time_column": "when"}, r"parameter time_column='when' is only used with split='time'"),
        ({"drop_columns": ("y",)}, r"parameter drop_columns lists the label column 'y'"),
        ({"drop_columns": "id"}, r"parameter drop_columns='id' must be a list of column names"),
        ({"drop_columns": ("id", "id")}, r"parameter drop_columns lists 'id' more than once"),
        ({"text_columns": ("id",)}, r"column\(s\) 'id' are in both text_columns and drop_columns"),
        ({"numeric_imputation": "knn"}, r"parameter numeric_imputation='knn' is not one of"),
        ({"categorical_imputation": "mean"}, r"parameter categorical_imputation='mean' is not one of"),
        ({"encoding": "target"}, r"parameter encoding='target' is not one of: 'onehot', 'ordinal'"),
        ({"max_categories": 1}, r"parameter max_categories=1 must be 0 \(keep every category\)"),
        ({"outliers": "winsor"}, r"parameter outliers='winsor' is not one of"),
        ({"outlier_factor": -1.0}, r"parameter outlier_factor=-1.0 must be a positive number"),
        ({"scaling": "log"}, r"parameter scaling='log' is not one of"),
        ({"seed": -1}, r"parameter seed=-1 must be an integer"),
        ({"fill_value_numeric": float("nan")}, r"parameter fill_value_numeric=nan must be a finite number"),
        ({"task": "ranking"}, r"parameter task='ranking' is not one of"),
    ],
)
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(ParameterError, match=message):
        config(**overrides)


def test_outlier_factor_defaults_per_method():
    assert config(outliers="iqr").effective_outlier_factor == 1.5
    assert config(outliers="zscore").effective_outlier_factor == 3.0
    assert config(outliers="zscore", outlier_factor=2.0).effective_outlier_factor == 2.0
    assert config(outliers="none").effective_outlier_factor is None


# --- splitting ---------------------------------------------------------------------------------


def test_split_sizes_and_no_row_in_two_splits():
    df = make_frame()
    train, test = split_dataset(df, config())
    assert (len(train), len(test)) == (80, 20) == split_sizes(100, config())
    ids = [set(part["id"]) for part in (train, test)]
    assert ids[0].isdisjoint(ids[1])
    assert set().union(*ids) == set(df["id"])
    # Raw rows: every column, the label and the dropped ID included, values untouched.
    assert list(train.columns) == list(df.columns)
    pd.testing.assert_frame_equal(train, df.loc[train.index])


def test_split_sizes_round_up_without_floating_point_surprises():
    # 0.1 * 30 is 3.0000000000000004 in floating point; it must give 3 rows, not 4.
    assert split_sizes(30, config(test_size=0.1)) == (27, 3)
    assert split_sizes(7, config()) == (5, 2)


def test_split_is_reproducible_and_seeded():
    df = make_frame()
    first = [part.index.tolist() for part in split_dataset(df, config(seed=7))]
    again = [part.index.tolist() for part in split_dataset(df, config(seed=7))]
    other = [part.index.tolist() for part in split_dataset(df, config(seed=8))]
    assert first == again
    assert first != other


def test_stratified_split_keeps_class_shares():
    df = make_frame(200)
    df.loc[df.index[:120], "y"] = "a"  # a: 140, b: 30, c: 30
    shares = df["y"].value_counts(normalize=True)
    for part in split_dataset(df, config()):
        counts = part["y"].value_counts()
        for label, share in shares.items():
            # Stratification allocates whole rows: at most one row off the exact share.
            assert abs(counts[label] - share * len(part)) <= 1


def test_random_split_is_not_stratified_but_keeps_every_class_in_train():
    df = make_frame()
    result = preprocess(df, config(split="random"))
    assert result.split_method == "random"
    assert set(result.train["y"]) == {"a", "b", "c"}


def test_regression_label_falls_back_to_a_random_split_and_says_so():
    df = make_frame()
    df["y"] = np.linspace(0, 1, len(df)) ** 2
    result = preprocess(df, config())
    assert result.task == "regression"
    assert result.split_method == "random"
    assert "the regression label was split at random" in result.notes[0]
    assert set(result.label_summary["train"]) == {"mean", "std", "min", "max"}
    assert "## Label" in render_markdown(result)


def test_time_split_puts_the_oldest_rows_in_train_and_the_newest_in_test():
    df = make_frame()
    train, test = split_dataset(df, config(split="time", time_column="when"))
    assert (len(train), len(test)) == (80, 20)
    assert train["when"].max() < test["when"].min()
    assert train["when"].is_monotonic_increasing and test["when"].is_monotonic_increasing


def test_time_split_parses_dates_given_as_text():
    df = make_frame(30)
    df["when"] = df["when"].dt.strftime("%Y-%m-%d")
    train, test = split_dataset(df, config(split="time", time_column="when"))
    assert train["when"].max() < test["when"].min()


def test_time_split_notes_classes_missing_from_later_splits():
    df = make_frame(30)
    df["when"] = np.arange(30)
    df["y"] = ["a", "b"] * 12 + ["c"] * 6  # the newest rows are the only ones of class c
    df.loc[df.index[0], "y"] = "c"  # one old row, so train has every class
    result = preprocess(df, config(split="time", time_column="when"))
    assert any("class 'a'" in note and "no row in the test split" in note for note in result.notes)


def test_time_column_with_missing_or_unparseable_values_is_named():
    df = make_frame(30)
    df["when"] = df["when"].astype(object)
    df.loc[df.index[4], "when"] = None
    with pytest.raises(
        InputDataError, match=r"time_column 'when' has 1 missing value\(s\), first at row 4 \(0-based\)"
    ):
        split_dataset(df, config(split="time", time_column="when"))
    df["when"] = ["2024-01-01"] * 29 + ["not a date"]
    with pytest.raises(
        InputDataError,
        match=r"time_column 'when' has values that are neither numbers nor dates, e.g. 'not a date' at row 29",
    ):
        split_dataset(df, config(split="time", time_column="when"))


def test_a_class_too_small_to_stratify_is_named_with_its_count():
    df = make_frame()
    df.loc[df.index[:1], "y"] = "rare"
    with pytest.raises(
        InputDataError,
        match=r"class 'rare' of label column 'y' has only 1 row\(s\); a stratified split needs at least 2",
    ):
        split_dataset(df, config())


def test_a_small_class_keeps_a_row_in_each_split():
    # 3 rows of 60 would round to none of the 6 test rows: the stratified split still gives it one,
    # taken from the largest class, and keeps the split sizes.
    df = make_frame(60)
    df.loc[df.index[:3], "y"] = "rare"
    train, test = split_dataset(df, config(test_size=0.1))
    assert (len(train), len(test)) == (54, 6)
    assert (train["y"] == "rare").sum() == 2 and (test["y"] == "rare").sum() == 1


def test_the_split_depends_on_the_rows_and_the_seed_only():
    # A row's split is a hash of its position and the seed: the same rows whatever the batches or
    # shards they are read in, and stratified within one row per class.
    df = make_frame(1000)
    train, test = split_dataset(df, config(test_size=0.25))
    again_train, again_test = split_dataset(df.copy(), config(test_size=0.25))
    assert test.index.equals(again_test.index) and train.index.equals(again_train.index)
    assert len(test) == 250 and set(train.index).isdisjoint(test.index)
    shares = df["y"].value_counts(normalize=True)
    test_shares = test["y"].value_counts(normalize=True)
    assert (abs(test_shares - shares) * len(test)).max() <= 1
    other_seed = split_dataset(df, config(test_size=0.25, seed=7))[1]
    assert not test.index.equals(other_seed.index)


def test_too_few_rows_to_split():
    with pytest.raises(InputDataError, match=r"3 row\(s\) are too few to split: test_size=0.9 takes 3"):
        split_dataset(make_frame(3), config(split="random", test_size=0.9))
    with pytest.raises(InputDataError, match=r"3 classes, but the test split gets only 2 row"):
        split_dataset(make_frame(9), config())


# --- bad input ---------------------------------------------------------------------------------


def test_empty_data():
    with pytest.raises(InputDataError, match=r"the dataset has no rows \(columns: id, x, colour"):
        preprocess(make_frame().iloc[:0], config())


def test_unknown_label_column_lists_the_columns():
    with pytest.raises(
        InputDataError,
        match=r"label_column 'species' is not a column of the dataset; its columns are: id, x, colour, flag, when, y",
    ):
        preprocess(make_frame(), config(label_column="species"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"drop_columns": ("id", "nope")}, r"drop_columns: column\(s\) 'nope' not in the dataset"),
        ({"text_columns": ("review",)}, r"text_columns: column\(s\) 'review' not in the dataset"),
        ({"split": "time", "time_column": "ts"}, r"time_column: column\(s\) 'ts' not in the dataset"),
    ],
)
def test_named_columns_that_do_not_exist(overrides, message):
    with pytest.raises(InputDataError, match=message):
        preprocess(make_frame(), config(**overrides))


def test_no_feature_column_left():
    df = make_frame()[["id", "y"]]
    with pytest.raises(InputDataError, match="no feature columns are left once the label and drop_columns"):
        preprocess(df, config())


def test_only_unusable_columns():
    df = make_frame()[["when", "y"]]
    df["empty"] = np.nan
    with pytest.raises(
        InputDataError, match=r"no usable feature column: 'when' a datetime .*'empty' every value"
    ):
        preprocess(df, config(drop_columns=()))


def test_build_preprocessor_refuses_the_label_as_a_feature():
    df = make_frame()
    with pytest.raises(InputDataError, match=r"train_X still has column\(s\) 'y', 'id'"):
        build_preprocessor(df, config())


def test_text_columns_must_hold_text():
    df = make_frame()
    with pytest.raises(InputDataError, match=r"text_columns: column 'x' is numeric, not text"):
        preprocess(df, config(text_columns=("x",)))


def test_text_column_without_words_is_named():
    frame = pd.DataFrame({"code": ["a b", "c d", "e f", "g h"]})
    with pytest.raises(InputDataError, match=r"text column 'code' has no words to build a TF-IDF vocabulary"):
        fit_tiny(frame, text_columns=("code",), **PLAIN)


# --- fitted on train only ----------------------------------------------------------------------


def test_fitted_state_comes_from_the_train_split_only():
    df = make_frame()
    settings = config(outliers="none")
    result = preprocess(df, settings)
    numeric = result.preprocessor.named_transformers_["num"]
    train_median = result.train["x"].median()
    assert numeric.named_steps["impute"].statistics_[0] == pytest.approx(train_median)
    assert train_median != pytest.approx(df["x"].median())
    imputed = result.train["x"].fillna(train_median)
    assert numeric.named_steps["scale"].mean_[0] == pytest.approx(imputed.mean())

    # Values that only occur in test rows leave the fitted transformer exactly as it was.
    changed = df.copy()
    test_row = result.test.index[0]
    changed.loc[test_row, "x"] = 1e9
    changed.loc[test_row, "colour"] = "only-in-test"
    again = preprocess(changed, settings)
    assert again.test.index.tolist() == result.test.index.tolist()
    other = again.preprocessor.named_transformers_
    assert other["num"].named_steps["impute"].statistics_ == pytest.approx(
        numeric.named_steps["impute"].statistics_
    )
    assert other["num"].named_steps["scale"].mean_ == pytest.approx(numeric.named_steps["scale"].mean_)
    assert other["cat"].named_steps["encode"].categories_[0].tolist() == ["blue", "green", "red"]
    train_X = features_and_label(result.train, settings)[0]
    pd.testing.assert_frame_equal(
        result.preprocessor.transform(train_X), again.preprocessor.transform(train_X)
    )


def test_clipping_bounds_come_from_train():
    df = make_frame()
    result = preprocess(df, config(outliers="iqr"))
    clipper = result.preprocessor.named_transformers_["num"].named_steps["clip"]
    q1, q3 = np.nanpercentile(result.train["x"], [25, 75])
    assert clipper.lower_[0] == pytest.approx(q1 - 1.5 * (q3 - q1))
    assert clipper.upper_[0] == pytest.approx(q3 + 1.5 * (q3 - q1))


# --- every option on a tiny frame --------------------------------------------------------------


NUMBERS = pd.DataFrame({"n": [1.0, 2.0, 2.0, np.nan, 10.0]})


@pytest.mark.parametrize(
    ("strategy", "filled"), [("mean", 3.75), ("median", 2.0), ("most_frequent", 2.0), ("constant", -1.0)]
)
def test_numeric_imputation(strategy, filled):
    out = fit_tiny(NUMBERS, numeric_imputation=strategy, fill_value_numeric=-1.0, **PLAIN)
    expected = SimpleImputer(strategy=strategy, fill_value=-1.0).fit_transform(NUMBERS)[:, 0]
    np.testing.assert_allclose(out["num__n"], expected)
    assert out["num__n"].iloc[3] == filled


COLOURS = pd.DataFrame({"c": ["a", "b", "a", None]})


def test_categorical_imputation_most_frequent():
    out = fit_tiny(COLOURS, **PLAIN)
    assert list(out.columns) == ["cat__c_a", "cat__c_b"]
    assert out.to_numpy().tolist() == [[1, 0], [0, 1], [1, 0], [1, 0]]


def test_categorical_imputation_constant():
    out = fit_tiny(COLOURS, categorical_imputation="constant", fill_value_categorical="unknown", **PLAIN)
    assert list(out.columns) == ["cat__c_a", "cat__c_b", "cat__c_unknown"]
    assert out.iloc[3].tolist() == [0, 0, 1]


def test_onehot_encodes_unknown_categories_as_all_zeros():
    preprocessor = fit_preprocessor(COLOURS, config(drop_columns=(), **PLAIN))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Found unknown categories" is the point here
        out = preprocessor.transform(pd.DataFrame({"c": ["zebra", "b"]}))
    assert out.to_numpy().tolist() == [[0, 0], [0, 1]]


def test_ordinal_encoding_matches_sklearn_and_unknown_is_minus_one():
    train = pd.DataFrame({"c": ["b", "a", "c", "a"]})
    preprocessor = fit_preprocessor(train, config(drop_columns=(), encoding="ordinal", **PLAIN))
    expected = OrdinalEncoder().fit(train).transform(train)[:, 0]
    np.testing.assert_array_equal(preprocessor.transform(train)["cat__c"], expected)
    assert preprocessor.transform(pd.DataFrame({"c": ["zebra"]}))["cat__c"].tolist() == [-1]


def test_rare_categories_are_merged_into_infrequent():
    frame = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c", "d"]})
    out = fit_tiny(frame, max_categories=2, **PLAIN)
    assert list(out.columns) == ["cat__c_a", "cat__c_infrequent_sklearn"]
    assert out["cat__c_infrequent_sklearn"].tolist() == [0] * 5 + [1] * 5
    assert len(fit_tiny(frame, max_categories=0, **PLAIN).columns) == 4


SKEWED = pd.DataFrame({"n": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 100]})


def test_iqr_clipping():
    out = fit_tiny(SKEWED, outliers="iqr", scaling="none", add_missing_indicators=False)
    q1, q3 = np.percentile(SKEWED["n"], [25, 75])
    expected = np.clip(SKEWED["n"], q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    np.testing.assert_allclose(out["num__n"], expected)
    assert out["num__n"].iloc[-1] == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert out["num__n"].iloc[-1] < 100


def test_zscore_clipping_with_a_factor():
    out = fit_tiny(
        SKEWED, outliers="zscore", outlier_factor=2.0, scaling="none", add_missing_indicators=False
    )
    mean, std = SKEWED["n"].mean(), SKEWED["n"].std(ddof=0)
    np.testing.assert_allclose(out["num__n"], np.clip(SKEWED["n"], mean - 2 * std, mean + 2 * std))


def test_no_clipping_and_no_clipping_of_a_column_with_zero_spread():
    np.testing.assert_allclose(fit_tiny(SKEWED, **PLAIN)["num__n"], SKEWED["n"])
    # Mostly one value: IQR 0 would clip every other value to it, so the column is left alone.
    mostly_zero = pd.DataFrame({"n": [0.0] * 9 + [5.0]})
    clipper = OutlierClipper("iqr", 1.5).fit(mostly_zero)
    np.testing.assert_allclose(clipper.transform(mostly_zero)[:, 0], mostly_zero["n"])


@pytest.mark.parametrize(
    ("scaling", "scaler"), [("standard", StandardScaler), ("minmax", MinMaxScaler), ("robust", RobustScaler)]
)
def test_scaling_matches_sklearn(scaling, scaler):
    out = fit_tiny(SKEWED, outliers="none", scaling=scaling, add_missing_indicators=False)
    np.testing.assert_allclose(out["num__n"], scaler().fit_transform(SKEWED)[:, 0])


def test_booleans_become_zero_and_one():
    frame = pd.DataFrame(
        {"b": pd.array([True, False, True, None], dtype="boolean"), "plain": [True, False] * 2}
    )
    out = fit_tiny(frame, **PLAIN)
    assert out["bool__b"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert out["bool__plain"].tolist() == [1.0, 0.0, 1.0, 0.0]


REVIEWS = pd.DataFrame(
    {
        "review": [
            "great penguin very happy",
            "terrible fish smell awful",
            "great fish great penguin",
            None,
            "happy penguin eats fish",
            "awful weather very cold",
        ]
    }
)


def test_text_columns_detected_as_text_get_tfidf():
    out = fit_tiny(REVIEWS, **PLAIN)
    vectorizer = TfidfVectorizer(max_features=200)
    expected = vectorizer.fit_transform(REVIEWS["review"].fillna("")).toarray()
    assert list(out.columns) == [f"text_review__{w}" for w in vectorizer.get_feature_names_out()]
    np.testing.assert_allclose(out.to_numpy(), expected)
    assert out.iloc[3].sum() == 0  # missing text is empty text


def test_explicit_text_columns_replace_detection():
    frame = REVIEWS.assign(tag=["cold sea", "warm sea", "cold ice", "cold sea", "warm ice", "cold ice"])
    out = fit_tiny(frame, text_columns=("tag",), **PLAIN)
    assert {c for c in out.columns if c.startswith("text_tag__")} == {
        "text_tag__cold",
        "text_tag__ice",
        "text_tag__sea",
        "text_tag__warm",
    }
    # The free-text column not named is encoded as a category instead, and the plan says why.
    assert any(c.startswith("cat__review_") for c in out.columns)
    plan = {p.column: p for p in plan_columns(frame, config(drop_columns=(), text_columns=("tag",)))}
    assert "free text, but text_columns names other columns" in plan["review"].treatment


def test_missing_indicators_for_columns_with_missing_values_in_train():
    frame = pd.DataFrame({"n": [1.0, np.nan, 3.0], "c": ["a", None, "b"], "full": [1.0, 2.0, 3.0]})
    out = fit_tiny(frame, outliers="none", scaling="none")
    assert out["missing__n"].tolist() == [0.0, 1.0, 0.0]
    assert out["missing__c"].tolist() == [0.0, 1.0, 0.0]
    assert "missing__full" not in out.columns
    # A column complete in train gets no indicator; a missing value there at transform time is imputed.
    later = fit_preprocessor(frame, config(drop_columns=(), outliers="none", scaling="none"))
    assert later.transform(pd.DataFrame({"n": [2.0], "c": ["a"], "full": [np.nan]}))[
        "num__full"
    ].tolist() == [2.0]
    assert not any(c.startswith("missing__") for c in fit_tiny(frame, **PLAIN).columns)


def test_missing_indicator_sees_every_kind_of_missing_value_without_boxing_numbers():
    from sklearn.impute import MissingIndicator

    from mlstages.components.common.estimators.functions import missing_as_nan

    frame = pd.DataFrame(
        {
            "f": [1.0, np.nan, np.inf, -2.0],
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "text": pd.array(["a", "b", None, "d"], dtype="string"),
            "obj": ["x", None, np.nan, "y"],
            "when": pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"]),
            "cat": pd.Categorical(["u", "v", None, "u"]),
        },
        index=[10, 11, 12, 13],
    )
    out = missing_as_nan(frame)
    # Floats only (8 bytes a value, not a boxed object), the same index and columns, NaN exactly
    # where pandas sees a missing value: an infinity is a value, not a gap.
    assert all(dtype == np.float64 for dtype in out.dtypes)
    assert list(out.columns) == list(frame.columns) and list(out.index) == list(frame.index)
    assert out.isna().equals(frame.isna())
    flags = MissingIndicator(features="all", error_on_new=False).fit(out).transform(out)
    assert flags.tolist() == frame.isna().to_numpy().tolist()


def test_datetime_and_all_missing_columns_are_dropped_and_reported():
    df = make_frame()
    df["empty"] = None
    result = preprocess(df, config())
    plan = {p.column: p for p in result.column_plan}
    assert plan["when"].path == "dropped" and "date_parts" in plan["when"].treatment
    assert plan["empty"].path == "dropped"
    assert plan["id"].path == "excluded" and plan["y"].path == "label"
    assert not any("when" in name or "empty" in name for name in result.feature_names)
    assert result.warnings == ("column 'empty' was dropped: every value is missing in the train split",)
    summary = render_markdown(result)
    assert "column &#x27;empty&#x27; was dropped: every value is missing in the train split" in summary
    assert "datetime column &#x27;when&#x27; is not a transformer input feature" in summary


# --- the stage's outputs -----------------------------------------------------------------------


def test_preprocess_result_and_feature_names():
    result = preprocess(make_frame(), config())
    assert result.task == "classification"
    assert result.row_counts == {"train": 80, "test": 20}
    assert result.input_columns == ["x", "colour", "flag", "when"]
    assert result.feature_names == (
        "num__x",
        "cat__colour_blue",
        "cat__colour_green",
        "cat__colour_red",
        "bool__flag",
        "missing__x",
        "missing__colour",
    )
    assert sum(result.label_summary["train"].values()) == 80
    out = result.preprocessor.transform(result.test)
    assert list(out.columns) == list(result.feature_names)
    assert np.isfinite(out.to_numpy(dtype=float)).all()


def test_saved_transformer_loads_and_transforms_the_same(tmp_path):
    result = preprocess(make_frame(), config(text_columns=()))
    metadata = preprocessor_metadata(result)
    json.dumps(metadata)  # JSON-able as it is
    assert metadata["input_columns"] == {
        "x": "numeric",
        "colour": "categorical",
        "flag": "boolean",
        "when": "datetime",
    }
    assert metadata["input_column_order"] == ["x", "colour", "flag", "when"]
    assert metadata["feature_names"] == list(result.feature_names)
    save_estimator(result.preprocessor, tmp_path / "transformer", "transformer", metadata)
    loaded = load_estimator(tmp_path / "transformer", "transformer")
    pd.testing.assert_frame_equal(loaded.transform(result.test), result.preprocessor.transform(result.test))


def test_summary_lists_splits_classes_and_columns_and_escapes_names():
    df = make_frame().rename(columns={"colour": "<b>colour</b>"})
    summary = render_markdown(preprocess(df, config()))
    assert "| train | 80 | 80.0% |" in summary
    assert "## Class balance" in summary and "| c | 27 (33.8%) | 6 (30.0%) |" in summary
    assert "| &lt;b&gt;colour&lt;/b&gt; | categorical | categorical | " in summary
    assert "<b>" not in summary


# --- the compiled plan: the same numbers as the transformer, fast ---------------------------------


def every_kind_frame(n: int = 500, seed: int = 1) -> pd.DataFrame:
    """Every column kind the transformer handles, with missing values: numbers (float with an
    outlier, int, nullable Int64), categories (text with rare values, pandas Categoricals of
    strings and of numbers),
    booleans (numpy and nullable), free text, a datetime; and a three-class label."""
    rng = np.random.default_rng(seed)

    def some(count: int) -> np.ndarray:
        return rng.choice(n, count, replace=False)

    x = rng.normal(10, 2, n)
    x[some(20)] = np.nan
    x[0] = 1000.0
    nullable = pd.array(rng.integers(0, 50, n), dtype="Int64")
    nullable[some(15)] = pd.NA
    colour = rng.choice(
        ["red", "green", "blue", "teal", "plum", "rare1", "rare2"],
        n,
        p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.03, 0.02],
    ).astype(object)
    colour[some(12)] = None
    maybe = pd.array(rng.random(n) > 0.3, dtype="boolean")
    maybe[some(10)] = pd.NA
    words = ["great", "fish", "penguin", "awful", "cold", "happy", "sea", "ice"]
    review = np.array([" ".join(rng.choice(words, 3)) for _ in range(n)], dtype=object)
    review[some(10)] = None
    return pd.DataFrame(
        {
            "x": x,
            "counts": rng.poisson(3, n),
            "nullable": nullable,
            "colour": colour,
            "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
            "grade": pd.Categorical(rng.choice([1, 2, 3], n)),  # categories that are not strings
            "flag": rng.random(n) > 0.5,
            "maybe": maybe,
            "review": review,
            "when": pd.Series(pd.date_range("2024-01-01", periods=n, freq="7h")[rng.permutation(n)]),
            "y": np.array(["a", "b", "c"])[np.arange(n) % 3],
        }
    )


def awkward_rows(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Rows a served model meets: every value missing, categories and words never seen, extremes."""
    return [
        pd.DataFrame({c: [None] for c in frame.columns}, dtype=object),
        frame.iloc[:2].assign(colour="mauve", size="XL", review="zebra", flag=True),
        frame.iloc[2:4].assign(x=[-1e12, 1e12], counts=[10**9, -(10**9)]),
    ]


PLAN_CONFIGS = [
    {},
    {"encoding": "ordinal"},
    {"max_categories": 3},
    {"max_categories": 2, "encoding": "ordinal", "numeric_imputation": "most_frequent"},
    {"outliers": "zscore", "outlier_factor": 2.0, "scaling": "minmax"},
    {"outliers": "none", "scaling": "robust", "numeric_imputation": "constant", "fill_value_numeric": -1.0},
    {"categorical_imputation": "constant", "fill_value_categorical": "unknown", "scaling": "none"},
    {"add_missing_indicators": False, "numeric_imputation": "mean"},
]


@pytest.mark.parametrize("overrides", PLAN_CONFIGS)
def test_the_plan_gives_exactly_the_transformers_numbers(overrides):
    result = preprocess(every_kind_frame(), config(drop_columns=(), **overrides))
    plan = compile_preprocessor(result.preprocessor)
    assert plan is not None
    assert [kind for kind, _ in plan.blocks][:3] == ["numeric", "categorical", "boolean"]
    for part in (result.train, result.test, *awkward_rows(result.test)):
        X = part.drop(columns="y")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the encoder's "unknown categories"
            expected = result.preprocessor.transform(X).to_numpy()
        np.testing.assert_array_equal(plan.transform(X), expected)
        # One row at a time (the dictionary lookup) gives what the batch gives (the hash index).
        for i in range(0, len(X), 37):
            np.testing.assert_array_equal(plan.transform(X.iloc[[i]]), expected[[i]])
    assert (
        plan_mismatch(plan, result.preprocessor, features_and_label(result.train, result.config)[0]) is None
    )


def test_the_plan_on_penguins_and_on_rows_as_the_server_builds_them():
    import palmerpenguins

    penguins = palmerpenguins.load_penguins()
    result = preprocess(penguins, PreprocessConfig(label_column="species"))
    plan = compile_preprocessor(result.preprocessor)
    X = penguins.drop(columns="species")
    np.testing.assert_array_equal(plan.transform(X), result.preprocessor.transform(X).to_numpy())
    # The model server sends numbers as float64 and missing strings as NaN.
    served = X.iloc[[3]].astype({"year": "float64"}).astype({"island": object, "sex": object})
    np.testing.assert_array_equal(plan.transform(served), result.preprocessor.transform(served).to_numpy())


def test_the_plan_leaves_the_rows_it_is_given_unchanged():
    result = preprocess(every_kind_frame(), config(drop_columns=()))
    X = features_and_label(result.test, result.config)[0]
    before = X.copy()
    compile_preprocessor(result.preprocessor).transform(X)
    pd.testing.assert_frame_equal(X, before)


def test_the_plan_refuses_what_the_transformer_refuses_and_names_it():
    result = preprocess(every_kind_frame(), config(drop_columns=()))
    plan = compile_preprocessor(result.preprocessor)
    X = features_and_label(result.test, result.config)[0]
    with pytest.raises(
        InputDataError, match=r"the rows lack column\(s\) 'colour', 'flag' that the preprocessor"
    ):
        plan.transform(X.drop(columns=["colour", "flag"]))
    infinite = X.assign(x=[1.0] * (len(X) - 1) + [np.inf])
    with pytest.raises(
        InputDataError, match=rf"column 'x' has an infinite value at row {len(X) - 1} \(0-based\)"
    ):
        plan.transform(infinite)
    with pytest.raises(ValueError, match="infinity"):
        result.preprocessor.transform(infinite)
    text = X.astype({"x": object}).assign(x="ten")
    for transform in (plan.transform, result.preprocessor.transform):
        with pytest.raises(ValueError, match="could not convert string to float: 'ten'"):
            transform(text)


def test_plan_mismatch_names_the_feature_and_row_where_a_plan_is_wrong():
    result = preprocess(every_kind_frame(), config(drop_columns=(), outliers="none"))
    plan = compile_preprocessor(result.preprocessor)
    kind, numeric = plan.blocks[0]
    assert kind == "numeric" and numeric["columns"][0] == "x"
    wrong = dict(numeric, statistics=numeric["statistics"] + 1.0)  # a median off by one
    tampered = type(plan)(plan.input_columns, (("numeric", wrong), *plan.blocks[1:]))
    X = features_and_label(result.train, result.config)[0]
    first_missing = int(np.flatnonzero(X["x"].isna())[0])
    message = plan_mismatch(tampered, result.preprocessor, X.iloc[: first_missing + 1])
    assert message is not None
    assert message.startswith(f"rows of the data: feature 'num__x' of row {first_missing}: the plan gives")


def test_a_block_the_plan_cannot_compile_is_applied_by_its_fitted_transformer():
    from sklearn.compose import ColumnTransformer

    from mlstages.components.common.estimators.fast_transform import FITTED_BLOCK

    frame = every_kind_frame()
    X = frame[["x", "counts"]]
    plain = ColumnTransformer([("num", StandardScaler(), ["x", "counts"])]).fit(X.fillna(0))
    plan = compile_preprocessor(plain)
    assert [kind for kind, _ in plan.blocks] == [FITTED_BLOCK]
    np.testing.assert_array_equal(plan.transform(X.fillna(0)), plain.transform(X.fillna(0)))
    assert compile_preprocessor(build_preprocessor(X, config(drop_columns=()))) is None  # not fitted
    assert compile_preprocessor(StandardScaler().fit(X.fillna(0))) is None


# --- rows without a label (issue 12 item 5) -----------------------------------------------------


def test_rows_without_a_label_are_dropped_and_counted():
    df = make_frame()
    df.loc[df.index[[4, 50, 51]], "y"] = None
    result = preprocess(df, config())
    assert result.unlabelled_rows_dropped == 3
    assert sum(result.row_counts.values()) == 97
    assert not set(df.index[[4, 50, 51]]) & (set(result.train.index) | set(result.test.index))
    note = "3 row(s) with no 'y' label were dropped before the split (unlabelled_rows='drop')."
    assert note in result.notes
    assert "3 row(s) with no &#x27;y&#x27; label were dropped before the split" in render_markdown(result)
    assert preprocessor_metadata(result)["unlabelled_rows_dropped"] == 3


def test_rows_without_a_label_fail_when_asked_naming_the_rows():
    df = make_frame()
    df.loc[df.index[[4, 50]], "y"] = None
    with pytest.raises(
        InputDataError,
        match=r"label column 'y' of the dataset has 2 missing value\(s\), first at row\(s\) 4, 50 "
        r"\(0-based\); fill them, or drop those rows \(preprocess does with unlabelled_rows='drop'\)",
    ):
        preprocess(df, config(unlabelled_rows="fail"))


def test_a_label_missing_in_every_row_is_an_error():
    with pytest.raises(InputDataError, match=r"label column 'y' of the dataset is missing in all 100 rows"):
        preprocess(make_frame().assign(y=None), config())
    with pytest.raises(ParameterError, match="parameter unlabelled_rows='skip' is not one of"):
        config(unlabelled_rows="skip")
