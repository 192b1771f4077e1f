"""The scalers, in one place: the names a user picks, the scikit-learn scaler each makes, and its
arithmetic for the fast transform. A new scaler is one entry here; a scaler whose arithmetic is
not known is applied by calling its own transform (never an error at predict time)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.preprocessing import (
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)

from mlstages.components.common.errors import require_choice

SCALINGS = ("standard", "minmax", "robust", "none")


def make_scaler(scaling: str) -> BaseEstimator | None:
    """The scikit-learn scaler for a ``scaling`` name; None for ``"none"``."""
    require_choice("scaling", scaling, SCALINGS)
    return {
        "standard": StandardScaler,
        "minmax": MinMaxScaler,
        "robust": RobustScaler,
        "none": lambda: None,
    }[scaling]()


def scaling_steps(scaler: Any) -> tuple[tuple[str, np.ndarray], ...]:
    """A fitted scaler's arithmetic as (operation, operand) steps, in the order its ``transform``
    applies them (``StandardScaler``: subtract ``mean_``, divide by ``scale_``; ``MinMaxScaler``:
    multiply by ``scale_``, add ``min_``; ``RobustScaler``: subtract ``center_``, divide by
    ``scale_``). None (no scaling) has no steps. Any other scaler raises ValueError."""
    if scaler is None:
        return ()
    steps: list[tuple[str, np.ndarray]] = []
    if type(scaler) is StandardScaler:
        if scaler.with_mean:
            steps.append(("subtract", scaler.mean_))
        if scaler.with_std:
            steps.append(("divide", scaler.scale_))
    elif type(scaler) is MinMaxScaler and not scaler.clip:
        steps += [("multiply", scaler.scale_), ("add", scaler.min_)]
    elif type(scaler) is RobustScaler:
        if scaler.with_centering:
            steps.append(("subtract", scaler.center_))
        if scaler.with_scaling:
            steps.append(("divide", scaler.scale_))
    else:
        raise ValueError(f"no arithmetic known for the scaler {scaler!r}")
    return tuple((operation, np.asarray(operand, dtype=np.float64)) for operation, operand in steps)


def apply_scaling(values: np.ndarray, steps: tuple[tuple[str, np.ndarray], ...]) -> np.ndarray:
    """``values`` (float64, owned by the caller: changed in place) after ``scaling_steps``."""
    for operation, operand in steps:
        if operation == "subtract":
            values -= operand
        elif operation == "divide":
            values /= operand
        elif operation == "multiply":
            values *= operand
        else:
            values += operand
    return values
