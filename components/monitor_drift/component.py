"""KFP component for the drift monitoring stage. The logic lives in the modules beside it;
monitor_drift.py runs them."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("monitor_drift"), install_kfp_package=False)
def monitor_drift(
    current: Input[Dataset],
    reference: Input[Artifact],
    drift_report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    result: Output[Artifact],
    model: Input[Model] = None,
    label_column: str = "",
    drift_share: float = 0.5,
    feature_thresholds: dict = {},
    method: str = "auto",
    retrain_on: str = "drift_or_decay",
    max_metric_drop: float = 0.05,
    metric_drops: dict = {},
    max_missing_increase: float = 0.1,
    engine: str = "local",
) -> NamedTuple("Outputs", [("retrain", bool), ("reasons", str), ("drift_share", float)]):
    """Compares a window of current data with the training reference, feature by feature, and
    decides whether to retrain.

    The reference (reference.json, written by train beside model.joblib) holds per-feature
    distributions of the training data, so the training data is never reread. Each feature gets a
    test chosen by type and sample size, as Evidently's DataDriftPreset does: when either sample
    has at most 1,000 values, Kolmogorov-Smirnov (numeric), chi-squared or the two-proportion
    Z-test (categorical), drift when p < 0.05; otherwise the Wasserstein distance normed by the
    training standard deviation (numeric) or the Jensen-Shannon distance (categorical), drift at
    0.1 or more. PSI (drift at 0.2 or more) is available for both. A column missing from the window,
    all values missing, values of another type, or a missing share that rose by more than
    max_missing_increase is drift too; new categories count in the tests and are named; new columns
    are listed. The window drifts when the share of drifted features reaches drift_share. The
    window is read a batch at a time: every count and bin is exact at any size; beyond a million
    values a column, KS and Wasserstein run on a seeded uniform sample of a million (fewer when a
    quarter of the task's memory cannot hold that many of every numeric column; the result's notes
    say so), and performance on a seeded sample of the rows that fit the task's memory. With a
    model and labels in the window, the model's metrics on the labelled rows are compared with the
    test-set metrics recorded in the reference. An empty window fails the task.

    Args:
        current: The current window (Parquet): new data or logged requests, with the model's input
            columns and optionally the label.
        reference: The model directory from train (it holds reference.json), or an artifact that is
            a directory with reference.json, or the reference.json file itself.
        model: Optional exported model (model.joblib + metadata.json) to check performance on the
            labelled rows of the window.
        label_column: The label in the window; empty for the one the reference records.
        drift_share: The window drifts when at least this share of the checked features drifted.
        feature_thresholds: Per-feature test and threshold, e.g. {"age": {"method": "psi",
            "threshold": 0.2}}; methods: ks, wasserstein, chisquare, z, jensenshannon, psi.
        method: auto, or one of the methods for every feature it applies to.
        retrain_on: What triggers retraining: drift_or_decay, drift, decay or drift_and_decay.
        max_metric_drop: The largest relative drop of the primary metric (f1_macro or rmse) before
            it counts as performance decay, e.g. 0.05 for 5%.
        metric_drops: Per-metric largest relative drops, e.g. {"accuracy": 0.02, "roc_auc": 0.05};
            when given, replaces max_metric_drop.
        max_missing_increase: A feature also drifts when its missing share rose by more than this
            (0.1 = 10 percentage points).
        engine: Where the window is summarised: "local" (this task's process), "dask" (a Dask
            cluster started for the task: a LocalCluster of worker processes, or on Kubernetes a
            DaskCluster of the settings file) or the tcp:// address of a running Dask scheduler.
            The decision is the same on every engine.

    Returns:
        drift_report: HTML report: the decision and its reasons, one row per feature with its test,
            score, threshold, sample sizes and a small chart of training vs current distribution,
            the label, and performance.
        summary: Markdown summary of the same.
        metrics: drift_share, drifted_features, features_checked, worst_score (the largest
            per-feature score relative to its threshold; 1 or more is drift), dataset_drift and
            retrain (0/1), current_rows, new_columns, and current_<metric> when performance was
            computed.
        result: JSON of the whole result (per-feature scores, sample sizes, reasons, performance).
        retrain: Whether to retrain.
        reasons: Why, as one string (reasons joined by "; "); empty when not retraining.
        drift_share: The share of checked features that drifted.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    import json
    from collections import namedtuple

    from mlstages.components.common.artifacts import load_estimator
    from mlstages.components.common.engine import open_engine
    from mlstages.components.common.model_card import ModelCard
    from mlstages.components.common.reference import load_reference
    from mlstages.components.monitor_drift.config import DriftConfig
    from mlstages.components.monitor_drift.monitor_drift import detect_drift_dataset
    from mlstages.components.monitor_drift.report import render_html, render_markdown

    config = DriftConfig(
        drift_share=drift_share,
        method=method,
        feature_thresholds=feature_thresholds,
        retrain_on=retrain_on,
        max_metric_drop=metric_drops or max_metric_drop,
        max_missing_increase=max_missing_increase,
        label_column=label_column,
        engine=engine,
    )
    reference_stats = load_reference(reference.path)
    fitted, model_card = None, None
    if model is not None:
        model_card = ModelCard.read(model.path)
        fitted = load_estimator(model.path, "model")
    # The window is read a batch at a time: its size is not limited by the task's memory.
    with open_engine(config.engine, locations={current.path: current.uri}) as running:
        outcome = detect_drift_dataset(
            reference_stats, current.path, config, model=fitted, model_card=model_card, engine=running
        )
    document = json.dumps(outcome.to_dict(), indent=2, allow_nan=False)
    html_report = render_html(outcome)
    markdown_report = render_markdown(outcome)

    with open(result.path, "w", encoding="utf-8") as handle:
        handle.write(document)
    result.metadata.update({"format": "json", "retrain": outcome.retrain, "rows": outcome.rows})
    with open(drift_report.path, "w", encoding="utf-8") as handle:
        handle.write(html_report)
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(markdown_report)
    for name, value in outcome.metrics().items():
        metrics.log_metric(name, value)

    outputs = namedtuple("Outputs", ["retrain", "reasons", "drift_share"])
    return outputs(outcome.retrain, "; ".join(outcome.reasons), float(outcome.drift_share))
