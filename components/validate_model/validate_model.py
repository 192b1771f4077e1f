"""Model validation, the blessing gate: is the candidate model good enough to deploy?

The candidate is blessed only when every gated check passes:

- absolute thresholds (``{"roc_auc": {"min": 0.85}}``) and change thresholds against the baseline
  (``{"f1_macro": {"max_drop": 0.01}}``: the candidate may be at most 0.01 below it), on the whole
  test split and on every slice of the declared slice columns;
- the quality floor (floor.py): not worse than scikit-learn's default HistGradientBoosting, fitted
  by train on the same rows and evaluated on the same test rows, beyond floor_tolerance;
- robustness checks: on rows simulated from the test split (a feature missing, every feature
  missing, an unseen category, extreme numbers) the model returns one finite prediction per row.

As in TFX's Evaluator, a gate without thresholds blesses nothing, and a first run (no baseline) is
judged on the absolute thresholds only. The baseline is the current champion of the model registry
(registry.read_champion), loaded and evaluated on the SAME test split with the evaluate stage's own
code, so that candidate and baseline are compared on identical rows.

A failed check yields ``blessed=False`` with the reasons. Infra validation (the candidate loaded and
queried in the serving code) runs only for a candidate that passed everything else, and its failure
raises: the model cannot be served, so the pipeline must stop rather than carry on unblessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlstages.components.common.model_card import ModelCard

import os
import tempfile
from pathlib import Path

import pandas as pd

from mlstages.components.common.errors import InputDataError
from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.validate_model.baseline import evaluate_baseline, load_baseline
from mlstages.components.validate_model.floor import floor_checks
from mlstages.components.validate_model.floor_noise import floor_resampler
from mlstages.components.validate_model.gate import Blessing, decide
from mlstages.components.validate_model.robustness import INFRA_SAMPLE_ROWS, robustness_checks
from mlstages.components.validate_model.thresholds import BlessingConfig, check_thresholds, gated_slices

# The robustness and infra checks need rows, not all of them: on a test split larger than this
# they take a seeded sample (the metrics compared with the thresholds and the champion cover
# every row).
CHECK_SAMPLE_ROWS = 100_000


def validate_model(
    model_dir: str | os.PathLike,
    test_df: pd.DataFrame | str | os.PathLike,
    evaluation: EvaluationResult,
    config: BlessingConfig,
    *,
    model_registry: str = "",
    model_name: str = "model",
    candidate_uri: str = "",
    infra_validation: bool = True,
) -> Blessing:
    """Run the whole gate on the exported model in ``model_dir``.

    ``evaluation`` is evaluate's result for this model on ``test_df``: the test rows, or the test
    dataset's path, which is then streamed (the champion predicts it a batch at a time) and
    sampled for the robustness and infra checks (CHECK_SAMPLE_ROWS). The baseline is the champion
    of ``model_name`` in ``model_registry`` (none when the registry is empty or has no champion).
    ``candidate_uri`` is where the candidate lives (its registry version, if published).
    With ``infra_validation``, a candidate that passed everything else is loaded and queried in the
    serving code; its failure raises InfraValidationFailed.
    """
    from mlstages.components.common.artifacts import load_estimator
    from mlstages.components.common.baselines import load_baselines
    from mlstages.components.common.model_card import ModelCard
    from mlstages.components.common.registry import champion_uri, check_model_name, read_champion, version_of
    from mlstages.components.evaluate.evaluate import model_inputs

    check_model_name(model_name)
    card = ModelCard.read(model_dir)
    classes, input_columns = model_inputs(card, config.label_column, config.task)
    if evaluation.task != config.task or (
        evaluation.label_column and evaluation.label_column != config.label_column
    ):
        raise InputDataError(
            f"the evaluation is of task={evaluation.task!r}, label_column={evaluation.label_column!r}, but "
            f"the gate has task={config.task!r}, label_column={config.label_column!r}: pass the evaluation "
            "of this model"
        )
    test_path = None if isinstance(test_df, pd.DataFrame) else str(test_df)
    if test_path is not None:
        from mlstages.components.common.dataset_files import dataset_rows
        from mlstages.components.common.dataset_positions import sample_rows

        test_rows = dataset_rows(test_path, what="test split")
        test_df = sample_rows(test_path, CHECK_SAMPLE_ROWS, seed=0, what="test split").reset_index(drop=True)
    else:
        test_rows = len(test_df)
    if evaluation.rows != test_rows:
        raise InputDataError(
            f"the evaluation covers {evaluation.rows} rows but the test split has {test_rows}: pass "
            "the test split the model was evaluated on"
        )
    slices = gated_slices(evaluation, config.slice_columns)
    slice_columns = list(dict.fromkeys(s.column for s in slices))
    model = load_estimator(model_dir, "model")

    candidate = {
        "uri": candidate_uri or str(model_dir),
        "version": version_of(candidate_uri, model_registry, model_name),
        "sha256": card.sha256,
    }
    baseline_info = None
    baseline_eval = None
    pointer = read_champion(model_registry, model_name) if model_registry.strip() else None
    notes = []
    if not model_registry.strip():
        notes.append("no model_registry is set, so there is no champion to compare with")
    if pointer is not None:
        with tempfile.TemporaryDirectory(prefix="mlstages-baseline-") as scratch:
            baseline_model, baseline_card = load_baseline(pointer["model_uri"], Path(scratch) / "model")
            baseline_eval = evaluate_baseline(
                baseline_model,
                baseline_card,
                test_path or test_df,
                config,
                slice_columns,
                pointer["model_uri"],
            )
        baseline_info = {
            "uri": pointer["model_uri"],
            "version": pointer.get("version"),
            "sha256": baseline_card.sha256,
            "pointer": champion_uri(model_registry, model_name),
        }
        if baseline_card.sha256 and baseline_card.sha256 == card.sha256:
            notes.append("the candidate is the champion itself (same sha256)")
    elif model_registry.strip():
        notes.append(f"no champion at {champion_uri(model_registry, model_name)} yet")

    checks = check_thresholds(evaluation, baseline_eval, config.thresholds, config)
    resample = floor_resampler(
        model,
        lambda: load_baselines(str(model_dir), card.baselines),
        test_df,
        config.label_column,
        config.task,
        classes,
        input_columns,
        test_rows,
    )
    checks += floor_checks(evaluation, card.scoring, config, resample)
    checks += robustness_checks(model, test_df, card)
    blessing = decide(
        checks,
        config.thresholds,
        baseline_eval is not None,
        candidate=candidate,
        baseline=baseline_info,
        min_slice_rows=config.min_slice_rows,
        notes=notes,
    )
    if blessing.blessed and infra_validation:
        blessing = run_infra_validation(blessing, model_dir, test_df, card)
    return blessing


def run_infra_validation(
    blessing: Blessing,
    model_dir: str | os.PathLike,
    test_df: pd.DataFrame,
    card: ModelCard,
) -> Blessing:
    """Load and query the model in the serving code (KServe's model server, as on the cluster).
    Raises InfraValidationFailed when it cannot be served; returns the blessing with the result."""
    from dataclasses import replace

    from mlstages.components.serving.infra import infra_validate
    from mlstages.components.serving.infra import render_markdown as infra_markdown

    sample = test_df[card.input_names].head(INFRA_SAMPLE_ROWS).reset_index(drop=True)
    result = infra_validate(str(model_dir), sample, name="candidate")
    result.raise_for_failure()
    record = result.to_dict()
    record["summary"] = infra_markdown(result)
    return replace(blessing, infra_validation=record)
