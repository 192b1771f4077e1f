"""The plan of the search across pods: which families get a trial branch, in which order, and
the time budget's origin (see ``components/train/trials.py``)."""

from __future__ import annotations

import time
from typing import Any

from mlstages.components.train.config import TrainConfig
from mlstages.components.train.search import search_order


def plan_trials(config: TrainConfig, now: float | None = None) -> list[dict[str, Any]]:
    """One ParallelFor item per family, in search order (cheapest first, so that a parallelism
    below the families queues the slowest): its name, the task (``learning_task``: a loop item's
    ``.task`` is a KFP channel's own attribute), and when the trials started (the time budget's
    origin; 0 without a budget, so that the branches' inputs stay the same from run to run and a
    cluster can cache them).

    The task travels in the item because kfp.local 2.17 hands a ParallelFor branch the loop item
    in place of every other task's output parameter (preprocess' task) given to the branch."""
    started = (time.time() if now is None else now) if config.time_budget_seconds else 0.0
    return [
        {"family": family, "learning_task": config.task, "trials_started": started}
        for family in search_order(config)
    ]
