"""One trial branch of the search across pods: one family's candidates cross-validated on the
rows train would search, exactly as train's in-pod search would (see
``components/train/trials.py``)."""

from __future__ import annotations

import json
import time

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.reports import markdown_text
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.search import FamilyOutcome, budget_skipped, search_family, search_order
from mlstages.components.train.train import SearchData


def run_trial(
    data: SearchData, family: str, config: TrainConfig, trials_started: float, now: float | None = None
) -> FamilyOutcome:
    """``family``'s search on ``data``, or why the time budget skipped it."""
    order = search_order(config)
    if family not in order:
        raise InputDataError(
            f"trial branch for model family {family!r}, which is not among model_families {order}"
        )
    spent = (time.time() if now is None else now) - trials_started if trials_started else 0.0
    skipped = budget_skipped(order.index(family), config, spent)
    if skipped:
        return FamilyOutcome(family, None, None, {}, 0.0, skipped=skipped)
    features, y = data.search_matrix()
    return search_family(family, features, y, config, data.category_groups)


def outcome_markdown(outcome: FamilyOutcome, config: TrainConfig, rows: int) -> str:
    """A trial branch's summary."""
    lines = [f"# Trial: {outcome.family}", ""]
    if outcome.skipped:
        return "\n".join([*lines, f"Not searched: {outcome.skipped}.", ""])
    candidates = 0 if outcome.table is None else len(outcome.table)
    lines += [
        f"{candidates} candidate(s) of {outcome.family} cross-validated ({config.search} search, "
        f"{config.cv_folds} folds) on {rows:,} rows in {outcome.seconds:.1f} s.",
        "",
        # The parameters' values come from the user's search_space: escaped.
        f"Best mean {config.scoring}: {outcome.best_score:.6g} with "
        f"{markdown_text(json.dumps(outcome.best_params, sort_keys=True, default=str))}.",
        "",
    ]
    return "\n".join(lines)
