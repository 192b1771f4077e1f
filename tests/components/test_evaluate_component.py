"""The evaluate component run through kfp.local: train on the penguins, then evaluate."""

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Markdown, Metrics
from kfp_helpers import prepare_penguins

from mlstages.components.evaluate.component import evaluate
from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.train.component import train


class EvaluateOutputs(NamedTuple):
    metrics: Metrics
    classification_metrics: ClassificationMetrics
    evaluation: Artifact
    report: HTML
    summary: Markdown
    primary_metric: str
    primary_value: float
    test_rows: int


@dsl.pipeline
def train_and_evaluate(label_column: str, task: str, family: str, slice_columns: list) -> EvaluateOutputs:
    prepared = prepare_penguins(label_column=label_column)
    trained = train(
        train=prepared.outputs["train_split"],
        features=prepared.outputs["features"],
        label_column=label_column,
        task=task,
        model_families=[family],
        cv_folds=3,
    )
    evaluated = evaluate(
        test=prepared.outputs["test_split"],
        model=trained.outputs["model"],
        label_column=label_column,
        task=task,
        slice_columns=slice_columns,
    )
    return EvaluateOutputs(
        metrics=evaluated.outputs["metrics"],
        classification_metrics=evaluated.outputs["classification_metrics"],
        evaluation=evaluated.outputs["evaluation"],
        report=evaluated.outputs["report"],
        summary=evaluated.outputs["summary"],
        primary_metric=evaluated.outputs["primary_metric"],
        primary_value=evaluated.outputs["primary_value"],
        test_rows=evaluated.outputs["test_rows"],
    )


def test_evaluate_writes_metrics_confusion_matrix_roc_curve_and_slices(kfp_local):
    run = train_and_evaluate(
        label_column="species",
        task="classification",
        family="logistic_regression",
        slice_columns=["island", "sex"],
    )
    evaluation = EvaluationResult.from_dict(json.loads(Path(run.outputs["evaluation"].path).read_text()))

    metrics = run.outputs["metrics"].metadata
    assert {k: v for k, v in metrics.items() if not k.startswith("baseline_")} == pytest.approx(
        evaluation.metrics
    )
    # The baselines train saved beside the model, on the same test rows, under their own names.
    assert set(evaluation.baselines) == {"dummy", "default_gradient_boosting"}
    for baseline, values in evaluation.baselines.items():
        for name, value in values.items():
            assert metrics[f"baseline_{baseline}_{name}"] == pytest.approx(value)
    assert evaluation.baselines["dummy"]["accuracy"] < 0.5  # the most frequent species
    assert evaluation.baselines["default_gradient_boosting"]["accuracy"] > 0.9
    assert "baseline: default_gradient_boosting" in Path(run.outputs["summary"].path).read_text()
    for name in ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro", "roc_auc"):
        assert 0.9 < metrics[name] <= 1.0, name
    assert metrics["log_loss"] > 0
    assert (run.outputs["primary_metric"], run.outputs["test_rows"]) == ("f1_macro", 104)
    assert run.outputs["primary_value"] == pytest.approx(metrics["f1_macro"])

    ui = run.outputs["classification_metrics"].metadata
    names = [spec["displayName"] for spec in ui["confusionMatrix"]["annotationSpecs"]]
    assert names == ["Adelie", "Chinstrap", "Gentoo"]
    assert sum(sum(row["row"]) for row in ui["confusionMatrix"]["rows"]) == 104
    assert ui["confidenceMetrics"][-1]["falsePositiveRate"] == 1.0
    assert len(ui["confidenceMetrics"]) == len(evaluation.roc_curve["fpr"])

    assert {(s.column, s.value) for s in evaluation.slices} >= {("island", "Torgersen"), ("sex", "(missing)")}
    assert sum(s.rows for s in evaluation.slices if s.column == "island") == 104
    report = Path(run.outputs["report"].path).read_text()
    assert "<svg" in report and "Torgersen" in report
    assert Path(run.outputs["summary"].path).read_text().startswith("# Evaluate")


def test_evaluate_regression_leaves_classification_metrics_empty_and_says_so(kfp_local):
    run = train_and_evaluate(
        label_column="body_mass_g", task="regression", family="linear_regression", slice_columns=[]
    )
    metrics = run.outputs["metrics"].metadata
    own = {"mse", "rmse", "mae", "r2", "median_absolute_error"}
    baselines = {f"baseline_{b}_{m}" for b in ("dummy", "default_gradient_boosting") for m in own}
    assert set(metrics) == own | baselines
    assert metrics["baseline_dummy_r2"] <= 0.0 < metrics["baseline_default_gradient_boosting_r2"]
    assert metrics["r2"] > 0.7  # body mass follows flipper length and species-specific size
    assert run.outputs["primary_metric"] == "rmse"
    assert run.outputs["classification_metrics"].metadata == {}
    assert "ClassificationMetrics output is empty" in Path(run.outputs["summary"].path).read_text()


def test_evaluate_with_an_unknown_slice_column_fails_before_writing(kfp_local, capfd):
    with pytest.raises(RuntimeError, match="Inner task failed"):
        train_and_evaluate(
            label_column="species",
            task="classification",
            family="logistic_regression",
            slice_columns=["colour"],
        )
    output = capfd.readouterr()
    assert "slice_columns: column(s) 'colour' not in the test split" in output.out + output.err
    root = kfp_local / "root"
    # <root>/<run>/<task>/<output>: train wrote its model, the failed evaluate task wrote nothing.
    assert list(root.rglob("model.joblib"))
    assert not [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[1] == "evaluate"]
