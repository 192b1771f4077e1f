"""The baseline: the champion model the candidate is compared with, and its metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlstages.components.common.model_card import ModelCard

import os
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlstages.components.common.errors import InputDataError, MlstagesError
from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.validate_model.thresholds import BlessingConfig


def load_baseline(model_uri: str, directory: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Download the model directory at ``model_uri`` into ``directory`` and load it after checking
    its sha256 and that it was saved with this scikit-learn. Any failure is an InputDataError that
    names ``model_uri``: a baseline that cannot be loaded must stop the gate, not be skipped."""
    import sklearn
    from sklearn.exceptions import InconsistentVersionWarning

    from mlstages.components.common.artifacts import load_estimator
    from mlstages.components.common.model_card import ModelCard
    from mlstages.components.common.registry import download_version

    fix = "fix the champion, or point it at a loadable version (registry.set_champion)"
    try:
        download_version(model_uri, directory)
        card = ModelCard.read(directory, model_uri)
    except MlstagesError as exc:
        raise InputDataError(
            f"the champion {model_uri} cannot be loaded as the baseline: {exc}; {fix}"
        ) from exc
    saved_with = card.sklearn_version
    if saved_with and saved_with != sklearn.__version__:
        raise InputDataError(
            f"the champion {model_uri} was saved with scikit-learn {saved_with}, but this image has "
            f"{sklearn.__version__}: a pickled model is only reliable with the version that saved it; "
            f"republish the champion with scikit-learn {sklearn.__version__} and make it the champion, or "
            "remove the champion pointer to judge on absolute thresholds only"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            model = load_estimator(directory, "model")
    except MlstagesError as exc:
        raise InputDataError(
            f"the champion {model_uri} cannot be loaded as the baseline: {exc}; {fix}"
        ) from exc
    except Exception as exc:  # unpickling can raise anything (missing module, changed class, ...)
        raise InputDataError(
            f"the champion {model_uri} cannot be loaded as the baseline: model.joblib fails to unpickle "
            f"({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    return model, card


def evaluate_baseline(
    model: Any,
    card: ModelCard,
    test_df: pd.DataFrame | str,
    config: BlessingConfig,
    slice_columns: Sequence[str],
    model_uri: str,
) -> EvaluationResult:
    """The baseline's metrics on the candidate's test split and slices, computed by evaluate (on
    the test rows, or streamed from the test dataset at a path)."""
    from mlstages.components.evaluate.evaluate import evaluate, evaluate_dataset, model_inputs

    try:
        classes, input_columns = model_inputs(card, config.label_column, config.task)
        if isinstance(test_df, str):
            return evaluate_dataset(
                model,
                {},
                test_df,
                config.label_column,
                config.task,
                slice_columns=tuple(slice_columns),
                classes=classes,
                input_columns=input_columns,
            )
        return evaluate(
            model,
            test_df,
            config.label_column,
            config.task,
            slice_columns=tuple(slice_columns),
            classes=classes,
            input_columns=input_columns,
        )
    except MlstagesError as exc:
        raise InputDataError(
            f"the champion {model_uri} cannot be evaluated on this test split as the baseline: {exc}"
        ) from exc
