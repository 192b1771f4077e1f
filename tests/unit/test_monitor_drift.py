"""Unit tests of drift monitoring: each test against scipy or a hand-computed answer, test
selection, false-positive rate, detection, bad input, performance decay, the retrain decision and
the reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from scipy import stats
from scipy.spatial import distance
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.common.reference import build_reference
from mlstages.components.evaluate.evaluate import evaluate
from mlstages.components.monitor_drift.config import (
    ALL_MISSING,
    COLUMN_MISSING,
    NOT_TESTED,
    TYPE_CHANGED,
    DriftConfig,
)
from mlstages.components.monitor_drift.monitor_drift import detect_drift
from mlstages.components.monitor_drift.report import distribution_svg, render_html, render_markdown
from mlstages.components.monitor_drift.statistical_tests import (
    chi_squared,
    jensen_shannon,
    ks_test,
    population_stability_index,
    proportion_z_test,
    severity,
    wasserstein_distance,
    wasserstein_normed,
)

# --- each test against a known answer ----------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 3), (40, 40), (300, 5000), (5000, 60_000)])
def test_ks_equals_scipy(n, m):
    rng = np.random.default_rng(n + m)
    # Rounded values: ties in and between the samples, which is where hand-rolled KS goes wrong.
    u = np.round(rng.standard_normal(n), 2)
    v = np.round(rng.standard_normal(m) + 0.01, 2)
    expected = stats.ks_2samp(u, v)
    statistic, p_value = ks_test(u, v)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_ks_asymptotic_path_keeps_a_nonzero_p_value_for_close_samples():
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(20_000), rng.standard_normal(30_000)
    expected = stats.ks_2samp(u, v)
    assert 0.01 < expected.pvalue  # the same distribution: the comparison is of a real p-value
    assert ks_test(u, v) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)


@pytest.mark.parametrize(
    ("n", "m"), [(1, 1), (1, 5), (2, 9), (7, 3), (10, 4), (64, 64), (5000, 12_345), (999, 100_000)]
)
def test_wasserstein_equals_scipy(n, m):
    rng = np.random.default_rng(n * m)
    u = rng.standard_normal(n)
    v = rng.exponential(1.0, m)
    u[::3] = 0.5  # ties
    assert wasserstein_distance(u, v) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-10)


def test_wasserstein_normed_divides_by_the_reference_std_with_evidently_floor():
    u, v = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert wasserstein_normed(u, v, reference_std=2.0) == pytest.approx(0.5)  # distance 1 / std 2
    assert wasserstein_normed(u, v, reference_std=0.0) == pytest.approx(1000.0)  # std floored at 0.001


def test_jensen_shannon_equals_scipy():
    reference, current = [50, 30, 20, 0], [40, 30, 20, 10]
    expected = distance.jensenshannon(np.array(reference) / 100, np.array(current) / 100)
    assert jensen_shannon(reference, current) == pytest.approx(expected, rel=1e-12)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))  # disjoint: the maximum
    assert jensen_shannon([3, 5], [30, 50]) == 0.0  # same shares, any counts


def test_psi_by_hand():
    # Shares (0.5, 0.5) -> (0.25, 0.75): (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.27465
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert expected == pytest.approx(0.2746530721670274)
    assert population_stability_index([50, 50], [25, 75]) == pytest.approx(expected)
    # An empty bin counts as a share of 0.0001: (0.0001 - 0.5) ln(0.0001 / 0.5) + (1 - 0.5) ln(1 / 0.5)
    empty = (0.0001 - 0.5) * math.log(0.0001 / 0.5) + 0.5 * math.log(2)
    assert population_stability_index([1, 1], [0, 10]) == pytest.approx(empty)
    assert population_stability_index([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-15)


def test_chi_squared_equals_scipy_test_of_homogeneity():
    # The last category is new (none in the reference): a column of its own in the 2 x 4 table.
    reference, current = [120, 90, 40, 0], [30, 35, 20, 5]
    table = np.array([reference, current])
    expected = stats.chi2_contingency(table, correction=False)
    assert chi_squared(reference, current) == pytest.approx(expected.pvalue, rel=1e-12)
    assert chi_squared([5, 0], [7, 0]) == 1.0  # one category in both: nothing to compare


def test_z_test_by_hand_and_equal_to_the_two_by_two_chi_squared():
    # 60 of 100 against 40 of 100: pooled 0.5, z = 0.2 / sqrt(0.25 * 0.02) = 2.8284, p = 0.004678
    p_value = proportion_z_test([60, 40], [40, 60])
    assert p_value == pytest.approx(2 * stats.norm.sf(0.2 / math.sqrt(0.25 * 0.02)))
    assert p_value == pytest.approx(0.004677734981047, rel=1e-9)
    # z squared is the 2 x 2 chi-squared statistic without continuity correction.
    table = np.array([[60, 40], [40, 60]])
    assert p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    assert proportion_z_test([10, 0], [5, 0]) == 1.0  # every row in the same category in both


def test_severity_is_one_at_the_threshold_for_every_kind_of_test():
    assert severity("ks", 0.05, 0.05) == pytest.approx(1.0)
    assert severity("ks", 0.0025, 0.05) == pytest.approx(2.0)
    assert severity("chisquare", 1.0, 0.05) == 0.0
    assert severity("wasserstein", 0.2, 0.1) == pytest.approx(2.0)
    assert severity("psi", 0.0, 0.2) == 0.0


# --- windows from one population ---------------------------------------------------------------

TYPES = {
    "amount": "numeric",
    "age": "numeric",
    "visits": "numeric",
    "score": "numeric",
    "plan": "categorical",
    "mobile": "boolean",
}
PLANS = ["free", "basic", "pro", "team", "enterprise"]
PLAN_MIX = (0.4, 0.3, 0.15, 0.1, 0.05)


def population(rng: np.random.Generator, rows: int, shift: float = 0.0, plan_mix=PLAN_MIX) -> pd.DataFrame:
    """Seeded rows of one customer population; ``shift`` moves amount, age and score."""
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3 + shift, 0.5, rows),
            "age": rng.normal(40 + 12 * shift, 12, rows),
            "visits": rng.poisson(8, rows),
            "score": rng.uniform(0, 1, rows) + shift,
            "plan": rng.choice(PLANS, rows, p=plan_mix),
            "mobile": rng.random(rows) < 0.3,
        }
    )


@pytest.fixture(scope="module")
def reference() -> dict:
    return build_reference(population(np.random.default_rng(0), 5000), None, TYPES)


def test_test_selection_follows_sample_sizes(reference):
    small = detect_drift(reference, population(np.random.default_rng(1), 300))
    assert {f.column: f.method for f in small.features} == {
        "amount": "ks",
        "age": "ks",
        "visits": "ks",
        "score": "ks",
        "plan": "chisquare",
        "mobile": "z",
    }
    large = detect_drift(reference, population(np.random.default_rng(2), 3000))
    methods = {f.column: f.method for f in large.features}
    assert methods == dict.fromkeys(["amount", "age", "visits", "score"], "wasserstein") | {
        "plan": "jensenshannon",
        "mobile": "jensenshannon",
    }


def test_small_reference_selects_p_value_tests_even_for_a_large_window():
    reference = build_reference(population(np.random.default_rng(0), 800), None, TYPES)
    result = detect_drift(reference, population(np.random.default_rng(1), 20_000))
    assert [f.method for f in result.features] == ["ks", "ks", "ks", "ks", "chisquare", "z"]


def test_feature_scores_equal_scipy_on_the_data_each_test_used(reference):
    window = population(np.random.default_rng(4), 3000)
    result = {f.column: f for f in detect_drift(reference, window).features}
    amount = reference["columns"]["amount"]
    expected = stats.wasserstein_distance(amount["sample"], window["amount"]) / amount["summary"]["std"]
    assert result["amount"].score == pytest.approx(expected, rel=1e-10)
    assert (result["amount"].reference_n, result["amount"].current_n) == (5000, 3000)
    shares = window["plan"].value_counts().reindex(list(reference["columns"]["plan"]["counts"])).to_numpy()
    plan = reference["columns"]["plan"]["counts"]
    assert result["plan"].score == pytest.approx(
        distance.jensenshannon(list(plan.values()), shares), rel=1e-12
    )

    small = population(np.random.default_rng(5), 200)
    ks = {f.column: f for f in detect_drift(reference, small).features}["age"]
    assert ks.score == pytest.approx(
        stats.ks_2samp(reference["columns"]["age"]["sample"], small["age"]).pvalue
    )


def test_a_sample_smaller_than_the_training_data_says_so_and_uses_its_own_n():
    big = build_reference(population(np.random.default_rng(0), 12_000), None, TYPES, max_sample=2000)
    window = population(np.random.default_rng(9), 500)
    age = {f.column: f for f in detect_drift(big, window).features}["age"]
    assert (age.method, age.reference_n, age.current_n) == ("ks", 2000, 500)
    assert age.score == pytest.approx(stats.ks_2samp(big["columns"]["age"]["sample"], window["age"]).pvalue)
    assert "KS on a stratified sample of 2,000 of the 12,000 training values" in age.notes
    assert "p-value with n = 2,000 (the sample size), which is conservative" in age.notes


def test_no_drift_windows_rarely_alarm_and_never_retrain(reference):
    """False-positive rate at the default thresholds over 100 seeded windows of the population."""
    alarms = retrains = 0
    for seed in range(100):
        result = detect_drift(reference, population(np.random.default_rng(1000 + seed), 300))
        alarms += result.drifted_features
        retrains += result.retrain
    # Per feature the p-value tests run at 5%: the alarm rate must be near it, not above.
    assert alarms / (100 * len(TYPES)) < 0.075
    assert retrains / 100 < 0.05


def test_no_drift_large_windows_stay_below_the_distance_thresholds(reference):
    # Wasserstein and Jensen-Shannon on 3,000-row windows: sampling noise alone reaches about 0.3-0.7
    # of the thresholds here, so none of the 120 feature tests may alarm.
    for seed in range(20):
        result = detect_drift(reference, population(np.random.default_rng(2000 + seed), 3000))
        assert not result.retrain and result.drifted_features == 0
        assert 0 < result.worst_score < 1


@pytest.mark.parametrize("rows", [300, 3000])
def test_shifted_numbers_and_a_changed_category_mix_trigger_retraining(reference, rows):
    window = population(np.random.default_rng(7), rows, shift=0.3, plan_mix=(0.2, 0.3, 0.15, 0.2, 0.15))
    result = detect_drift(reference, window)
    drifted = {f.column for f in result.features if f.drifted}
    assert {"amount", "age", "score", "plan"} <= drifted
    assert "visits" not in drifted
    assert result.retrain and result.dataset_drift
    assert result.reasons[0].startswith(f"dataset drift: {len(drifted)} of 6 features drifted")
    assert result.worst_score > 1


def test_drift_share_decides_dataset_drift(reference):
    window = population(np.random.default_rng(7), 3000)
    window["plan"] = "enterprise"
    one = detect_drift(reference, window)
    assert one.drifted_features == 1 and one.drift_share == pytest.approx(1 / 6)
    assert not one.dataset_drift and not one.retrain
    strict = detect_drift(reference, window, DriftConfig(drift_share=0.1))
    assert strict.dataset_drift and strict.retrain


# --- per-feature and global overrides ----------------------------------------------------------


def test_global_psi_and_a_per_feature_threshold(reference):
    window = population(np.random.default_rng(8), 3000, shift=0.05)
    psi = detect_drift(reference, window, DriftConfig(method="psi"))
    assert {f.method for f in psi.features} == {"psi"}
    score = {f.column: f for f in psi.features}["score"]
    assert score.threshold == 0.2
    entry = reference["columns"]["score"]
    edges = np.asarray(entry["bin_edges"])
    current, _ = np.histogram(window["score"], bins=[-np.inf, *edges, np.inf])
    assert score.score == pytest.approx(population_stability_index(entry["bin_counts"], current))

    tight = DriftConfig(feature_thresholds={"score": {"method": "wasserstein", "threshold": 0.01}})
    result = {f.column: f for f in detect_drift(reference, window, tight).features}
    assert (result["score"].method, result["score"].threshold, result["score"].drifted) == (
        "wasserstein",
        0.01,
        True,
    )
    assert result["score"].reasons[0].startswith("Wasserstein distance (normed) ")


def test_a_global_method_that_does_not_fit_a_column_leaves_it_on_auto(reference):
    result = detect_drift(reference, population(np.random.default_rng(3), 3000), DriftConfig(method="ks"))
    methods = {f.column: f.method for f in result.features}
    assert methods["age"] == "ks" and methods["plan"] == "jensenshannon"


def test_numeric_column_with_few_values_is_compared_as_categories():
    rng = np.random.default_rng(0)
    reference = build_reference(pd.DataFrame({"rooms": rng.integers(1, 4, 4000)}), None, {"rooms": "numeric"})
    window = pd.DataFrame({"rooms": np.r_[rng.integers(1, 4, 900), [9] * 100]})
    rooms = detect_drift(reference, window).features[0]
    assert rooms.method == "chisquare" and rooms.drifted
    assert rooms.new_categories == ["9"]
    expected = stats.chi2_contingency(
        np.array(
            [
                [reference["columns"]["rooms"]["value_counts"][k] for k in ("1", "2", "3")] + [0],
                [int((window["rooms"] == v).sum()) for v in (1, 2, 3, 9)],
            ]
        ),
        correction=False,
    )
    assert rooms.score == pytest.approx(expected.pvalue)


def test_many_new_values_in_a_column_of_few_values_share_one_bin_and_are_tested_as_numbers():
    rng = np.random.default_rng(0)
    reference = build_reference(pd.DataFrame({"rooms": rng.integers(1, 4, 4000)}), None, {"rooms": "numeric"})
    window = pd.DataFrame({"rooms": np.r_[rng.normal(2.0, 1.0, 3000), [1, 2, 3] * 100]})
    rooms = detect_drift(reference, window).features[0]
    assert rooms.method == "wasserstein" and rooms.drifted
    assert rooms.new_categories == ["(new values)"]
    assert rooms.plot["labels"] == ["1", "2", "3", "(new values)"]
    assert rooms.plot["current"][:3] == pytest.approx([100 / 3300] * 3)


# --- bad input: a clear outcome, never a traceback ---------------------------------------------


def test_an_empty_window_is_an_error(reference):
    with pytest.raises(InputDataError, match="the current window has no rows: there is nothing to compare"):
        detect_drift(reference, population(np.random.default_rng(0), 0))


def test_a_missing_feature_is_reported_as_drift(reference):
    result = detect_drift(reference, population(np.random.default_rng(1), 500).drop(columns=["age"]))
    age = {f.column: f for f in result.features}["age"]
    assert (age.status, age.drifted, age.reasons) == (
        COLUMN_MISSING,
        True,
        ["column missing from the current window"],
    )
    assert result.drifted_features >= 1 and result.features_checked == 6


def test_all_null_features_are_drift_unless_the_training_data_was_all_null_too():
    train = pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50, "never": [np.nan] * 100})
    reference = build_reference(train, None, {"x": "numeric", "c": "categorical", "never": "numeric"})
    window = pd.DataFrame({"x": [np.nan] * 10, "c": [None] * 10, "never": [np.nan] * 10})
    result = {f.column: f for f in detect_drift(reference, window).features}
    for name in ("x", "c"):
        assert (result[name].status, result[name].drifted) == (ALL_MISSING, True)
        assert result[name].reasons == ["all values missing in 10 rows"]
    assert (result["never"].status, result["never"].drifted) == (NOT_TESTED, False)
    assert "no values in the training data or the current window" in result["never"].notes

    filled = detect_drift(reference, pd.DataFrame({"x": [1.0], "c": ["a"], "never": [3.0]}))
    never = {f.column: f for f in filled.features}["never"]
    assert never.drifted and never.reasons == [
        "the training data had no values in this column; the window has 1"
    ]


def test_new_categories_count_in_the_tests_and_are_named(reference):
    window = population(np.random.default_rng(2), 3000)
    window.loc[:599, "plan"] = "<b>premium</b>"
    plan = {f.column: f for f in detect_drift(reference, window).features}["plan"]
    assert plan.new_categories == ["<b>premium</b>"] and plan.drifted
    assert plan.plot["labels"][0] == "free" and "<b>premium</b>" in plan.plot["labels"]


def test_new_columns_are_listed_not_tested(reference):
    window = population(np.random.default_rng(2), 300).assign(region="north", store_id=range(300))
    result = detect_drift(reference, window)
    assert result.new_columns == ["region", "store_id"] and result.features_checked == 6


def test_numbers_that_became_words_are_a_type_change(reference):
    window = population(np.random.default_rng(2), 300)
    window["age"] = window["age"].round().astype(int).astype(str)
    window.loc[0, "age"] = "forty"
    age = {f.column: f for f in detect_drift(reference, window).features}["age"]
    assert (age.status, age.drifted) == (TYPE_CHANGED, True)
    assert age.reasons == [
        "type changed: numeric in training, but the window has values that are not numbers, such as 'forty'"
    ]
    window.loc[0, "age"] = "40"  # numbers written as text are read as numbers, and noted
    age = {f.column: f for f in detect_drift(reference, window).features}["age"]
    assert age.status == "tested" and "numeric in training; read from object values" in age.notes


def test_a_missing_share_that_rose_is_drift(reference):
    window = population(np.random.default_rng(3), 3000)
    window.loc[:899, "score"] = np.nan
    score = {f.column: f for f in detect_drift(reference, window).features}["score"]
    assert score.drifted and score.reasons == ["missing share rose from 0.0% to 30.0%"]
    assert score.score < score.threshold  # the remaining values alone do not drift
    lenient = detect_drift(reference, window, DriftConfig(max_missing_increase=0.5))
    assert not {f.column: f for f in lenient.features}["score"].drifted


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"drift_share": 0}, r"parameter drift_share=0 must be greater than 0 and at most 1"),
        ({"drift_share": 1.5}, r"parameter drift_share=1.5 must be greater than 0 and at most 1"),
        ({"method": "anderson"}, r"parameter method='anderson' is not one of: 'auto', 'ks'"),
        ({"retrain_on": "always"}, r"parameter retrain_on='always' is not one of: 'drift_or_decay'"),
        ({"max_missing_increase": 2}, r"parameter max_missing_increase=2 must be between 0 and 1"),
        ({"max_metric_drop": -0.1}, r"parameter max_metric_drop=-0.1 must be a number of at least 0"),
        ({"max_metric_drop": {"acuracy": 0.1}}, r"parameter max_metric_drop metric='acuracy' is not one of"),
        ({"feature_thresholds": ["age"]}, r"parameter feature_thresholds must map feature names to"),
        (
            {"feature_thresholds": {"age": {"metod": "ks"}}},
            r"parameter feature_thresholds\['age'\]: unknown key\(s\) 'metod'; use method, threshold",
        ),
        (
            {"feature_thresholds": {"age": {"method": "ks", "threshold": 5}}},
            r"parameter feature_thresholds\['age'\]: threshold 5 must be between 0 and 1 \(a p-value\)",
        ),
        (
            {"feature_thresholds": {"age": {"threshold": "high"}}},
            r"parameter feature_thresholds\['age'\]: threshold 'high' must be a number",
        ),
    ],
)
def test_bad_configuration_is_named(config, message):
    with pytest.raises(ParameterError, match=message):
        DriftConfig(**config)


def test_feature_overrides_must_name_features_and_fit_them(reference):
    window = population(np.random.default_rng(0), 100)
    with pytest.raises(
        ParameterError,
        match=r"feature_thresholds names 'agee', not feature\(s\) of the reference; its features are: amount",
    ):
        detect_drift(reference, window, DriftConfig(feature_thresholds={"agee": {"threshold": 0.1}}))
    with pytest.raises(
        ParameterError,
        match=r"feature_thresholds\['age'\]: threshold 2.0 must be between 0 and 1 \(a p-value\)",
    ):
        detect_drift(reference, window, DriftConfig(feature_thresholds={"age": {"threshold": 2}}))  # auto: KS
    with pytest.raises(
        ParameterError,
        match=r"feature_thresholds\['plan'\]: method 'ks' does not apply: for a categorical column use one of "
        r"chisquare, z, jensenshannon, psi",
    ):
        detect_drift(reference, window, DriftConfig(feature_thresholds={"plan": {"method": "ks"}}))


# --- performance against the reference metrics ------------------------------------------------


def raw_model(train: pd.DataFrame, label: str, estimator) -> Pipeline:
    raw = train.drop(columns=[label])
    numeric = [c for c in raw.columns if pd.api.types.is_numeric_dtype(raw[c])]
    categorical = [c for c in raw.columns if c not in numeric]
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                categorical,
            ),
        ]
    )
    return Pipeline([("features", features), ("model", estimator)]).fit(raw, train[label])


PENGUIN_FEATURES = {
    "island": "categorical",
    "bill_length_mm": "numeric",
    "bill_depth_mm": "numeric",
    "flipper_length_mm": "numeric",
    "body_mass_g": "numeric",
    "sex": "categorical",
}


@pytest.fixture(scope="module")
def penguin_model():
    """A classifier of species with its reference (test-set metrics included) and test split."""
    penguins = load_penguins().drop(columns=["year"])
    train, test = train_test_split(penguins, test_size=0.3, stratify=penguins["species"], random_state=0)
    model = raw_model(train, "species", LogisticRegression(max_iter=1000))
    metadata = ModelCard.from_dict(
        {
            "task": "classification",
            "label_column": "species",
            "classes": sorted(penguins["species"].unique()),
            "input_features": [{"name": c, "type": t} for c, t in PENGUIN_FEATURES.items()],
        }
    )
    evaluation = evaluate(model, test, "species", "classification", input_columns=list(PENGUIN_FEATURES))
    reference = build_reference(train, "species", PENGUIN_FEATURES, metrics=evaluation.to_dict())
    return model, metadata, reference, test


def test_performance_on_a_window_like_the_test_split_does_not_decay(penguin_model):
    model, metadata, reference, test = penguin_model
    result = detect_drift(reference, test, model=model, model_card=metadata)
    performance = result.performance
    assert performance.computed and performance.rows == len(test)
    assert performance.metrics["f1_macro"] == pytest.approx(reference["metrics"]["f1_macro"])
    assert [c["metric"] for c in performance.comparisons] == ["f1_macro"]
    assert not performance.decayed and not result.retrain
    assert result.label is not None and result.label.method == "chisquare" and not result.label.drifted
    assert result.metrics()["current_f1_macro"] == pytest.approx(performance.metrics["f1_macro"])


def test_wrong_labels_are_performance_decay_and_retrain_on_decides(penguin_model):
    model, metadata, reference, test = penguin_model
    window = test.copy()
    # Every Gentoo labelled Adelie: the model is right about the penguins, the labels say it is not.
    window.loc[window["species"] == "Gentoo", "species"] = "Adelie"
    result = detect_drift(reference, window, model=model, model_card=metadata)
    decayed = result.performance.decayed
    assert [c["metric"] for c in decayed] == ["f1_macro"] and decayed[0]["drop"] > 0.05
    assert result.retrain and not result.dataset_drift
    assert result.reasons == [
        f"performance decay: f1_macro {decayed[0]['current']:.4g} against {decayed[0]['reference']:.4g} on "
        f"the test split at training time ({100 * decayed[0]['drop']:.1f}% worse > 5% allowed)"
    ]
    assert result.label.drifted  # the label distribution moved too
    only_drift = detect_drift(
        reference, window, DriftConfig(retrain_on="drift"), model=model, model_card=metadata
    )
    assert not only_drift.retrain and only_drift.reasons == []
    both = detect_drift(
        reference, window, DriftConfig(retrain_on="drift_and_decay"), model=model, model_card=metadata
    )
    assert not both.retrain
    per_metric = DriftConfig(max_metric_drop={"accuracy": 0.9, "log_loss": 0.1})
    checked = detect_drift(reference, window, per_metric, model=model, model_card=metadata)
    assert [c["metric"] for c in checked.performance.comparisons] == ["accuracy", "log_loss"]
    assert [c["metric"] for c in checked.performance.decayed] == ["log_loss"]  # lower is better


def test_a_label_column_of_another_type_is_reported_not_raised(penguin_model):
    model, metadata, reference, test = penguin_model
    window = test.copy()
    window["species"] = window["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2})
    result = detect_drift(reference, window, model=model, model_card=metadata)
    assert not result.performance.computed
    assert result.performance.message.startswith(
        "not computed: label column 'species' has value(s) 0, 1, 2 in the test data that the model never saw"
    )
    assert result.label.drifted and set(result.label.new_categories) == {"0", "1", "2"}
    assert any(w.startswith("performance not computed: label column 'species'") for w in result.warnings)


def test_a_regression_label_that_became_words_is_reported(penguin_model):
    penguins = load_penguins().dropna(subset=["body_mass_g"]).drop(columns=["year"])
    features = dict(PENGUIN_FEATURES) | {"species": "categorical"}
    features.pop("body_mass_g")
    model = raw_model(penguins, "body_mass_g", Ridge())
    reference = build_reference(penguins, "body_mass_g", features, metrics={"rmse": 300.0})
    metadata = ModelCard.from_dict(
        {
            "task": "regression",
            "label_column": "body_mass_g",
            "input_features": [{"name": c, "type": t} for c, t in features.items()],
        }
    )
    window = penguins.head(50).assign(body_mass_g="heavy")
    result = detect_drift(reference, window, model=model, model_card=metadata)
    assert result.performance.message == (
        "not computed: label column 'body_mass_g' has dtype object, but task='regression' needs numbers"
    )
    assert result.label.status == TYPE_CHANGED and result.label.drifted


def test_performance_needs_labels_and_the_reference_label(penguin_model):
    model, metadata, reference, test = penguin_model
    unlabelled = detect_drift(reference, test.drop(columns=["species"]), model=model, model_card=metadata)
    assert unlabelled.performance.message == "not computed: the window has no label column 'species'"
    assert unlabelled.label is None
    no_model = detect_drift(reference, test)
    assert no_model.performance is None
    assert "the window has labels but no model was given: performance was not checked" in no_model.warnings
    with pytest.raises(
        ParameterError,
        match=r"parameter label_column='kind', but the reference was taken with label 'species'",
    ):
        detect_drift(reference, test, DriftConfig(label_column="kind"))


# --- outputs ------------------------------------------------------------------------------------


def test_result_json_metrics_and_reports(reference):
    window = population(np.random.default_rng(7), 300, shift=0.3).drop(columns=["visits"])
    window = window.rename(columns={"plan": "<script>alert(1)</script>"})
    result = detect_drift(reference, window)
    document = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert document["retrain"] is True and document["worst_feature"] in TYPES
    assert len(document["features"]) == 6 and document["new_columns"] == ["<script>alert(1)</script>"]
    assert set(result.metrics()) == {
        "drift_share",
        "drifted_features",
        "features_checked",
        "worst_score",
        "dataset_drift",
        "retrain",
        "current_rows",
        "new_columns",
    }
    page = render_html(result)
    assert page.count("<svg") == 4  # the tested features; the two missing columns have no chart
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "column missing from the current window" in page and "Retrain." in page
    summary = render_markdown(result)
    assert summary.startswith("# Monitor drift") and "<script>" not in summary
    assert "| visits | numeric | column missing |" in summary


def test_distribution_svg_escapes_category_names():
    svg = distribution_svg({"labels": ['<img src=x onerror="1">'], "reference": [0.5], "current": [1.0]})
    assert svg.startswith("<svg") and "<img" not in svg and "&lt;img" in svg


def test_the_prediction_logs_own_columns_are_not_new_features():
    from mlstages.components.monitor_drift.monitor_drift import is_prediction_log_column

    for name in (
        "prediction",
        "proba_Adelie",
        "request_id",
        "row_index",
        "logged_at",
        "model_name",
        "model_version",
    ):
        assert is_prediction_log_column(name), name
    assert not is_prediction_log_column("bill_length_mm")
