"""The quality floor: a candidate worse than a plain baseline is not blessed.

train fits two baselines on the same training rows as the model (a dummy, and scikit-learn's
HistGradientBoosting with its defaults) and evaluate scores them on the same test rows. The gate
compares the candidate with the baseline named by ``quality_floor`` on the metric train optimised
(its scorer, as evaluate names it), allowing ``floor_tolerance`` (relative: 0.01 lets the candidate
be 1% worse). A miss that the test split's noise explains (floor_noise.py: the candidate misses on
fewer than ``floor_confidence`` of paired resamples of the test rows) passes, and says so: on a
small split one row moves a metric by more than any sensible tolerance. The other baseline is
reported, not gated. A model with no baselines (exported before they existed) is reported as not
gated.
"""

from __future__ import annotations

from collections.abc import Callable

from mlstages.components.common.baselines import BASELINES
from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.evaluate.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC
from mlstages.components.validate_model.floor_noise import PairedBootstrap
from mlstages.components.validate_model.thresholds import (
    FAILED,
    MAX,
    MIN,
    NOT_GATED,
    OVERALL,
    PASSED,
    TOLERANCE,
    BlessingConfig,
    Check,
)

FLOOR = "floor"


# (baseline name, metric) -> the paired resamples of the candidate and that baseline, or None when
# they cannot be drawn (no rows or predictions at hand).
Resampler = Callable[[str, str], "PairedBootstrap | None"]


NO_FLOOR = "none"


# scikit-learn scorer name -> evaluate's name of the same metric.
_SCORER_METRICS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1": "f1",
    "f1_macro": "f1_macro",
    "f1_weighted": "f1_weighted",
    "precision_macro": "precision_macro",
    "recall_macro": "recall_macro",
    "roc_auc": "roc_auc",
    "roc_auc_ovr": "roc_auc",
    "neg_log_loss": "log_loss",
    "neg_root_mean_squared_error": "rmse",
    "neg_mean_squared_error": "mse",
    "neg_mean_absolute_error": "mae",
    "neg_median_absolute_error": "median_absolute_error",
    "r2": "r2",
}


def floor_metric(scoring: str, evaluation: EvaluationResult) -> str:
    """The metric train optimised, as the evaluation names it; the task's primary metric when the
    scorer has no counterpart there."""
    metric = _SCORER_METRICS.get(scoring, "")
    return metric if metric in evaluation.metrics else PRIMARY_METRIC[evaluation.task]


def floor_checks(
    evaluation: EvaluationResult, scoring: str, config: BlessingConfig, resample: Resampler | None = None
) -> list[Check]:
    """One check per baseline in the evaluation: gated for ``config.quality_floor``, reported for
    the others; a single not-gated check when the evaluation holds no baselines. ``resample`` draws
    the paired resamples that judge a gated miss against the test split's noise (called only on a
    miss); without it, the tolerance alone decides."""
    metric = floor_metric(scoring, evaluation)
    if config.quality_floor == NO_FLOOR:
        return []
    if not evaluation.baselines:
        return [
            Check(
                kind=FLOOR,
                scope=OVERALL,
                rule=config.quality_floor,
                status=NOT_GATED,
                message="the evaluation holds no baselines (a model exported by an older mlstages or "
                "another tool): quality floor not gated",
                metric=metric,
            )
        ]
    value = evaluation.metrics.get(metric)
    return [
        _check(name, metric, value, evaluation.baselines[name].get(metric), evaluation.rows, config, resample)
        for name in BASELINES
        if name in evaluation.baselines
    ]


def _check(
    name: str,
    metric: str,
    value: float | None,
    reference: float | None,
    rows: int,
    config: BlessingConfig,
    resample: Resampler | None,
) -> Check:
    higher = metric in HIGHER_IS_BETTER
    gated = name == config.quality_floor
    what = f"{metric} on the whole test split"
    if value is None or reference is None:
        return Check(
            kind=FLOOR,
            scope=OVERALL,
            rule=name,
            status=NOT_GATED,
            metric=metric,
            rows=rows,
            value=value,
            baseline=reference,
            message=f"{what}: undefined for the {'candidate' if value is None else name + ' baseline'}, "
            "floor not gated",
        )
    slack = config.floor_tolerance * abs(reference)
    bound = reference - slack if higher else reference + slack
    passed = value >= bound - TOLERANCE if higher else value <= bound + TOLERANCE
    text = (
        f"{what} is {value:.4g} against the {name} baseline's {reference:.4g}: "
        f"{'meets' if passed else 'misses'} the floor {MIN if higher else MAX} {bound:.4g} "
        f"(floor_tolerance={config.floor_tolerance:g})"
    )
    if not gated:
        return Check(
            kind=FLOOR,
            scope=OVERALL,
            rule=name,
            status=NOT_GATED,
            metric=metric,
            rows=rows,
            value=value,
            baseline=reference,
            threshold=bound,
            message=f"{text}; reported, not gated",
        )
    if not passed and config.floor_confidence > 0 and resample is not None:
        drawn = resample(name, metric)
        if drawn is not None:
            reach = drawn.margin_bound(
                value, reference, config.floor_tolerance, higher, config.floor_confidence
            )
            passed = reach >= 0
            text += (
                f"; {'within' if passed else 'beyond'} the test split's noise: on paired resamples of "
                f"{drawn.rows:,} test rows the candidate {'could' if passed else 'could not'} reach the floor at "
                f"{config.floor_confidence:g} confidence (margin bound {reach:+.4g}, floor_confidence="
                f"{config.floor_confidence:g}; 0 holds to the floor strictly)"
            )
    if not passed:
        text += (
            f": the model is worse than {name}, fitted on the same rows with default settings; search "
            "the gradient_boosting family or longer (time_budget_seconds, n_iter), or lower the bar "
            "with floor_tolerance or quality_floor='none'"
        )
    return Check(
        kind=FLOOR,
        scope=OVERALL,
        rule=name,
        status=PASSED if passed else FAILED,
        metric=metric,
        rows=rows,
        value=value,
        baseline=reference,
        threshold=bound,
        message=text,
    )
