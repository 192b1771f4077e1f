"""The engineer_features logic: derived features, selection, the fitted feature pipeline."""

import copy
import json
import pickle
import warnings
from html import escape as html_escape

import numpy as np
import palmerpenguins
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.feature_selection import chi2, mutual_info_classif
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mlstages.components.common.artifacts import load_estimator, save_estimator
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.estimators.derived import DerivedFeatures, validate_derived
from mlstages.components.common.estimators.selection import CandidateFeatures, SelectedColumns
from mlstages.components.engineer_features.engineer_features import (
    FeatureConfig,
    check_matches_preprocess,
    column_variances,
    engineer_features,
    feature_metadata,
    preprocessor_scaling,
    render_html,
    render_markdown,
    select_features,
)
from mlstages.components.preprocess.columns import build_preprocessor
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess

BILL_RATIO = {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]}
LOG_MASS = {"name": "log_mass", "kind": "log", "columns": ["body_mass_g"]}


@pytest.fixture(scope="module")
def penguins():
    """preprocess' result on the penguins: raw splits and the fitted transformer."""
    return preprocess(palmerpenguins.load_penguins(), PreprocessConfig(label_column="species"))


def feature_config(**overrides) -> FeatureConfig:
    return FeatureConfig(**{"label_column": "species", "task": "classification", **overrides})


def derive(frame: pd.DataFrame, *specs, scaling: str = "none") -> pd.DataFrame:
    derived = DerivedFeatures(specs, scaling).set_output(transform="pandas").fit(frame)
    return derived.transform(frame)


# --- the spec ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("derived", "message"),
    [
        ("bill_ratio", r"parameter derived_features must be a list of feature specs \(dicts\), got str"),
        (["ratio"], r"derived_features\[0\] must be a dict such as"),
        ([{"name": "r", "columns": ["a", "b"]}], r"derived_features\[0\] \('r'\) has no 'kind' key"),
        (
            [BILL_RATIO, {"name": "sq", "kind": "square", "columns": ["a"]}],
            r"derived_features\[1\] \('sq'\): unknown kind 'square'; kinds are: 'ratio', 'log'",
        ),
        (
            [{"name": "r", "kind": "ratio", "columns": ["a"]}],
            r"derived_features\[0\] \('r'\): kind 'ratio' takes exactly 2 column\(s\), got 1: \['a'\]",
        ),
        (
            [{"name": "i", "kind": "interaction", "columns": ["a"]}],
            r"derived_features\[0\] \('i'\): kind 'interaction' takes at least 2 column\(s\), got 1",
        ),
        (
            [{"name": "l", "kind": "log", "columns": "a"}],
            r"derived_features\[0\] \('l'\): 'columns' must be a list of column names, got 'a'",
        ),
        (
            [{"name": "l", "kind": "log", "columns": ["a"], "n_bins": 3}],
            r"derived_features\[0\] \('l'\): unknown key\(s\) 'n_bins' for kind 'log'; it takes: 'name', 'kind', 'columns'",
        ),
        (
            [{"name": "d", "kind": "date_parts", "columns": ["t"], "parts": ["week"]}],
            r"derived_features\[0\] \('d'\): unknown date part\(s\) \['week'\]; parts are: year, month",
        ),
        (
            [{"name": "b", "kind": "bin", "columns": ["a"], "n_bins": 1}],
            r"derived_features\[0\] \('b'\): 'n_bins' must be an integer of at least 2, got 1",
        ),
        (
            [{"name": "i", "kind": "interaction", "columns": ["a", "b"], "pairwise": "yes"}],
            r"derived_features\[0\] \('i'\): 'pairwise' must be true or false, got 'yes'",
        ),
        (
            [{"name": "", "kind": "log", "columns": ["a"]}],
            r"derived_features\[0\]: 'name' must be a non-empty string, got ''",
        ),
        (
            [{"name": "r", "kind": "ratio", "columns": ["a", "a"]}],
            r"derived_features\[0\] \('r'\): 'columns' lists a column more than once: \['a', 'a'\]",
        ),
        (
            [{"name": "d", "kind": "date_parts", "columns": ["t"], "parts": []}],
            r"derived_features\[0\] \('d'\): 'parts' must be a non-empty list drawn from",
        ),
        (
            [BILL_RATIO, {**LOG_MASS, "name": "bill_ratio"}],
            r"gives more than one feature the name\(s\) 'bill_ratio'",
        ),
    ],
)
def test_bad_derived_specs_name_the_entry(derived, message):
    with pytest.raises(ParameterError, match=message):
        feature_config(derived=derived)


def test_spec_is_normalised_with_defaults():
    specs = validate_derived(
        [
            {"name": "b", "kind": "bin", "columns": ["a"], "n_bins": 4.0},  # KFP passes numbers as floats
            {"name": "d", "kind": "date_parts", "columns": ["t"]},
            {"name": "i", "kind": "interaction", "columns": ["a", "c"]},
        ]
    )
    assert specs[0]["n_bins"] == 4 and isinstance(specs[0]["n_bins"], int)
    assert specs[1]["parts"] == ["year", "month", "day", "dayofweek", "hour"]
    assert specs[2]["pairwise"] is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task": "auto"}, r"parameter task='auto' is not one of: 'classification', 'regression'"),
        ({"selection": "pca"}, r"parameter selection='pca' is not one of: 'none', 'variance'"),
        ({"selection": "chi2", "task": "regression"}, r"selection='chi2' .* needs task='classification'"),
        (
            {"selection": "mutual_info", "max_features": -1},
            r"parameter max_features=-1 must be an integer >= 0",
        ),
        ({"max_features": 5}, r"parameter max_features=5 only applies with a selection method"),
        ({"variance_threshold": -0.1}, r"parameter variance_threshold=-0.1 must be a number >= 0"),
        ({"label_column": " "}, r"parameter label_column is empty"),
    ],
)
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(ParameterError, match=message):
        feature_config(**overrides)


# --- each derived kind, against values computed by hand ------------------------------------------


def test_ratio_of_raw_values_with_zero_denominators_imputed():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [2.0, 0.0, 4.0, np.nan]})
    out = derive(frame, {"name": "r", "kind": "ratio", "columns": ["a", "b"]})
    # 2/0 and 4/NaN are missing, then imputed with the median of 0.5 and 0.75.
    assert out["r"].tolist() == [0.5, 0.625, 0.75, 0.625]


def test_log_shifts_by_the_train_minimum():
    frame = pd.DataFrame({"m": [2.0, 5.0, 11.0]})
    derived = DerivedFeatures(({"name": "l", "kind": "log", "columns": ["m"]},), "none").fit(frame)
    assert derived.log_shifts_ == {"l": 2.0}
    np.testing.assert_allclose(derived.transform(frame)[:, 0], np.log1p([0.0, 3.0, 9.0]))
    # Below the train minimum maps to log1p(0); a missing value gets the train median, log1p(3).
    later = derived.transform(pd.DataFrame({"m": [1.0, np.nan]}))[:, 0]
    np.testing.assert_allclose(later, [0.0, np.log1p(3.0)])


@pytest.mark.parametrize("as_text", [False, True])
def test_date_parts_from_datetimes_or_date_text(as_text):
    stamps = ["2024-03-15 10:30", "2023-12-31 23:00"]
    frame = pd.DataFrame({"t": stamps if as_text else pd.to_datetime(stamps)})
    out = derive(frame, {"name": "d", "kind": "date_parts", "columns": ["t"]})
    assert list(out.columns) == ["d_year", "d_month", "d_day", "d_dayofweek", "d_hour"]
    # 2024-03-15 is a Friday (4), 2023-12-31 a Sunday (6).
    assert out.to_numpy().tolist() == [[2024, 3, 15, 4, 10], [2023, 12, 31, 6, 23]]
    chosen = derive(frame, {"name": "d", "kind": "date_parts", "columns": ["t"], "parts": ["month", "hour"]})
    assert list(chosen.columns) == ["d_month", "d_hour"]


def test_date_parts_reject_text_that_is_not_dates_at_fit_and_impute_it_later():
    spec = {"name": "d", "kind": "date_parts", "columns": ["t"], "parts": ["year"]}
    with pytest.raises(
        InputDataError,
        match=r"derived_features\[0\] \('d'\): column 't' has values that are not dates, e.g. 'soon' at row 1",
    ):
        DerivedFeatures((spec,)).fit(pd.DataFrame({"t": ["2024-01-01", "soon"]}))
    derived = DerivedFeatures((spec,), "none").fit(pd.DataFrame({"t": ["2020-01-01", "2022-01-01"]}))
    assert derived.transform(pd.DataFrame({"t": ["garbage"]}))[:, 0].tolist() == [2021.0]


def test_bin_uses_train_quantile_edges():
    frame = pd.DataFrame({"v": np.arange(10.0)})
    derived = DerivedFeatures(({"name": "b", "kind": "bin", "columns": ["v"], "n_bins": 5},), "none").fit(
        frame
    )
    np.testing.assert_allclose(derived.bin_edges_["b"], [1.8, 3.6, 5.4, 7.2])
    assert derived.transform(frame)[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # Values beyond what train saw fall in the end bins.
    assert derived.transform(pd.DataFrame({"v": [-5.0, 100.0]}))[:, 0].tolist() == [0, 4]


def test_interaction_product_and_pairwise():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]})
    out = derive(frame, {"name": "abc", "kind": "interaction", "columns": ["a", "b", "c"]})
    assert out["abc"].tolist() == [15.0, 48.0]
    pairs = derive(frame, {"name": "p", "kind": "interaction", "columns": ["a", "b", "c"], "pairwise": True})
    assert list(pairs.columns) == ["p_a_x_b", "p_a_x_c", "p_b_x_c"]
    assert pairs.to_numpy().tolist() == [[3.0, 5.0, 15.0], [8.0, 12.0, 24.0]]


def test_derived_features_are_scaled_like_the_preprocessor():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 10.0], "b": [2.0, 2.0, 1.0, 4.0]})
    spec = {"name": "r", "kind": "ratio", "columns": ["a", "b"]}
    raw = (frame["a"] / frame["b"]).to_frame()
    np.testing.assert_allclose(
        derive(frame, spec, scaling="standard")["r"], StandardScaler().fit_transform(raw)[:, 0]
    )
    np.testing.assert_allclose(
        derive(frame, spec, scaling="minmax")["r"], MinMaxScaler().fit_transform(raw)[:, 0]
    )


# --- selection, against sklearn's own scores -----------------------------------------------------


@pytest.fixture(scope="module")
def candidates():
    rng = np.random.default_rng(3)
    n = 150
    y = pd.Series(np.array(["p", "q", "r"])[np.arange(n) % 3], name="y")
    codes = pd.Series(np.arange(n) % 3)
    Z = pd.DataFrame(
        {
            "signal": codes + rng.normal(0, 0.3, n),
            "wide_noise": rng.normal(0, 2, n),
            "narrow_noise": rng.normal(0, 0.1, n),
            "constant": np.ones(n),
        }
    )
    return Z, y


def selection(Z, y, **overrides):
    return select_features(Z, y, feature_config(label_column="y", **overrides), {})


def report_by_feature(result):
    return {row["feature"]: row for row in result.rows}


def test_variance_threshold_and_report(candidates):
    Z, y = candidates
    result = selection(Z, y, selection="variance", variance_threshold=0.5)
    rows = report_by_feature(result)
    assert result.kept == ("signal", "wide_noise")
    assert rows["narrow_noise"]["score"] == pytest.approx(Z["narrow_noise"].var(ddof=0))
    assert rows["narrow_noise"]["reason"].startswith("variance 0.0")
    assert rows["narrow_noise"]["reason"].endswith("at or below threshold 0.5")
    assert rows["constant"]["score"] == 0.0
    assert rows["wide_noise"]["status"] == "kept"
    assert rows["wide_noise"]["reason"] == "variance above threshold 0.5, rank 1"


def test_column_variances_by_blocks_equal_those_of_the_whole_array():
    # Computed a block of columns at a time to keep two copies of the sample out of memory: the
    # figures must be nanvar's on the whole array, NaN and constant columns included (bit for bit
    # from blocks of a few columns; numpy sums a one- or two-column block in another order).
    rng = np.random.default_rng(3)
    values = rng.normal(size=(5_000, 37)) * rng.uniform(0.1, 100, size=37)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[:, 4] = 7.25  # constant: 0, not a rounding error
    values[:, 9] = np.nan  # all missing: NaN, as nanvar gives
    Z = pd.DataFrame(values, columns=[f"f{i}" for i in range(37)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN column
        whole = np.nanvar(values, axis=0)
        whole[np.ptp(values, axis=0) == 0] = 0.0
        for block in (5, 16, 37, 100):
            np.testing.assert_array_equal(column_variances(Z, block_columns=block), whole)
        for block in (1, 2):
            np.testing.assert_allclose(column_variances(Z, block_columns=block), whole, rtol=1e-13)
        assert column_variances(Z)[4] == 0.0


def test_max_features_caps_by_rank(candidates):
    Z, y = candidates
    result = selection(Z, y, selection="variance", max_features=1)
    rows = report_by_feature(result)
    assert result.kept == ("wide_noise",)
    assert rows["signal"]["reason"] == "rank 2 > max_features 1"
    assert rows["narrow_noise"]["reason"] == "rank 3 > max_features 1"
    assert rows["constant"]["reason"] == "variance 0 at or below threshold 0"


def test_mutual_information(candidates):
    Z, y = candidates
    result = selection(Z, y, selection="mutual_info", max_features=1, seed=5)
    expected = mutual_info_classif(Z.to_numpy(), y.to_numpy(), random_state=5)
    scores = [report_by_feature(result)[name]["score"] for name in Z.columns]
    np.testing.assert_allclose(scores, expected)
    assert result.kept == ("signal",)
    assert report_by_feature(result)["constant"]["reason"] == "no mutual information with the label (0)"
    assert result.rows[0]["feature"] == "signal" and result.rows[0]["rank"] == 1


def test_chi_squared_on_min_max_scaled_copies(candidates):
    Z, y = candidates
    result = selection(Z, y, selection="chi2")
    with np.errstate(invalid="ignore", divide="ignore"):
        expected, _ = chi2(MinMaxScaler().fit_transform(Z), y)
    scores = [report_by_feature(result)[name]["score"] for name in Z.columns]
    np.testing.assert_allclose(scores, np.nan_to_num(expected))
    assert "constant" not in result.kept and "signal" in result.kept
    assert "min-max scaled" in result.notes[0]


def test_l1_logistic_regression(candidates):
    Z, y = candidates
    result = selection(Z, y, selection="l1", seed=1)
    model = LogisticRegression(l1_ratio=1.0, solver="saga", C=1.0, max_iter=5000, random_state=1).fit(Z, y)
    scores = [report_by_feature(result)[name]["score"] for name in Z.columns]
    np.testing.assert_allclose(scores, np.abs(model.coef_).sum(axis=0))
    assert "signal" in result.kept
    assert report_by_feature(result)["constant"]["reason"] == "L1 coefficient zero (|coef| <= 1e-05)"


def test_l1_lasso_for_regression(candidates):
    Z, _ = candidates
    target = pd.Series(3 * Z["signal"] + np.random.default_rng(0).normal(0, 0.1, len(Z)), name="y")
    result = select_features(
        Z, target, FeatureConfig(label_column="y", task="regression", selection="l1"), {}
    )
    assert result.kept[0] == "signal"
    assert "constant" not in result.kept


def test_every_candidate_is_reported_once_and_none_keeps_all(candidates):
    Z, y = candidates
    result = selection(Z, y)
    assert sorted(row["feature"] for row in result.rows) == sorted(Z.columns)
    assert result.kept == tuple(Z.columns)
    assert {row["reason"] for row in result.rows} == {"no selection"}


def test_selection_that_keeps_nothing_fails(candidates):
    Z, y = candidates
    with pytest.raises(InputDataError, match=r"selection='variance' kept none of the 4 candidate features"):
        selection(Z, y, selection="variance", variance_threshold=100.0)


# --- the feature pipeline on the penguins ------------------------------------------------------


def test_penguins_pipeline_turns_raw_rows_into_finite_numbers(penguins):
    settings = feature_config(derived=[BILL_RATIO, LOG_MASS], selection="mutual_info", max_features=10)
    result = engineer_features(penguins.train, penguins.preprocessor, settings)
    # The selection costs nothing in cross-validation here (same score with 10 features), so it stays.
    assert result.selection_check is not None and result.selection_check.kept
    assert result.selection_check.with_selection >= result.selection_check.without_selection
    assert len(result.feature_names) == 10
    assert set(result.derived_names) == {"bill_ratio", "log_mass"}
    assert len(result.report) == len(result.candidate_names) == len(penguins.feature_names) + 2

    test = penguins.test.drop(columns="species").copy()
    test.loc[test.index[0], "island"] = "Atlantis"  # an island train never saw
    test.loc[test.index[1], ["bill_length_mm", "bill_depth_mm", "body_mass_g", "sex"]] = np.nan
    test.loc[test.index[2], "bill_depth_mm"] = 0.0  # a zero denominator
    out = result.feature_pipeline.transform(test)
    assert list(out.columns) == list(result.feature_names)
    assert len(out) == len(test)
    assert np.isfinite(out.to_numpy(dtype=float)).all()
    islands = [name for name in result.feature_names if name.startswith("cat__island_")]
    assert islands and (out.loc[test.index[0], islands] == 0).all()
    # The pipeline takes the raw feature columns; the label is not one of them.
    assert list(result.feature_pipeline.feature_names_in_) == penguins.input_columns


def test_derived_features_come_from_raw_values_not_scaled_ones(penguins):
    result = engineer_features(penguins.train, penguins.preprocessor, feature_config(derived=[BILL_RATIO]))
    derived = result.feature_pipeline.named_steps["union"].derived_
    rows = penguins.test.dropna(subset=["bill_length_mm", "bill_depth_mm"])
    unscaled = derived.scaler_.inverse_transform(derived.transform(rows))[:, 0]
    np.testing.assert_allclose(unscaled, rows["bill_length_mm"] / rows["bill_depth_mm"])
    assert result.scaling == "standard" == preprocessor_scaling(penguins.preprocessor)


def test_the_preprocessor_is_frozen_and_never_refitted(penguins):
    before = pickle.dumps(penguins.preprocessor)
    medians = penguins.preprocessor.named_transformers_["num"].named_steps["impute"].statistics_.copy()
    # Different data on purpose: a refit would move the medians.
    shifted = penguins.train.assign(bill_length_mm=penguins.train["bill_length_mm"] + 100)
    result = engineer_features(shifted, penguins.preprocessor, feature_config(derived=[BILL_RATIO]))
    assert pickle.dumps(penguins.preprocessor) == before
    np.testing.assert_array_equal(
        penguins.preprocessor.named_transformers_["num"].named_steps["impute"].statistics_, medians
    )
    frozen = result.feature_pipeline.named_steps["union"].preprocessor
    assert isinstance(frozen, FrozenEstimator) and frozen.estimator is penguins.preprocessor


def test_without_derived_features_the_output_is_the_preprocessor_output(penguins):
    result = engineer_features(penguins.train, penguins.preprocessor, feature_config())
    assert result.feature_names == penguins.feature_names
    X = penguins.test.drop(columns="species")
    pd.testing.assert_frame_equal(result.feature_pipeline.transform(X), penguins.preprocessor.transform(X))


def test_saved_feature_pipeline_loads_and_transforms_the_same(penguins, tmp_path):
    result = engineer_features(
        penguins.train,
        penguins.preprocessor,
        feature_config(derived=[BILL_RATIO, LOG_MASS], selection="l1", max_features=6),
    )
    metadata = feature_metadata(result, penguins.train)
    json.dumps(metadata)
    assert metadata["feature_names"] == list(result.feature_names)
    assert metadata["input_columns"]["island"] == "categorical"
    assert metadata["input_column_order"] == penguins.input_columns
    save_estimator(result.feature_pipeline, tmp_path / "features", "features", metadata)
    loaded = load_estimator(tmp_path / "features", "features")
    X = penguins.test.drop(columns="species")
    pd.testing.assert_frame_equal(loaded.transform(X), result.feature_pipeline.transform(X))


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_column_in_a_derived_feature_is_named(penguins):
    settings = feature_config(derived=[BILL_RATIO, {**LOG_MASS, "columns": ["body_mass"]}])
    with pytest.raises(
        ParameterError,
        match=r"derived_features\[1\] \('log_mass'\): column 'body_mass' is not available: the data has no such "
        r"column; the columns are: island, bill_length_mm",
    ):
        engineer_features(penguins.train, penguins.preprocessor, settings)


def test_derived_from_the_label_or_a_dropped_column_says_why(penguins):
    with pytest.raises(ParameterError, match=r"column 'species' is not available: it is the label column"):
        engineer_features(
            penguins.train,
            penguins.preprocessor,
            feature_config(derived=[{"name": "s", "kind": "log", "columns": ["species"]}]),
        )
    dropped = preprocess(
        palmerpenguins.load_penguins(), PreprocessConfig(label_column="species", drop_columns=("year",))
    )
    with pytest.raises(
        ParameterError, match=r"column 'year' is not available: it is not an input of the preprocessor"
    ):
        engineer_features(
            dropped.train,
            dropped.preprocessor,
            feature_config(derived=[{"name": "y", "kind": "log", "columns": ["year"]}]),
        )


def test_derived_kind_on_the_wrong_column_type(penguins):
    with pytest.raises(
        ParameterError,
        match=r"derived_features\[0\] \('r'\): kind 'ratio' needs numeric columns, but column 'island' is categorical",
    ):
        engineer_features(
            penguins.train,
            penguins.preprocessor,
            feature_config(derived=[{"name": "r", "kind": "ratio", "columns": ["island", "year"]}]),
        )


def test_date_parts_of_a_number_and_rows_without_a_source_column(penguins):
    with pytest.raises(
        ParameterError,
        match=r"derived_features\[0\] \('d'\): date_parts needs a datetime column or dates as text, but column "
        r"'year' is numeric",
    ):
        engineer_features(
            penguins.train,
            penguins.preprocessor,
            feature_config(derived=[{"name": "d", "kind": "date_parts", "columns": ["year"]}]),
        )
    derived = DerivedFeatures((BILL_RATIO,)).fit(penguins.train)
    with pytest.raises(
        InputDataError,
        match=r"the rows lack column\(s\) 'bill_depth_mm' that derived features are computed from",
    ):
        derived.transform(penguins.test.drop(columns="bill_depth_mm"))


def test_derived_name_that_clashes_with_a_preprocessed_feature(penguins):
    with pytest.raises(
        ParameterError, match=r"derived feature name\(s\) 'num__year' are already preprocessed"
    ):
        engineer_features(
            penguins.train,
            penguins.preprocessor,
            feature_config(derived=[{"name": "num__year", "kind": "log", "columns": ["year"]}]),
        )


def test_unfitted_preprocessor_and_mismatched_train_split(penguins):
    X = penguins.train.drop(columns="species")
    unfitted = build_preprocessor(X, PreprocessConfig(label_column="species"))
    with pytest.raises(InputDataError, match="the transformer is not a fitted preprocessor"):
        engineer_features(penguins.train, unfitted, feature_config())
    with pytest.raises(InputDataError, match=r"the train split lacks column\(s\) 'sex' that the transformer"):
        engineer_features(penguins.train.drop(columns="sex"), penguins.preprocessor, feature_config())
    with pytest.raises(InputDataError, match=r"label_column 'kind' is not a column of the train split"):
        engineer_features(penguins.train, penguins.preprocessor, feature_config(label_column="kind"))


def test_config_must_match_the_preprocess_run():
    check_matches_preprocess(feature_config(), {"label_column": "species", "task": "classification"})
    with pytest.raises(
        ParameterError,
        match=r"parameter task='regression' differs from the preprocess run .* \(task='classification'\)",
    ):
        check_matches_preprocess(
            FeatureConfig(label_column="species", task="regression"),
            {"label_column": "species", "task": "classification"},
        )


# --- reports -----------------------------------------------------------------------------------


def test_reports_list_every_candidate_and_escape_names(penguins):
    spec = {"name": "<i>ratio</i>", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]}
    result = engineer_features(
        penguins.train,
        penguins.preprocessor,
        feature_config(derived=[spec], selection="mutual_info", max_features=5),
    )
    html = render_html(result)
    assert html.startswith("<!DOCTYPE html>")
    assert "<i>" not in html and "&lt;i&gt;ratio&lt;/i&gt;" in html
    for name in result.candidate_names:
        assert f"<td>{html_escape(name)}</td>" in html
    # Five features by mutual information score worse than all of them in cross-validation: the
    # selection is undone, every candidate kept, and the report gives both scores.
    check = result.selection_check
    assert check is not None and not check.kept and check.with_selection < check.without_selection
    assert (check.selected_features, check.all_features) == (5, len(result.candidate_names))
    assert result.feature_names == result.candidate_names
    assert html.count(">kept<") == len(result.candidate_names)
    assert "the selection makes it worse, so every candidate feature is kept" in html
    assert f"{check.with_selection:.4g} with the 5 selected features" in html
    assert html.count("kept: the selection makes the model worse") == len(result.candidate_names) - 5
    summary = render_markdown(result)
    assert "16 candidate features (1 derived), selection mutual_info, max_features 5: 16 kept." in summary
    assert "| num__bill_length_mm | preprocessed |" in summary
    assert "<i>" not in summary


# --- the fast feature pipeline against the scikit-learn composition it replaces ------------------


def feature_union_reference(result, preprocessor, train_X: pd.DataFrame) -> Pipeline:
    """The feature pipeline as scikit-learn's own composition, from the same fitted preprocessor:
    FeatureUnion(FrozenEstimator(preprocessor), DerivedFeatures), then a ColumnTransformer that
    passes the selected columns through by name."""
    union = FeatureUnion(
        [
            ("preprocessed", FrozenEstimator(preprocessor)),
            ("derived", DerivedFeatures(result.config.derived, result.scaling)),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    candidates = union.fit(train_X).transform(train_X)
    select = ColumnTransformer(
        [("selected", "passthrough", list(result.feature_names))],
        remainder="drop",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return Pipeline([("union", union), ("select", select.fit(candidates))])


def served_rows(test: pd.DataFrame) -> pd.DataFrame:
    """Test rows plus the awkward ones: an unseen island, missing values, a zero denominator."""
    rows = test.drop(columns="species").copy()
    rows.loc[rows.index[0], "island"] = "Atlantis"
    rows.loc[rows.index[1], ["bill_length_mm", "bill_depth_mm", "body_mass_g", "sex"]] = np.nan
    rows.loc[rows.index[2], "bill_depth_mm"] = 0.0
    return rows


@pytest.mark.parametrize(
    ("preprocess_overrides", "overrides"),
    [
        ({}, {"derived": [BILL_RATIO, LOG_MASS], "selection": "mutual_info", "max_features": 10}),
        ({"encoding": "ordinal", "scaling": "minmax"}, {"derived": [BILL_RATIO], "selection": "variance"}),
        (
            {"outliers": "zscore", "scaling": "robust", "max_categories": 2},
            {
                "derived": [
                    {"name": "mass_bin", "kind": "bin", "columns": ["body_mass_g"], "n_bins": 4},
                    {
                        "name": "p",
                        "kind": "interaction",
                        "columns": ["bill_length_mm", "year"],
                        "pairwise": True,
                    },
                    {
                        "name": "seen",
                        "kind": "date_parts",
                        "columns": ["seen"],
                        "parts": ["month", "dayofweek"],
                    },
                ]
            },
        ),
    ],
)
def test_the_feature_pipeline_gives_exactly_what_a_feature_union_gives(preprocess_overrides, overrides):
    data = palmerpenguins.load_penguins()
    # A date as text (date_parts parses it); the preprocessor itself drops datetime columns.
    data["seen"] = pd.date_range("2007-11-01", periods=len(data), freq="38h").strftime("%Y-%m-%d %H:%M")
    prepared = preprocess(data, PreprocessConfig(label_column="species", **preprocess_overrides))
    result = engineer_features(prepared.train, prepared.preprocessor, feature_config(**overrides))
    train_X = prepared.train[list(result.input_columns)]
    reference = feature_union_reference(result, prepared.preprocessor, train_X)
    rows = served_rows(prepared.test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the encoder's "unknown categories", on purpose
        expected = reference.transform(rows)
    pd.testing.assert_frame_equal(result.feature_pipeline.transform(rows), expected, check_exact=True)
    for i in range(len(rows)):  # one row at a time, as the model server calls it
        pd.testing.assert_frame_equal(
            result.feature_pipeline.transform(rows.iloc[[i]]), expected.iloc[[i]], check_exact=True
        )
    assert result.feature_pipeline.named_steps["union"].plan_ is not None


def test_array_output_holds_the_same_numbers(penguins):
    result = engineer_features(
        penguins.train, penguins.preprocessor, feature_config(derived=[BILL_RATIO], selection="variance")
    )
    rows = served_rows(penguins.test)
    frame = result.feature_pipeline.transform(rows)
    arrays = copy.deepcopy(result.feature_pipeline).set_output(transform="default")
    values = arrays.transform(rows)
    assert isinstance(values, np.ndarray)
    np.testing.assert_array_equal(values, frame.to_numpy())
    assert list(arrays.get_feature_names_out()) == list(result.feature_names)


def test_a_preprocessor_from_elsewhere_is_applied_with_its_own_transform_and_the_summary_says_so(penguins):
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    train_X = penguins.train[numeric]
    own = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric)]).set_output(
        transform="pandas"
    )
    own.fit(train_X)
    result = engineer_features(
        penguins.train[[*numeric, "species"]], own, feature_config(derived=[BILL_RATIO])
    )
    plan = result.feature_pipeline.named_steps["union"].plan_
    assert [kind for kind, _ in plan.blocks] == ["fitted"]  # applied by its own fitted transform
    assert any("not made by the preprocess stage" in note for note in result.notes)
    assert "not made by the preprocess stage" in render_markdown(result)
    rows = penguins.test[numeric]
    expected = feature_union_reference(result, own, train_X).transform(rows)
    pd.testing.assert_frame_equal(result.feature_pipeline.transform(rows), expected, check_exact=True)


def test_selected_columns_keeps_columns_by_position_and_by_name():
    frame = pd.DataFrame([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], columns=["a", "b", "c"], index=[7, 9])
    selected = SelectedColumns(["c", "a"]).fit(frame)
    np.testing.assert_array_equal(selected.transform(frame), [[3.0, 1.0], [6.0, 4.0]])
    np.testing.assert_array_equal(selected.transform(frame.to_numpy()), [[3.0, 1.0], [6.0, 4.0]])
    # Other columns, or another order: by name.
    np.testing.assert_array_equal(selected.transform(frame[["c", "b", "a"]]), [[3.0, 1.0], [6.0, 4.0]])
    out = SelectedColumns(["c", "a"]).set_output(transform="pandas").fit(frame).transform(frame)
    assert list(out.columns) == ["c", "a"] and list(out.index) == [7, 9]
    everything = SelectedColumns(["a", "b", "c"]).fit(frame)
    assert everything.keeps_all_
    np.testing.assert_array_equal(everything.transform(frame), frame.to_numpy())


def test_selected_columns_and_candidate_features_name_what_is_wrong(penguins):
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
    with pytest.raises(InputDataError, match=r"the candidate features lack the selected column\(s\) 'z'"):
        SelectedColumns(["a", "z"]).fit(frame)
    selected = SelectedColumns(["b"]).fit(frame)
    with pytest.raises(InputDataError, match=r"the features lack the selected column\(s\) 'b'"):
        selected.transform(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(
        InputDataError, match=r"SelectedColumns expects 2 candidate features, got shape \(1, 3\)"
    ):
        selected.transform(np.zeros((1, 3)))
    with pytest.raises(NotFittedError, match="This SelectedColumns instance is not fitted yet"):
        SelectedColumns(["a"]).transform(frame)
    X = penguins.train.drop(columns="species")
    with pytest.raises(InputDataError, match="needs the fitted preprocessor wrapped in FrozenEstimator"):
        CandidateFeatures(penguins.preprocessor, DerivedFeatures()).fit(X)
    union = CandidateFeatures(FrozenEstimator(penguins.preprocessor), DerivedFeatures()).fit(X)
    with pytest.raises(InputDataError, match="the feature pipeline needs a pandas DataFrame of raw rows"):
        union.transform(X.to_numpy())
    with pytest.raises(
        InputDataError, match=r"the rows lack column\(s\) 'sex' that the preprocessor was fitted on"
    ):
        union.transform(X.drop(columns="sex"))
    with pytest.raises(NotFittedError, match="This CandidateFeatures instance is not fitted yet"):
        CandidateFeatures(FrozenEstimator(penguins.preprocessor), DerivedFeatures()).transform(X)


@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust", "none"])
def test_derived_features_apply_their_fitted_imputer_and_scaler_exactly(penguins, scaling):
    # DerivedFeatures fills and scales with the fitted SimpleImputer's and scaler's parameters
    # instead of calling them; their own transform must give the same numbers, bit for bit.
    specs = (BILL_RATIO, LOG_MASS, {"name": "never", "kind": "log", "columns": ["never"]})
    derived = DerivedFeatures(specs, scaling).fit(penguins.train.assign(never=np.nan))
    rows = served_rows(penguins.test).assign(never=np.nan)
    expected = derived.imputer_.transform(derived._raw(rows))
    if derived.scaler_ is not None:
        expected = derived.scaler_.transform(expected)
    np.testing.assert_array_equal(derived.transform(rows), expected)
