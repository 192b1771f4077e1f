"""Unit tests of the blessing gate: threshold specs, every blessing rule, the champion as baseline,
robustness checks, and the reports.

The rules are tested on hand-written evaluations (exact numbers, every edge) and end to end on real
models built with the suite's own stages (preprocess -> engineer_features -> train) on the penguins.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from mlstages.components.common import registry
from mlstages.components.common.artifacts import read_metadata, save_estimator
from mlstages.components.common.datasets import column_types
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
from mlstages.components.evaluate.evaluate import EvaluationResult, evaluate
from mlstages.components.evaluate.slices import SliceMetrics
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.serving.infra import InfraValidationFailed
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.train import train
from mlstages.components.validate_model.gate import decide
from mlstages.components.validate_model.report import render_html, render_markdown
from mlstages.components.validate_model.robustness import extreme_values, robustness_checks
from mlstages.components.validate_model.thresholds import (
    ALL_MISSING,
    EXTREME_VALUE,
    FAILED,
    FIRST_RUN_REASON,
    MISSING,
    NO_THRESHOLDS_REASON,
    NOT_GATED,
    PASSED,
    ROBUSTNESS,
    THRESHOLD,
    UNSEEN_CATEGORY,
    BlessingConfig,
    MetricThreshold,
    check_thresholds,
    parse_thresholds,
)
from mlstages.components.validate_model.validate_model import validate_model

pytestmark = pytest.mark.usefixtures("no_external_network")


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_fit():
    # Tiny fits on a small shared machine run fastest without OpenMP threads spinning.
    with threadpool_limits(limits=1):
        yield


# --- real models, built by the suite's own stages ----------------------------------------------


@dataclass(frozen=True)
class SuiteModel:
    directory: Path
    test: pd.DataFrame
    evaluation: EvaluationResult
    model: Any
    metadata: ModelCard


def build_model(
    directory: Path,
    *,
    label: str = "species",
    task: str = "classification",
    drop: tuple[str, ...] = (),
    slices: tuple[str, ...] = ("island", "sex"),
) -> SuiteModel:
    """preprocess -> engineer_features -> train (one candidate) -> export, then evaluate on the
    test split. The split is seeded, so every model of one label shares the same test rows."""
    penguins = load_penguins().dropna(subset=[label])
    prepared = preprocess(penguins, PreprocessConfig(label_column=label, task=task, drop_columns=drop))
    features = engineer_features(prepared.train, prepared.preprocessor, FeatureConfig(label, task))
    family, space = (
        ("logistic_regression", {"C": [1.0]})
        if task == "classification"
        else ("linear_regression", {"alpha": [1.0]})
    )
    trained = train(
        prepared.train,
        features.feature_pipeline,
        TrainConfig(label, task, model_families=(family,), cv_folds=3, search_space={family: space}),
    )
    metadata = export_model(trained, directory, column_types(prepared.train[trained.input_columns]))
    evaluation = evaluate(
        trained.model,
        prepared.test,
        label,
        task,
        slices,
        classes=trained.classes,
        input_columns=trained.input_columns,
    )
    return SuiteModel(directory, prepared.test, evaluation, trained.model, metadata)


@pytest.fixture(scope="module")
def strong(tmp_path_factory) -> SuiteModel:
    """Every feature: about 1.0 macro F1 on the penguins."""
    return build_model(tmp_path_factory.mktemp("strong"))


@pytest.fixture(scope="module")
def weak(tmp_path_factory) -> SuiteModel:
    """Without the bill and flipper measurements: far worse, and worst on the island Dream."""
    return build_model(
        tmp_path_factory.mktemp("weak"), drop=("bill_length_mm", "bill_depth_mm", "flipper_length_mm")
    )


@pytest.fixture(scope="module")
def regression(tmp_path_factory) -> SuiteModel:
    """Body mass from the other columns (species included)."""
    return build_model(
        tmp_path_factory.mktemp("regression"), label="body_mass_g", task="regression", slices=("island",)
    )


def config(task: str = "classification", **overrides: Any) -> BlessingConfig:
    settings: dict[str, Any] = {"label_column": "species" if task == "classification" else "body_mass_g"}
    settings.update(overrides)
    return BlessingConfig(task=task, **settings)


def publish_champion(model: SuiteModel, registry_root: str, name: str = "penguins") -> str:
    uri = registry.publish_model(model.directory, registry_root, name)
    registry.attach_evaluation(uri, b"{}")  # evaluate's part: only evaluated versions are promoted
    registry.set_champion(registry_root, name, uri)
    return uri


# --- hand-written evaluations ------------------------------------------------------------------


def evaluation(
    metrics: dict[str, float | None],
    slices: list[tuple[str, str, int, dict[str, float | None]]] = (),
    task: str = "classification",
    rows: int = 100,
) -> EvaluationResult:
    return EvaluationResult(
        task=task,
        label_column="species" if task == "classification" else "body_mass_g",
        rows=rows,
        metrics=dict(metrics),
        slices=[SliceMetrics(column, value, n, dict(m)) for column, value, n, m in slices],
    )


def thresholds_of(spec: dict, task: str = "classification") -> tuple[MetricThreshold, ...]:
    return parse_thresholds(spec, task)


def gate(candidate, baseline, spec, task="classification", **overrides):
    cfg = config(task, thresholds=spec, **overrides)
    checks = check_thresholds(candidate, baseline, cfg.thresholds, cfg)
    return checks, decide(checks, cfg.thresholds, baseline is not None, min_slice_rows=cfg.min_slice_rows)


def statuses(checks) -> dict[tuple[str, str | None, str], str]:
    return {(c.scope, c.metric, c.rule): c.status for c in checks}


# --- threshold specs ---------------------------------------------------------------------------


def test_the_documented_spec_parses_in_order():
    parsed = parse_thresholds(
        {
            "roc_auc": {"min": 0.85},
            "f1_macro": {"min": 0.8, "max_drop": 0.01},
            "log_loss": {"max": 0.5, "max_increase": 0.05},
        },
        "classification",
    )
    assert [t.metric for t in parsed] == ["roc_auc", "f1_macro", "log_loss"]
    assert parsed[1] == MetricThreshold("f1_macro", min=0.8, max_drop=0.01)
    assert parsed[2].change_rules() == [("max_increase", 0.05)]
    assert parsed[2].to_dict() == {"max": 0.5, "max_increase": 0.05}
    assert parse_thresholds({"rmse": {"max": 500, "max_increase": 10}, "r2": {"min": 0.5}}, "regression")


@pytest.mark.parametrize(
    ("spec", "task", "message"),
    [
        (
            {"auc": {"min": 0.8}},
            "classification",
            r"unknown metric 'auc' for task 'classification'; available: accuracy, precision_macro",
        ),
        (
            {"f1_macro": {"min": 0.8}},
            "regression",
            r"unknown metric 'f1_macro' for task 'regression'; available: mse, rmse, mae, r2",
        ),
        (
            {"f1_macro": {"minimum": 0.8}},
            "classification",
            r"thresholds\['f1_macro'\]: unknown key 'minimum'; valid keys: min, max, max_drop",
        ),
        (
            {"f1_macro": {"max_drop": -0.01}},
            "classification",
            r"thresholds\['f1_macro'\]\['max_drop'\]=-0.01 must be >= 0",
        ),
        (
            {"log_loss": {"max_increase": -1}},
            "classification",
            r"thresholds\['log_loss'\]\['max_increase'\]=-1 must be >= 0",
        ),
        (
            {"log_loss": {"max_drop": 0.1}},
            "classification",
            r"thresholds\['log_loss'\]\['max_drop'\] does not fit log_loss, for which lower is better: use 'max_increase'",
        ),
        (
            {"f1_macro": {"max_increase": 0.1}},
            "classification",
            r"thresholds\['f1_macro'\]\['max_increase'\] does not fit f1_macro, for which higher is better: use 'max_drop'",
        ),
        ({"rmse": {"max_drop": 1}}, "regression", r"\['rmse'\]\['max_drop'\] does not fit rmse"),
        (
            {"f1_macro": {"min": "0.8"}},
            "classification",
            r"thresholds\['f1_macro'\]\['min'\]='0.8' must be a finite number",
        ),
        ({"f1_macro": {"min": True}}, "classification", r"\['min'\]=True must be a finite number"),
        ({"f1_macro": {"min": math.nan}}, "classification", r"\['min'\]=nan must be a finite number"),
        (
            {"f1_macro": {"min": 0.9, "max": 0.8}},
            "classification",
            r"thresholds\['f1_macro'\]: min=0.9 is above max=0.8",
        ),
        (
            {"f1_macro": 0.8},
            "classification",
            r"thresholds\['f1_macro'\] must be a non-empty mapping of min, max, max_drop",
        ),
        ({"f1_macro": {}}, "classification", r"thresholds\['f1_macro'\] must be a non-empty mapping"),
        (["f1_macro"], "classification", r"parameter thresholds must map a metric name to its bounds"),
    ],
)
def test_bad_threshold_specs_name_the_metric_and_key(spec, task, message):
    with pytest.raises(ParameterError, match=message):
        BlessingConfig(label_column="y", task=task, thresholds=spec)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_slice_rows": 0}, r"parameter min_slice_rows=0 must be an integer of at least 1"),
        ({"min_slice_rows": 2.5}, r"parameter min_slice_rows=2.5 must be an integer"),
        ({"slice_columns": "island"}, r"parameter slice_columns must be a list of column names"),
        ({"task": "ranking"}, r"parameter task='ranking' is not one of"),
        ({"label_column": " "}, r"parameter label_column is empty"),
    ],
)
def test_bad_config_parameters_are_named(overrides, message):
    settings = {"label_column": "species", "task": "classification"}
    settings.update(overrides)
    with pytest.raises(ParameterError, match=message):
        BlessingConfig(**settings)


def test_a_positive_class_metric_on_a_multiclass_evaluation_is_refused():
    candidate = evaluation({"accuracy": 0.9, "f1_macro": 0.9})
    with pytest.raises(
        ParameterError, match=r"metric\(s\) 'f1' are not in the evaluation .* exist only for two classes"
    ):
        gate(candidate, None, {"f1": {"min": 0.5}})


def test_gated_slice_columns_must_be_slices_of_the_evaluation():
    candidate = evaluation({"f1_macro": 0.9}, [("island", "Dream", 30, {"f1_macro": 0.9})])
    with pytest.raises(
        ParameterError,
        match=r"no slices of column\(s\) 'sex' \(it has: 'island'\); add them to evaluate's slice_columns",
    ):
        gate(candidate, None, {"f1_macro": {"min": 0.5}}, slice_columns=("sex",))


# --- the blessing rules ------------------------------------------------------------------------


SLICES = [
    ("island", "Biscoe", 40, {"f1_macro": 0.95, "log_loss": 0.2}),
    ("island", "Dream", 30, {"f1_macro": 0.70, "log_loss": 0.6}),
    ("island", "Torgersen", 12, {"f1_macro": 0.92, "log_loss": 0.25}),
]


def test_pass_when_every_threshold_holds_overall_and_on_every_slice():
    candidate = evaluation({"f1_macro": 0.9, "log_loss": 0.3}, SLICES)
    checks, blessing = gate(candidate, None, {"f1_macro": {"min": 0.6}, "log_loss": {"max": 0.7}})

    assert blessing.blessed and blessing.decision == "blessed"
    assert len(checks) == 2 * 4 and all(c.status == PASSED for c in checks)
    assert {c.scope for c in checks} == {"overall", "island=Biscoe", "island=Dream", "island=Torgersen"}
    assert blessing.reasons[-1] == "all 8 gated checks passed (8 threshold, 0 robustness)"


def test_fail_on_one_slice_only_is_not_blessed_and_names_the_slice():
    candidate = evaluation({"f1_macro": 0.9, "log_loss": 0.3}, SLICES)
    checks, blessing = gate(candidate, None, {"f1_macro": {"min": 0.8}})

    assert statuses(checks) == {
        ("overall", "f1_macro", "min"): PASSED,
        ("island=Biscoe", "f1_macro", "min"): PASSED,
        ("island=Dream", "f1_macro", "min"): FAILED,
        ("island=Torgersen", "f1_macro", "min"): PASSED,
    }
    assert not blessing.blessed
    assert "f1_macro on slice island=Dream (30 rows) is 0.7, below the minimum 0.8" in blessing.reasons
    assert blessing.failed[0].to_dict() | {"message": ""} == {
        "kind": THRESHOLD,
        "scope": "island=Dream",
        "slice_column": "island",
        "slice_value": "Dream",
        "metric": "f1_macro",
        "rule": "min",
        "column": None,
        "rows": 30,
        "value": 0.70,
        "baseline": None,
        "threshold": 0.8,
        "status": FAILED,
        "passed": False,
        "message": "",
    }


def test_only_the_declared_slice_columns_are_gated():
    slices = [*SLICES, ("sex", "male", 50, {"f1_macro": 0.1})]
    candidate = evaluation({"f1_macro": 0.9}, slices)
    checks, blessing = gate(candidate, None, {"f1_macro": {"min": 0.6}}, slice_columns=("island",))
    assert blessing.blessed
    assert "sex=male" not in {c.scope for c in checks}
    _, everything = gate(candidate, None, {"f1_macro": {"min": 0.6}})
    assert not everything.blessed  # empty slice_columns gates every slice of the evaluation


def test_no_thresholds_refuses_to_bless_and_says_why():
    candidate = evaluation({"f1_macro": 1.0}, SLICES)
    checks, blessing = gate(candidate, None, {})
    assert checks == []
    assert not blessing.blessed
    assert blessing.reasons[0] == NO_THRESHOLDS_REASON
    assert "no thresholds were given" in blessing.reason


def test_first_run_applies_absolute_thresholds_only_and_says_so():
    candidate = evaluation({"f1_macro": 0.9}, SLICES[:1])
    spec = {"f1_macro": {"min": 0.8, "max_drop": 0.0}}
    checks, blessing = gate(candidate, None, spec)

    assert {c.rule for c in checks} == {"min"}
    assert blessing.blessed and blessing.first_run
    assert blessing.reasons[0] == FIRST_RUN_REASON == "no baseline: first run, change thresholds not applied"
    assert "change thresholds not applied (no baseline): f1_macro max_drop 0" in blessing.notes
    document = blessing.to_dict()
    assert document["first_run"] is True and document["baseline"] is None
    assert FIRST_RUN_REASON in document["reasons"]


def test_first_run_with_only_change_thresholds_is_not_blessed():
    candidate = evaluation({"f1_macro": 0.9})
    checks, blessing = gate(candidate, None, {"f1_macro": {"max_drop": 0.01}})
    assert checks == [] and not blessing.blessed
    assert blessing.reasons[0].startswith("no threshold applies: only change thresholds were given")
    assert FIRST_RUN_REASON in blessing.reasons


def test_regression_against_the_baseline_beyond_max_drop_is_not_blessed():
    baseline = evaluation({"f1_macro": 0.90}, [("island", "Dream", 30, {"f1_macro": 0.90})])
    worse = evaluation({"f1_macro": 0.88}, [("island", "Dream", 30, {"f1_macro": 0.895})])
    checks, blessing = gate(worse, baseline, {"f1_macro": {"min": 0.8, "max_drop": 0.01}})

    assert statuses(checks) == {
        ("overall", "f1_macro", "min"): PASSED,
        ("overall", "f1_macro", "max_drop"): FAILED,
        ("island=Dream", "f1_macro", "min"): PASSED,
        ("island=Dream", "f1_macro", "max_drop"): PASSED,
    }
    assert not blessing.blessed and not blessing.first_run
    failed = blessing.failed[0]
    assert (failed.value, failed.baseline, failed.threshold) == (0.88, 0.90, 0.01)
    assert failed.message == (
        "f1_macro on the whole test split is 0.88, 0.02 below the baseline's 0.9 (may drop at most 0.01)"
    )


def test_a_drop_within_max_drop_an_equal_value_and_an_improvement_are_blessed():
    baseline = evaluation({"f1_macro": 0.90})
    spec = {"f1_macro": {"max_drop": 0.01}}
    for value in (0.891, 0.90, 0.97):
        _, blessing = gate(evaluation({"f1_macro": value}), baseline, spec)
        assert blessing.blessed, value
    # An unchanged model passes even a zero max_drop, despite the rounding of 0.3 - 0.0.
    _, same = gate(
        evaluation({"f1_macro": 0.1 + 0.2}), evaluation({"f1_macro": 0.3}), {"f1_macro": {"max_drop": 0}}
    )
    assert same.blessed


def test_lower_is_better_metric_with_max_increase():
    baseline = evaluation({"log_loss": 0.30})
    spec = {"log_loss": {"max": 0.5, "max_increase": 0.05}}
    _, worse = gate(evaluation({"log_loss": 0.40}), baseline, spec)
    assert not worse.blessed
    assert worse.failed[0].message == (
        "log_loss on the whole test split is 0.4, 0.1 above the baseline's 0.3 (may rise at most 0.05)"
    )
    _, within = gate(evaluation({"log_loss": 0.34}), baseline, spec)
    _, better = gate(evaluation({"log_loss": 0.10}), baseline, spec)
    assert within.blessed and better.blessed
    _, too_high = gate(evaluation({"log_loss": 0.6}), evaluation({"log_loss": 0.6}), spec)
    assert not too_high.blessed
    assert too_high.failed[0].message == "log_loss on the whole test split is 0.6, above the maximum 0.5"


def test_regression_metrics_rmse_and_r2():
    baseline = evaluation({"rmse": 300.0, "r2": 0.8}, task="regression")
    candidate = evaluation({"rmse": 320.0, "r2": 0.79}, task="regression")
    spec = {"rmse": {"max_increase": 10}, "r2": {"min": 0.7, "max_drop": 0.02}}
    checks, blessing = gate(candidate, baseline, spec, task="regression")
    assert statuses(checks) == {
        ("overall", "rmse", "max_increase"): FAILED,
        ("overall", "r2", "min"): PASSED,
        ("overall", "r2", "max_drop"): PASSED,
    }
    assert not blessing.blessed


def test_a_metric_undefined_on_a_slice_is_reported_not_failed():
    candidate = evaluation(
        {"roc_auc": 0.95},
        [("island", "Biscoe", 40, {"roc_auc": 0.97}), ("island", "Torgersen", 20, {"roc_auc": None})],
    )
    checks, blessing = gate(candidate, None, {"roc_auc": {"min": 0.9}})
    assert blessing.blessed
    undefined = next(c for c in checks if c.scope == "island=Torgersen")
    assert undefined.status == NOT_GATED and undefined.passed is None and undefined.value is None
    assert "roc_auc is undefined on slice island=Torgersen (20 rows)" in undefined.message


def test_a_metric_undefined_overall_fails():
    candidate = evaluation({"roc_auc": None, "f1_macro": 0.9})
    _, blessing = gate(candidate, None, {"roc_auc": {"min": 0.9}})
    assert not blessing.blessed
    assert blessing.reasons[1].startswith(
        "roc_auc is undefined on the whole test split, so min 0.9 cannot be checked"
    )


def test_a_baseline_metric_undefined_on_a_slice_is_not_gated():
    baseline = evaluation({"roc_auc": 0.9}, [("island", "Dream", 30, {"roc_auc": None})])
    candidate = evaluation({"roc_auc": 0.9}, [("island", "Dream", 30, {"roc_auc": 0.5})])
    checks, blessing = gate(candidate, baseline, {"roc_auc": {"max_drop": 0.01}})
    assert statuses(checks)[("island=Dream", "roc_auc", "max_drop")] == NOT_GATED
    assert blessing.blessed


def test_slices_smaller_than_min_slice_rows_are_reported_not_gated():
    candidate = evaluation({"f1_macro": 0.9}, [("sex", "(missing)", 3, {"f1_macro": 0.0}), *SLICES[:1]])
    checks, blessing = gate(candidate, None, {"f1_macro": {"min": 0.8}})
    small = next(c for c in checks if c.scope == "sex=(missing)")
    assert small.status == NOT_GATED and small.value == 0.0
    assert "not gated, the slice has fewer than min_slice_rows=10 rows" in small.message
    assert blessing.blessed
    assert any("reported but not gated: sex=(missing)" in note for note in blessing.notes)
    _, strict = gate(candidate, None, {"f1_macro": {"min": 0.8}}, min_slice_rows=3)
    assert not strict.blessed


# --- robustness --------------------------------------------------------------------------------


class CrashesOnMissing(BaseEstimator):
    """A deliberately broken model: delegates to a real one, but raises on a missing ``column``."""

    def __init__(self, model=None, column: str = ""):
        self.model = model
        self.column = column

    @property
    def classes_(self):
        return self.model.classes_

    def predict(self, X):
        if X[self.column].isna().any():
            raise ValueError("Input X contains NaN.")
        return self.model.predict(X)

    def predict_proba(self, X):
        return self.model.predict_proba(X)


class NaNOnExtremes(BaseEstimator):
    """A broken regression model: NaN whenever ``column`` is far outside what it has seen."""

    def __init__(self, model=None, column: str = ""):
        self.model = model
        self.column = column

    def predict(self, X):
        predictions = np.asarray(self.model.predict(X), dtype=float)
        return np.where(np.abs(X[self.column].to_numpy(dtype=float)) > 1e9, np.nan, predictions)


class UnnormalizedProbabilities(BaseEstimator):
    """A broken classifier whose probabilities do not sum to one on an unseen category."""

    def __init__(self, model=None, column: str = ""):
        self.model = model
        self.column = column

    @property
    def classes_(self):
        return self.model.classes_

    def predict(self, X):
        return self.model.predict(X)

    def predict_proba(self, X):
        proba = self.model.predict_proba(X)
        unseen = ~X[self.column].isin(["Biscoe", "Dream", "Torgersen"]) & X[self.column].notna()
        proba[unseen.to_numpy()] *= 2
        return proba


def test_a_good_suite_model_passes_every_robustness_check(strong):
    checks = robustness_checks(strong.model, strong.test, strong.metadata)
    assert all(c.kind == ROBUSTNESS for c in checks)
    assert [c.message for c in checks if c.status != PASSED] == []
    features = strong.metadata.input_names
    by_rule = {
        rule: [c.column for c in checks if c.rule == rule]
        for rule in (MISSING, UNSEEN_CATEGORY, EXTREME_VALUE, ALL_MISSING)
    }
    assert by_rule[MISSING] == features
    assert by_rule[ALL_MISSING] == [None]
    assert set(by_rule[UNSEEN_CATEGORY]) == {"island", "sex"}
    assert set(by_rule[EXTREME_VALUE]) == {
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "year",
    }


def test_a_good_regression_model_passes_every_robustness_check(regression):
    checks = robustness_checks(regression.model, regression.test, regression.metadata)
    assert checks and all(c.status == PASSED for c in checks)
    assert "species" in {c.column for c in checks if c.rule == UNSEEN_CATEGORY}


def test_a_model_that_crashes_on_a_missing_value_is_not_blessed_and_the_column_is_named(strong):
    broken = CrashesOnMissing(strong.model, "body_mass_g")
    checks = robustness_checks(broken, strong.test, strong.metadata)
    failed = [c for c in checks if c.status == FAILED]
    assert {(c.rule, c.column) for c in failed} == {(MISSING, "body_mass_g"), (ALL_MISSING, None)}
    missing = next(c for c in failed if c.rule == MISSING)
    assert (
        missing.message == "rows with 'body_mass_g' missing: predict raised ValueError: Input X contains NaN."
    )
    blessing = decide(checks, parse_thresholds({"f1_macro": {"min": 0.5}}, "classification"), False)
    assert not blessing.blessed
    assert missing.message in blessing.reasons


def test_a_model_that_returns_nan_on_extreme_values_names_the_column_and_value(regression):
    broken = NaNOnExtremes(regression.model, "flipper_length_mm")
    checks = robustness_checks(broken, regression.test, regression.metadata)
    failed = [c for c in checks if c.status == FAILED]
    assert [(c.rule, c.column) for c in failed] == [(EXTREME_VALUE, "flipper_length_mm")]
    assert failed[0].message.startswith(
        "rows with extreme values of 'flipper_length_mm' (e.g. flipper_length_mm=1e+12): "
        "predict returned a non-finite value (nan) in 10 of 25 rows"
    )


def test_probabilities_that_do_not_sum_to_one_fail(strong):
    broken = UnnormalizedProbabilities(strong.model, "island")
    failed = [c for c in robustness_checks(broken, strong.test, strong.metadata) if c.status == FAILED]
    assert [(c.rule, c.column) for c in failed] == [(UNSEEN_CATEGORY, "island")]
    assert (
        "predict_proba returned probabilities that are outside [0, 1] or do not sum to 1" in failed[0].message
    )


def test_extreme_values_lie_far_outside_the_range_and_include_zero():
    values = extreme_values(pd.Series([10.0, 20.0, None]))
    assert values == [1e12, -1e12, 20.0 + 1000 * 10, 10.0 - 1000 * 10, 0.0]
    assert extreme_values(pd.Series([5.0, 5.0]))[2:] == [5005.0, -4995.0, 0.0]


# --- end to end on real models, with the champion as baseline ----------------------------------


def test_first_run_on_a_real_model_blesses_on_absolute_thresholds(strong, tmp_path):
    spec = {"f1_macro": {"min": 0.9, "max_drop": 0.01}, "log_loss": {"max": 0.5}}
    blessing = validate_model(
        strong.directory,
        strong.test,
        strong.evaluation,
        config(thresholds=spec),
        model_registry=str(tmp_path / "registry"),
        model_name="penguins",
        infra_validation=False,
    )
    assert blessing.blessed and blessing.first_run and blessing.baseline is None
    assert blessing.reasons[0] == FIRST_RUN_REASON
    assert not [c for c in blessing.checks if c.rule == "max_drop"]
    # Torgersen has 9 test rows: reported, not gated.
    torgersen = [c for c in blessing.checks if c.scope == "island=Torgersen"]
    assert torgersen and {c.status for c in torgersen} == {NOT_GATED}
    assert any(
        f"no champion at {tmp_path / 'registry'}/penguins/champion.json yet" == n for n in blessing.notes
    )
    assert blessing.candidate["sha256"] == strong.metadata.sha256
    json.dumps(blessing.to_dict(), allow_nan=False)


def test_no_thresholds_on_a_real_model_is_not_blessed(strong):
    blessing = validate_model(
        strong.directory, strong.test, strong.evaluation, config(), infra_validation=False
    )
    assert not blessing.blessed
    assert blessing.reasons[0] == NO_THRESHOLDS_REASON
    assert blessing.counts[FAILED] == 0 and blessing.counts[PASSED] > 0  # robustness still ran


def test_a_real_model_failing_on_one_slice_only(weak):
    # The weak model is fine overall but confuses Adelie and Chinstrap on Dream, where both live.
    spec = {"f1_macro": {"min": 0.6}}
    blessing = validate_model(
        weak.directory, weak.test, weak.evaluation, config(thresholds=spec), infra_validation=False
    )
    failed = blessing.failed
    assert not blessing.blessed
    assert [c.scope for c in failed] == ["island=Dream"]
    overall = next(c for c in blessing.checks if c.scope == "overall")
    assert overall.status == PASSED and overall.value == pytest.approx(weak.evaluation.metrics["f1_macro"])


def test_a_candidate_worse_than_the_champion_is_not_blessed(strong, weak, gcs_bucket):
    root = f"{gcs_bucket}/models"
    champion = publish_champion(strong, root)
    spec = {"f1_macro": {"min": 0.5, "max_drop": 0.01}}

    blessing = validate_model(
        weak.directory,
        weak.test,
        weak.evaluation,
        config(thresholds=spec, slice_columns=("sex",)),
        model_registry=root,
        model_name="penguins",
        infra_validation=False,
    )

    assert not blessing.blessed and not blessing.first_run
    assert blessing.baseline == {
        "uri": champion,
        "version": champion.rsplit("/", 1)[-1],
        "sha256": strong.metadata.sha256,
        "pointer": f"{root}/penguins/champion.json",
    }
    drop = next(c for c in blessing.checks if c.scope == "overall" and c.rule == "max_drop")
    # The champion was evaluated on the candidate's own test rows with evaluate's code.
    assert drop.baseline == pytest.approx(strong.evaluation.metrics["f1_macro"])
    assert drop.value == pytest.approx(weak.evaluation.metrics["f1_macro"])
    assert drop.status == FAILED and drop.message in blessing.reasons
    male = next(c for c in blessing.checks if c.scope == "sex=male" and c.rule == "max_drop")
    strong_male = next(s for s in strong.evaluation.slices if (s.column, s.value) == ("sex", "male"))
    assert male.baseline == pytest.approx(strong_male.metrics["f1_macro"])


def test_a_candidate_better_than_the_champion_is_blessed(strong, weak, tmp_path):
    root = str(tmp_path / "registry")
    champion = publish_champion(weak, root)
    candidate_uri = registry.publish_model(strong.directory, root, "penguins")
    spec = {"f1_macro": {"min": 0.9, "max_drop": 0.01}, "log_loss": {"max_increase": 0.0}}

    blessing = validate_model(
        strong.directory,
        strong.test,
        strong.evaluation,
        config(thresholds=spec),
        model_registry=root,
        model_name="penguins",
        candidate_uri=candidate_uri,
        infra_validation=False,
    )

    assert blessing.blessed and not blessing.first_run
    assert FIRST_RUN_REASON not in blessing.reasons
    assert blessing.baseline["uri"] == champion
    assert blessing.candidate == {
        "uri": candidate_uri,
        "version": candidate_uri.rsplit("/", 1)[-1],
        "sha256": strong.metadata.sha256,
    }
    changes = [c for c in blessing.checks if c.rule in ("max_drop", "max_increase") and c.status == PASSED]
    assert len(changes) >= 2 * 5  # overall and each gated slice, for both metrics


def test_the_champion_itself_as_candidate_passes_a_zero_change_threshold(strong, tmp_path):
    root = str(tmp_path / "registry")
    publish_champion(strong, root)
    blessing = validate_model(
        strong.directory,
        strong.test,
        strong.evaluation,
        config(thresholds={"f1_macro": {"max_drop": 0}, "log_loss": {"max_increase": 0}}),
        model_registry=root,
        model_name="penguins",
        infra_validation=False,
    )
    assert blessing.blessed
    assert "the candidate is the champion itself (same sha256)" in blessing.notes


def test_a_regression_candidate_against_its_champion_with_max_increase(regression, tmp_path):
    root = str(tmp_path / "registry")
    publish_champion(regression, root, "mass")

    def run(spec):
        return validate_model(
            regression.directory,
            regression.test,
            regression.evaluation,
            config("regression", thresholds=spec),
            model_registry=root,
            model_name="mass",
            infra_validation=False,
        )

    # rmse is about 317 g overall and at most 341 g on an island; r2 is lowest (0.48) on Dream.
    blessing = run({"rmse": {"max": 400, "max_increase": 0.0}, "r2": {"min": 0.4}})
    assert blessing.blessed
    increase = next(c for c in blessing.checks if c.scope == "overall" and c.rule == "max_increase")
    assert increase.value == increase.baseline == pytest.approx(regression.evaluation.metrics["rmse"])
    stricter = run({"rmse": {"max": 400, "max_increase": 0.0}, "r2": {"min": 0.5}})
    assert not stricter.blessed
    assert [c.scope for c in stricter.failed] == ["island=Dream"]


@pytest.fixture
def champion_dir(strong, tmp_path) -> tuple[str, Path]:
    """A local registry whose champion is a copy of the strong model; returns (root, its folder)."""
    root = str(tmp_path / "registry")
    uri = publish_champion(strong, root)
    return root, Path(uri)


def run_against(strong: SuiteModel, root: str):
    return validate_model(
        strong.directory,
        strong.test,
        strong.evaluation,
        config(thresholds={"f1_macro": {"min": 0.5, "max_drop": 0.01}}),
        model_registry=root,
        model_name="penguins",
        infra_validation=False,
    )


def test_a_champion_with_a_changed_model_file_stops_the_gate(strong, champion_dir):
    root, folder = champion_dir
    with open(folder / "model.joblib", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(
        InputDataError, match=rf"the champion {folder} cannot be loaded as the baseline: .*sha256"
    ):
        run_against(strong, root)


def test_a_champion_without_metadata_stops_the_gate(strong, champion_dir):
    root, folder = champion_dir
    (folder / "metadata.json").unlink()
    # Refused where the pointer is read: without its model card the folder is not a version.
    with pytest.raises(
        ParameterError,
        match=rf"champion.json names {folder}, which is not a published version \(it has no metadata.json",
    ):
        run_against(strong, root)


def test_a_champion_whose_folder_is_gone_stops_the_gate(strong, champion_dir):
    root, folder = champion_dir
    shutil.rmtree(folder)
    with pytest.raises(ParameterError, match=rf"champion.json names {folder}, which is not a published"):
        run_against(strong, root)


def test_a_champion_saved_with_another_scikit_learn_stops_the_gate(strong, champion_dir):
    root, folder = champion_dir
    metadata = read_metadata(folder)
    metadata["versions"]["scikit-learn"] = "1.5.1"
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(
        InputDataError, match=rf"the champion {folder} was saved with scikit-learn 1.5.1, but this image has"
    ):
        run_against(strong, root)


def test_a_champion_that_cannot_unpickle_stops_the_gate(strong, champion_dir, tmp_path, monkeypatch):
    root, folder = champion_dir
    # A sound joblib file (sha256 recorded) of a class whose module is gone by the time it loads,
    # as when the champion was trained with code this image no longer has.
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "vanishing_estimators.py").write_text("class Vanishing:\n    pass\n")
    monkeypatch.syspath_prepend(str(modules))
    import vanishing_estimators

    save_estimator(vanishing_estimators.Vanishing(), folder, "model", read_metadata(folder))
    monkeypatch.delitem(sys.modules, "vanishing_estimators")
    shutil.rmtree(modules)
    with pytest.raises(
        InputDataError,
        match=rf"the champion {folder} cannot be loaded as the baseline: model.joblib fails to unpickle "
        r"\(ModuleNotFoundError: No module named 'vanishing_estimators'\)",
    ):
        run_against(strong, root)


def test_the_evaluation_must_belong_to_the_test_split(strong):
    with pytest.raises(InputDataError, match=r"the evaluation covers 69 rows but the test split has 68"):
        validate_model(
            strong.directory, strong.test.iloc[1:], strong.evaluation, config(), infra_validation=False
        )
    with pytest.raises(
        ParameterError, match=r"parameter task='regression', but the model was trained for 'classification'"
    ):
        validate_model(
            strong.directory,
            strong.test,
            strong.evaluation,
            config("regression", label_column="species"),
            infra_validation=False,
        )


def test_a_real_broken_model_is_not_blessed_through_the_whole_gate(strong, tmp_path):
    directory = tmp_path / "broken"
    save_estimator(CrashesOnMissing(strong.model, "island"), directory, "model", strong.metadata.to_dict())
    blessing = validate_model(
        directory,
        strong.test,
        strong.evaluation,
        config(thresholds={"f1_macro": {"min": 0.5}}),
        infra_validation=True,
    )
    # Not blessed, so infra validation never ran (and no model server was needed).
    assert not blessing.blessed and blessing.infra_validation is None
    assert "rows with 'island' missing: predict raised ValueError: Input X contains NaN." in blessing.reasons


# --- reports -----------------------------------------------------------------------------------


def test_reports_show_the_decision_and_escape_user_values():
    candidate = evaluation({"f1_macro": 0.9}, [("team", "<script>alert(1)</script>", 40, {"f1_macro": 0.5})])
    _, blessing = gate(candidate, None, {"f1_macro": {"min": 0.8}})
    page = render_html(blessing)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "NOT BLESSED" in page and "no baseline: first run" in page
    summary = render_markdown(blessing)
    assert summary.startswith("# Validate model")
    assert (
        "<script>" not in summary
        and "| team=&lt;script&gt;alert(1)&lt;/script&gt; | 40 | f1_macro | min | 0.8 | 0.5 |" in summary
    )
    assert "| baseline | none (first run) |" in summary
    assert "| simulation | column | simulated rows | status | detail |" in summary


# --- infra validation: the real model server on 127.0.0.1 --------------------------------------


def test_a_blessed_candidate_is_served_and_queried_before_the_blessing(strong, tmp_path):
    blessing = validate_model(
        strong.directory,
        strong.test,
        strong.evaluation,
        config(thresholds={"f1_macro": {"min": 0.9}}),
        infra_validation=True,
    )
    assert blessing.blessed
    infra = blessing.infra_validation
    assert infra["passed"] is True and infra["rows"] == 20
    names = [c["name"] for c in infra["checks"]]
    assert "model server starts and reports ready" in names
    assert "V2 batch of 20 row(s) matches the in-process model" in names
    assert "## Infra validation" in render_markdown(blessing)
    assert "V1 single-row requests match the in-process model" in render_html(blessing)
    json.dumps(blessing.to_dict(), allow_nan=False)


def test_a_candidate_the_server_cannot_load_stops_the_gate(strong, tmp_path):
    # Passes every blessing rule in this process, but its metadata says another scikit-learn
    # saved it, which the model server refuses (KServe's version-skew failure, caught before deploy).
    directory = tmp_path / "skewed"
    shutil.copytree(strong.directory, directory)
    metadata = read_metadata(directory)
    metadata["versions"]["scikit-learn"] = "1.5.1"
    (directory / "metadata.json").write_text(json.dumps(metadata))

    with pytest.raises(InfraValidationFailed, match=r"infra validation of .*skewed failed") as raised:
        validate_model(
            directory,
            strong.test,
            strong.evaluation,
            config(thresholds={"f1_macro": {"min": 0.9}}),
            infra_validation=True,
        )
    assert "saved with scikit-learn 1.5.1" in str(raised.value)
