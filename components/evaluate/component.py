"""KFP component for the evaluation stage. The logic lives in the modules beside it;
evaluate.py runs them."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("evaluate"), install_kfp_package=False)
def evaluate(
    test: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
    label_column: str,
    task: str,
    slice_columns: list = [],
    model_uri: str = "",
    engine: str = "local",
) -> NamedTuple("Outputs", [("primary_metric", str), ("primary_value", float), ("test_rows", int)]):
    """Evaluates the exported model on the held-out test split, overall and per slice, predicting
    from the raw test rows as the served model will.

    Classification: accuracy, precision / recall / F1 (macro, weighted, and for two classes the
    positive class, the second in sorted order), ROC-AUC (one-vs-rest macro for several classes),
    log loss, confusion matrix and ROC curve. Regression: mse, rmse, mae, r2, median absolute error.
    Each slice column gives one row per value; numeric columns with more than 10 distinct values
    are cut into 4 quantile bins; missing values form a "(missing)" slice. A metric undefined on a
    slice (ROC-AUC on one class) is null in the JSON and "n/a" in the reports. The baselines train
    saved beside the model (a dummy and the default HistGradientBoosting, fitted on the same
    training rows) are evaluated on the same test rows and reported beside it: the quality floor
    the blessing gate holds the model to.

    Args:
        test: The test split (Parquet) with the label column and the raw feature columns.
        model: The exported model directory (model.joblib + metadata.json) from train.
        label_column: The column the model predicts; must match the model's.
        task: classification or regression; must match the model's.
        slice_columns: Columns of the test split to compute per-slice metrics for.
        model_uri: The model's registry version (train's model_uri output). When it is a registry
            location (gs:// or a folder) other than the model artifact itself, the evaluation JSON
            is also written there as evaluation.json, a new file that never overwrites another, so
            drift monitoring compares later windows with these test-set metrics.
        engine: Where the test rows are predicted: "local" (this task's process), "dask" (a Dask
            cluster started for the task: a LocalCluster of worker processes, or on Kubernetes a
            DaskCluster of the settings file) or the tcp:// address of a running Dask scheduler.
            The metrics are the same on every engine.

    Returns:
        metrics: Every overall metric under its flat name (accuracy, f1_macro, roc_auc, rmse, ...),
            and each baseline's as baseline_<name>_<metric>; undefined metrics are left out.
        classification_metrics: ROC curve and confusion matrix for the KFP UI (empty for regression).
        evaluation: JSON with task, metrics, slices, confusion matrix, ROC curve and the baselines'
            metrics, read by validate_model.
        report: HTML report: metrics, slice table, confusion matrix, ROC curve.
        summary: Markdown summary of the same.
        primary_metric: f1_macro for classification, rmse for regression.
        primary_value: Its value on the test split.
        test_rows: Rows evaluated.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    import json
    from collections import namedtuple

    from mlstages.components.common.artifacts import load_estimator
    from mlstages.components.common.baselines import load_baselines
    from mlstages.components.common.engine import open_engine
    from mlstages.components.common.model_card import ModelCard
    from mlstages.components.common.registry import attach_evaluation
    from mlstages.components.evaluate.evaluate import evaluate_dataset, model_inputs
    from mlstages.components.evaluate.metrics import PRIMARY_METRIC
    from mlstages.components.evaluate.report import render_html, render_markdown

    card = ModelCard.read(model.path)
    classes, input_columns = model_inputs(card, label_column, task)
    fitted = load_estimator(model.path, "model")
    # The test rows are streamed: the model and its baselines predict a batch at a time.
    with open_engine(engine, locations={test.path: test.uri}) as running:
        result = evaluate_dataset(
            fitted,
            load_baselines(model.path, card.baselines),
            test.path,
            label_column,
            task,
            slice_columns=tuple(slice_columns),
            classes=classes,
            input_columns=input_columns,
            engine=running,
        )
    document = json.dumps(result.to_dict(), indent=2, allow_nan=False)
    html_report = render_html(result)
    markdown_report = render_markdown(result)
    if result.task == "regression":
        markdown_report += (
            "\nThe ClassificationMetrics output is empty: a regression model has no ROC curve or "
            "confusion matrix.\n"
        )

    published = ""
    if model_uri.strip() and model_uri.rstrip("/") not in (model.uri.rstrip("/"), model.path.rstrip("/")):
        published = attach_evaluation(model_uri, document.encode("utf-8"))

    with open(evaluation.path, "w", encoding="utf-8") as handle:
        handle.write(document)
    evaluation.metadata.update({"task": result.task, "rows": result.rows, "format": "json"})
    if published:
        evaluation.metadata["published"] = published
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(html_report)
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(markdown_report)
    for name, value in result.metrics.items():
        if value is not None:
            metrics.log_metric(name, value)
    for baseline, values in result.baselines.items():
        for name, value in values.items():
            if value is not None:
                metrics.log_metric(f"baseline_{baseline}_{name}", value)
    if result.confusion_matrix is not None:
        classification_metrics.log_confusion_matrix(
            [str(label) for label in result.confusion_matrix["labels"]], result.confusion_matrix["matrix"]
        )
    if result.roc_curve is not None:
        curve = result.roc_curve
        classification_metrics.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])

    primary = PRIMARY_METRIC[result.task]
    outputs = namedtuple("Outputs", ["primary_metric", "primary_value", "test_rows"])
    return outputs(primary, float(result.metrics[primary]), result.rows)
