"""The scalers, in one place: the names a user picks, the scikit-learn scaler each makes, and its
arithmetic for the fast transform.

A new scaler is one entry in ``SCALERS`` (and, for the fast path, its arithmetic in
``scaling_steps``). A scaler whose arithmetic is not known here is applied by calling its own
fitted ``transform``: slower, never an error at predict time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from mlstages.components.common.errors import require_choice

# scaling name -> the scikit-learn scaler it makes (None: no scaling).
SCALERS: dict[str, type[BaseEstimator] | None] = {
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "robust": RobustScaler,
    "none": None,
}
SCALINGS = tuple(SCALERS)

ScalingSteps = tuple[tuple[str, np.ndarray], ...]


def make_scaler(scaling: str) -> BaseEstimator | None:
    """The unfitted scikit-learn scaler for a ``scaling`` name; None for ``"none"``."""
    require_choice("scaling", scaling, SCALINGS)
    factory = SCALERS[scaling]
    return None if factory is None else factory()


def scaling_name(scaler: Any) -> str | None:
    """The ``scaling`` name of a (fitted) scaler: "none" for None, None for a scaler not in SCALERS."""
    if scaler is None:
        return "none"
    return next((name for name, kind in SCALERS.items() if kind is not None and type(scaler) is kind), None)


def scaling_steps(scaler: Any) -> ScalingSteps | None:
    """A fitted scaler's arithmetic as (operation, operand) steps, in the order its ``transform``
    applies them (``StandardScaler``: subtract ``mean_``, divide by ``scale_``; ``MinMaxScaler``:
    multiply by ``scale_``, add ``min_``; ``RobustScaler``: subtract ``center_``, divide by
    ``scale_``). No scaler has no steps; a scaler whose arithmetic is not known gives None (call
    its ``transform``: see ``scale``)."""
    if scaler is None:
        return ()
    steps: list[tuple[str, Any]] = []
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
        return None
    return tuple((operation, np.asarray(operand, dtype=np.float64)) for operation, operand in steps)


def apply_scaling(values: np.ndarray, steps: ScalingSteps) -> np.ndarray:
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


def scale(values: np.ndarray, scaler: Any, steps: ScalingSteps | None) -> np.ndarray:
    """``values`` scaled as ``scaler`` scales them: with its known ``steps``, else its own transform."""
    if steps is None:
        return np.asarray(scaler.transform(values), dtype=np.float64)
    return apply_scaling(values, steps)
