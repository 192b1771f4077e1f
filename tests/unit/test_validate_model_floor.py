"""The blessing gate's quality floor: a candidate worse than train's default baseline is not blessed."""

from __future__ import annotations

import pytest

from mlstages.components.common.errors import ParameterError
from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.validate_model.floor import FLOOR, floor_checks, floor_metric
from mlstages.components.validate_model.gate import decide
from mlstages.components.validate_model.thresholds import FAILED, NOT_GATED, PASSED, BlessingConfig


def evaluation(task: str, metrics: dict, dummy: dict, default: dict) -> EvaluationResult:
    return EvaluationResult(
        task=task,
        label_column="y",
        rows=200,
        metrics=metrics,
        baselines={"dummy": dummy, "default_gradient_boosting": default},
    )


def config(task: str = "classification", **settings) -> BlessingConfig:
    return BlessingConfig(
        "y", task, thresholds={"accuracy" if task == "classification" else "r2": {"min": 0.0}}, **settings
    )


def by_rule(checks):
    return {c.rule: c for c in checks}


def test_a_candidate_below_the_default_booster_beyond_the_tolerance_is_not_blessed():
    result = evaluation(
        "classification", {"f1_macro": 0.80, "accuracy": 0.9}, {"f1_macro": 0.3}, {"f1_macro": 0.86}
    )
    checks = by_rule(floor_checks(result, "f1_macro", config()))

    floor = checks["default_gradient_boosting"]
    assert (floor.kind, floor.status, floor.metric) == (FLOOR, FAILED, "f1_macro")
    assert floor.threshold == pytest.approx(0.86 * 0.99)
    assert "misses the floor min 0.8514" in floor.message and "quality_floor='none'" in floor.message
    # The dummy is reported beside it, never gated.
    assert checks["dummy"].status == NOT_GATED and "reported, not gated" in checks["dummy"].message

    blessing = decide(list(checks.values()), config().thresholds, baseline_available=False)
    assert not blessing.blessed
    assert any("worse than default_gradient_boosting" in r for r in blessing.reasons)


def test_within_the_tolerance_passes_and_the_tolerance_is_relative():
    result = evaluation("classification", {"f1_macro": 0.855}, {"f1_macro": 0.3}, {"f1_macro": 0.86})
    assert by_rule(floor_checks(result, "f1_macro", config()))["default_gradient_boosting"].status == PASSED
    strict = config(floor_tolerance=0.0)
    assert by_rule(floor_checks(result, "f1_macro", strict))["default_gradient_boosting"].status == FAILED


def test_lower_is_better_metrics_bound_from_above():
    result = evaluation("regression", {"rmse": 55.0, "r2": 0.4}, {"rmse": 77.0}, {"rmse": 54.0})
    floor = by_rule(floor_checks(result, "neg_root_mean_squared_error", config("regression")))[
        "default_gradient_boosting"
    ]
    assert floor.metric == "rmse" and floor.threshold == pytest.approx(54.54)
    assert floor.status == FAILED and "floor max 54.54" in floor.message
    loose = config("regression", floor_tolerance=0.05)
    assert (
        by_rule(floor_checks(result, "neg_root_mean_squared_error", loose))[
            "default_gradient_boosting"
        ].status
        == PASSED
    )


def test_the_floor_uses_the_metric_train_optimised_else_the_primary_one():
    result = evaluation("classification", {"f1_macro": 0.9, "roc_auc": 0.95, "log_loss": 0.3}, {}, {})
    assert floor_metric("roc_auc", result) == "roc_auc"
    assert floor_metric("neg_log_loss", result) == "log_loss"
    assert floor_metric("jaccard_macro", result) == "f1_macro"  # no counterpart in evaluate
    assert floor_metric("", result) == "f1_macro"


def test_the_floor_can_be_the_dummy_or_off():
    result = evaluation("classification", {"f1_macro": 0.5}, {"f1_macro": 0.3}, {"f1_macro": 0.9})
    on_dummy = by_rule(floor_checks(result, "f1_macro", config(quality_floor="dummy")))
    assert on_dummy["dummy"].status == PASSED and on_dummy["default_gradient_boosting"].status == NOT_GATED
    assert floor_checks(result, "f1_macro", config(quality_floor="none")) == []


def test_an_evaluation_without_baselines_is_reported_not_gated():
    result = EvaluationResult(task="classification", label_column="y", rows=10, metrics={"f1_macro": 0.9})
    (check,) = floor_checks(result, "f1_macro", config())
    assert check.status == NOT_GATED and "holds no baselines" in check.message


def test_an_undefined_metric_is_not_gated():
    result = evaluation("classification", {"f1_macro": 0.9}, {"f1_macro": None}, {"f1_macro": None})
    assert {c.status for c in floor_checks(result, "f1_macro", config())} == {NOT_GATED}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"quality_floor": "hgb"}, "parameter quality_floor='hgb' is not one of"),
        ({"floor_tolerance": -0.1}, "parameter floor_tolerance=-0.1 must be a number in [0, 1)"),
        ({"floor_tolerance": 1.5}, "must be a number in [0, 1)"),
        ({"floor_tolerance": "0.1"}, "must be a number in [0, 1)"),
    ],
)
def test_bad_floor_settings_are_named(settings, message):
    with pytest.raises(ParameterError) as error:
        BlessingConfig("y", "classification", **settings)
    assert message in str(error.value)


def test_the_gate_refuses_an_exported_model_worse_than_its_own_baseline(tmp_path):
    """End to end through train, export, evaluate and the gate on a public table: a logistic
    regression crippled by regularisation is worse than the default booster fitted beside it."""
    import dataclasses

    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from mlstages.components.common.baselines import load_baselines
    from mlstages.components.common.model_card import ModelCard
    from mlstages.components.evaluate.evaluate import evaluate, evaluate_baselines
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.export import export_model
    from mlstages.components.train.train import train
    from mlstages.components.validate_model.validate_model import validate_model

    df = load_breast_cancer(as_frame=True).frame
    train_df, test_df = df.iloc[::2].reset_index(drop=True), df.iloc[1::2].reset_index(drop=True)
    columns = [c for c in df.columns if c != "target"]
    # Imputed, so that the gate's robustness checks (rows with a feature missing) pass.
    scaler = make_pipeline(SimpleImputer(), StandardScaler())
    features = ColumnTransformer([("n", scaler, columns)]).set_output(transform="pandas")
    features.fit(train_df[columns])
    settings = TrainConfig(
        "target",
        "classification",
        model_families=("logistic_regression",),
        search_space={"logistic_regression": {"C": [1e-5]}},
    )
    with threadpool_limits(limits=1):
        result = train(train_df, features, settings)
        export_model(result, tmp_path / "model", {c: "numeric" for c in columns})
        card = ModelCard.read(tmp_path / "model")
        evaluated = evaluate(result.model, test_df, "target", "classification", classes=result.classes)
        baselines = load_baselines(str(tmp_path / "model"), card.baselines)
        evaluated = dataclasses.replace(
            evaluated,
            baselines=evaluate_baselines(baselines, test_df, "target", "classification", result.classes),
        )
        gate = BlessingConfig("target", "classification", thresholds={"f1_macro": {"min": 0.1}})
        blessing = validate_model(tmp_path / "model", test_df, evaluated, gate, infra_validation=False)

    assert not blessing.blessed
    (floor,) = [c for c in blessing.failed if c.kind == FLOOR]
    assert floor.rule == "default_gradient_boosting" and floor.metric == "f1_macro"
    assert floor.value < floor.baseline == evaluated.baselines["default_gradient_boosting"]["f1_macro"]
    assert "the model is worse than default_gradient_boosting" in blessing.reason
    off = validate_model(
        tmp_path / "model",
        test_df,
        evaluated,
        dataclasses.replace(gate, quality_floor="none"),
        infra_validation=False,
    )
    assert off.blessed
