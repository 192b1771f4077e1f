"""The baselines saved beside a model: their names, their file, and the one reader of it.

train fits a dummy and scikit-learn's default HistGradientBoosting on the training rows and saves
them as ``baselines.joblib`` in the model folder (components/train/baselines.py); evaluate reports
their test metrics and the blessing gate holds the model to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DUMMY = "dummy"


DEFAULT_GRADIENT_BOOSTING = "default_gradient_boosting"


BASELINES = (DUMMY, DEFAULT_GRADIENT_BOOSTING)


BASELINES_FILE = "baselines"


def load_baselines(directory: str, card_entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fitted baselines saved beside a model, by name, their sha256 checked against the card
    entry; empty when the card records none (a model exported before baselines existed, or by
    another tool)."""
    from mlstages.components.common.artifacts import load_estimator

    if not card_entry:
        return {}
    loaded = load_estimator(directory, BASELINES_FILE, sha256=str(card_entry.get("sha256") or ""))
    return {name: loaded[name] for name in BASELINES if name in loaded}
