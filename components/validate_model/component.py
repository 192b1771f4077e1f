"""KFP component for the model validation stage (the blessing gate). The logic lives in
the modules beside it; validate_model.py runs them."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("validate_model"), install_kfp_package=False)
def validate_model(
    model: Input[Model],
    test: Input[Dataset],
    evaluation: Input[Artifact],
    blessing: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
    label_column: str,
    task: str,
    thresholds: dict = {},
    slice_columns: list = [],
    min_slice_rows: int = 10,
    quality_floor: str = "default_gradient_boosting",
    floor_tolerance: float = 0.01,
    floor_confidence: float = 0.95,
    model_registry: str = "",
    model_name: str = "model",
    candidate_uri: str = "",
    infra_validation: bool = True,
) -> NamedTuple("Outputs", [("blessed", bool), ("reason", str), ("baseline_uri", str)]):
    """Decides whether the candidate model is good enough to deploy (the blessing gate), and
    outputs the decision as a bool for dsl.If.

    Thresholds are checked on the whole test split and on every slice: absolute bounds (min, max)
    and changes against the baseline (max_drop for higher-is-better metrics, max_increase for
    lower-is-better ones). The baseline is the champion of model_name in model_registry: it is
    loaded (sha256 and scikit-learn version checked) and evaluated on the same test split and
    slices with evaluate's code. A candidate worse than scikit-learn's default HistGradientBoosting
    (train's baseline, on the same rows) beyond floor_tolerance is not blessed (the quality floor).
    With no thresholds nothing is blessed; on a first run (no
    champion) only absolute thresholds apply, and the blessing says so. Slices with fewer than
    min_slice_rows rows, and metrics undefined on a slice, are reported but not gated. Robustness
    checks predict on rows simulated from the test split (each feature missing, every feature
    missing, unseen categories, extreme numbers) and require one finite, valid prediction per row.
    A candidate that passes everything is then loaded and queried in KServe's model server (infra
    validation); if that fails, the task fails and the pipeline stops. A champion that cannot be
    loaded also fails the task. A failed task writes no output.

    Args:
        model: The exported candidate model directory (model.joblib + metadata.json) from train.
        test: The test split (Parquet) the candidate was evaluated on.
        evaluation: evaluate's evaluation JSON for the candidate on that test split.
        label_column: The column the model predicts; must match the model's.
        task: classification or regression; must match the model's.
        thresholds: Metric name (evaluate's flat names: accuracy, f1_macro, roc_auc, log_loss,
            rmse, r2, ...) to bounds, for example {"roc_auc": {"min": 0.85}, "f1_macro": {"min":
            0.8, "max_drop": 0.01}, "log_loss": {"max": 0.5, "max_increase": 0.05}}. Empty: the
            model is not blessed.
        slice_columns: Slice columns of the evaluation to gate; empty for all of them.
        min_slice_rows: Slices with fewer rows are reported but not gated: on fewer than 10 rows
            one row moves accuracy by more than 10 points.
        quality_floor: The baseline the candidate must not be worse than: default_gradient_boosting
            (scikit-learn's HistGradientBoosting with default settings, fitted by train on the same
            rows), dummy (the most frequent class or the mean), or none. Compared on the metric
            train optimised (its scoring), on the whole test split.
        floor_tolerance: How much worse than that baseline the candidate may be, relative to the
            baseline's value: 0.01 lets it be 1% worse.
        floor_confidence: A candidate below that floor is refused only when it is below on at
            least this share of paired resamples of the test rows: on a small test split one row
            moves a metric by more than the tolerance, and such a miss passes and says so. 0 holds
            to the floor strictly.
        model_registry: The registry root (gs://bucket/prefix or a folder) holding the champion
            pointer; empty: no baseline.
        model_name: The model's name in the registry.
        candidate_uri: Where the candidate is published (train's model_uri); empty: the model
            artifact's URI. A published version gets the decision as blessing.json, which batch
            inference reads to refuse a version the gate did not bless.
        infra_validation: Load and query a passing candidate in the model server before blessing.

    Returns:
        blessing: JSON with the decision, reasons, every check (metric, slice, value, baseline,
            threshold, passed), candidate and baseline versions and URIs, first_run; the decision
            is also in the artifact's metadata.
        report: HTML report of the same.
        summary: Markdown summary of the same.
        blessed: True when the candidate is blessed; use with dsl.If. kfp.local 2.17 skips a
            dsl.If on a named output of a sibling task, so pass blessed to a nested pipeline and
            put dsl.If(blessed == True) there; that works locally and on a cluster.
        reason: The decision and its reasons on one line.
        baseline_uri: The champion the candidate was compared with; empty on a first run.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    import json
    from collections import namedtuple

    from mlstages.components.common.errors import InputDataError
    from mlstages.components.common.registry import attach_blessing, blessing_record
    from mlstages.components.evaluate.evaluate import EvaluationResult
    from mlstages.components.validate_model.report import render_html, render_markdown
    from mlstages.components.validate_model.thresholds import BlessingConfig
    from mlstages.components.validate_model.validate_model import validate_model as run_gate

    config = BlessingConfig(
        label_column=label_column,
        task=task,
        thresholds=thresholds,
        slice_columns=tuple(slice_columns),
        min_slice_rows=min_slice_rows,
        quality_floor=quality_floor,
        floor_tolerance=floor_tolerance,
        floor_confidence=floor_confidence,
    )
    try:
        with open(evaluation.path, encoding="utf-8") as handle:
            evaluated = EvaluationResult.from_dict(json.load(handle))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"evaluation {evaluation.path} is not evaluate's JSON: {exc}") from exc
    result = run_gate(
        model.path,
        test.path,  # streamed: the test split is never held whole
        evaluated,
        config,
        model_registry=model_registry,
        model_name=model_name,
        candidate_uri=candidate_uri or model.uri,
        infra_validation=infra_validation,
    )
    # The decision travels with the published version, for readers outside this run.
    published = ""
    if candidate_uri.strip() and candidate_uri.rstrip("/") not in (
        model.uri.rstrip("/"),
        model.path.rstrip("/"),
    ):
        record = blessing_record(
            result.blessed,
            result.reason,
            str(result.candidate.get("sha256") or ""),
            str((result.baseline or {}).get("version") or ""),
        )
        published = attach_blessing(candidate_uri, record)
    document = json.dumps(result.to_dict(), indent=2, allow_nan=False)
    html_report = render_html(result)
    markdown_report = render_markdown(result)

    with open(blessing.path, "w", encoding="utf-8") as handle:
        handle.write(document)
    baseline_uri = result.baseline["uri"] if result.baseline else ""
    counts = result.counts
    blessing.metadata.update(
        {
            "blessed": result.blessed,
            "decision": result.decision,
            "first_run": result.first_run,
            "candidate_uri": result.candidate.get("uri") or "",
            "candidate_version": result.candidate.get("version") or "",
            "baseline_uri": baseline_uri,
            "baseline_version": (result.baseline or {}).get("version") or "",
            "checks_passed": counts["passed"],
            "checks_failed": counts["failed"],
            "checks_not_gated": counts["not gated"],
            "format": "json",
        }
    )
    if published:
        blessing.metadata["published"] = published
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(html_report)
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(markdown_report)

    outputs = namedtuple("Outputs", ["blessed", "reason", "baseline_uri"])
    return outputs(result.blessed, result.reason, baseline_uri)
