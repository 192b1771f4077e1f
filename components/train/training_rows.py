"""The training rows a task holds: read and transformed by train and by each trial branch the same
way, so that both search the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlstages.components.common.progress import report
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.matrix import TrainingMatrix


@dataclass
class TrainingRows:
    """matrix: the rows held (every row of the split, or a seeded sample of them), transformed.
    available: the split's rows. feature_pipeline: the fitted feature pipeline. declared: its
    record of its input columns and their types."""

    matrix: TrainingMatrix
    available: int
    feature_pipeline: Any
    declared: dict[str, str]


def load_training_rows(train_path: str, features_path: str, config: TrainConfig) -> TrainingRows:
    """The training split's rows within the task's memory allowance, streamed a batch at a time
    through the feature pipeline into one matrix (train/matrix.py)."""
    from mlstages.components.common.artifacts import load_estimator, read_metadata
    from mlstages.components.common.dataset_files import dataset_columns, dataset_rows, iter_batches
    from mlstages.components.common.dataset_positions import iter_positions, sample_positions
    from mlstages.components.common.memory import rows_within
    from mlstages.components.train.matrix import build_matrix, resolve_input_columns

    feature_pipeline = load_estimator(features_path, "features")
    feature_metadata = read_metadata(features_path)
    declared = feature_metadata.get("input_columns") or {}
    available = dataset_rows(train_path, what="training split")
    # A held row costs the matrix's row, a copy of it (a fold, or an estimator's input: random
    # forests take float32, the native-category booster its own codes) and room for one more an
    # estimator may make (the default booster no longer does: holdout_fit.py). Half the allowance
    # goes to them, the rest to the models.
    feature_count = len(feature_metadata.get("feature_names") or ()) or 100
    held_rows = config.max_train_rows or rows_within(0.5, 24 * feature_count, floor=10_000)
    split_columns = dataset_columns(train_path, what="training split")
    # The served model takes the columns the feature pipeline was fitted on, in that order; a
    # pipeline that does not record them is trusted to its metadata (in training-data order).
    given = None
    if declared and not hasattr(feature_pipeline, "feature_names_in_"):
        given = [c for c in split_columns if c in declared]
    label = config.label_column
    input_columns = resolve_input_columns(split_columns, feature_pipeline, label, given)
    # Without the label the batches are read whole, so the matrix names the missing column.
    needed = [*input_columns, label] if label in split_columns else None
    if available <= held_rows:
        batches = iter_batches(train_path, columns=needed, what="training split")
        rows = available
    else:
        positions = sample_positions(available, held_rows, config.seed)
        batches = iter_positions(train_path, positions, columns=needed, what="training split")
        rows = len(positions)
    report(
        f"transforming {rows:,} of the {available:,} training rows"
        + (" (a seeded sample: what the task's memory allows)" if rows < available else "")
    )
    matrix = build_matrix(batches, rows, input_columns, feature_pipeline, config)
    report(
        f"{matrix.rows:,} rows x {len(matrix.feature_names)} features "
        f"({matrix.features.nbytes / 2**20:,.1f} MiB)"
    )
    return TrainingRows(matrix, available, feature_pipeline, dict(declared))
