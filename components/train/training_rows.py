"""The training rows a task holds: read by train and by each trial branch the same way, so that
both search the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlstages.components.train.config import TrainConfig


@dataclass
class TrainingRows:
    """train_df: the rows held (every row of the split, or a seeded sample of held rows).
    available: the split's rows. feature_pipeline: the fitted feature pipeline. declared: its
    record of its input columns and their types. input_columns: the raw columns the served model
    takes, when the pipeline does not record them itself (else None)."""

    train_df: pd.DataFrame
    available: int
    feature_pipeline: Any
    declared: dict[str, str]
    input_columns: list[str] | None


def load_training_rows(train_path: str, features_path: str, config: TrainConfig) -> TrainingRows:
    """The training split's rows within the task's memory allowance, and the feature pipeline."""
    from mlstages.components.common.artifacts import load_estimator, read_metadata
    from mlstages.components.common.dataset_files import (
        bytes_per_row,
        dataset_rows,
        read_dataset,
        sample_rows,
    )
    from mlstages.components.common.memory import rows_within

    feature_pipeline = load_estimator(features_path, "features")
    feature_metadata = read_metadata(features_path)
    declared = feature_metadata.get("input_columns") or {}
    available = dataset_rows(train_path, what="training split")
    # A held row costs its raw values plus the feature matrix's: float64, a copy for the
    # estimator's array input and the one an estimator or baseline makes (three, measured by
    # benchmarks/peak_stacks.py). Half the allowance goes to them, the rest to the models.
    feature_count = len(feature_metadata.get("feature_names") or ()) or 100
    per_row = bytes_per_row(train_path, what="training split") + 24 * feature_count
    held_rows = config.max_train_rows or rows_within(0.5, per_row, floor=10_000)
    train_df = (
        read_dataset(train_path, what="training split")
        if available <= held_rows
        else sample_rows(train_path, held_rows, config.seed, what="training split").reset_index(drop=True)
    )
    # The served model takes the columns the feature pipeline was fitted on, in that order; a
    # pipeline that does not record them is trusted to its metadata (in training-data order).
    input_columns = None
    if declared and not hasattr(feature_pipeline, "feature_names_in_"):
        input_columns = [c for c in train_df.columns if c in declared]
    return TrainingRows(train_df, available, feature_pipeline, dict(declared), input_columns)
