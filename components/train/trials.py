"""The search split across pods: one trial branch per model family (a KFP ``dsl.ParallelFor``),
each cross-validating its family in its own pod, and train choosing among their outcomes. This
module holds the outcome a branch writes and train reads; the plan is
``components/plan_trials/plan_trials.py`` and a branch ``components/search_family/search_family.py``.

The branches reuse the in-pod search's own pieces (``search.search_order``, ``budget_skipped``,
``search_family``) on the rows ``train.search_data`` prepares, so a branch scores exactly what
the in-pod search would have scored for its family, and train ranks the outcomes with the same
code (``train.train(outcomes=...)``): the same winner and the same scores for the same seed.

The split is per family, not per chunk of candidates: successive halving picks which candidates
go on to the next round from all of a family's candidates at once, so candidates searched in
chunks would be dropped by another rule and the winner could change.

The time budget: in one pod a family is skipped when it would start after the budget, counted
from the start of the baselines. Across pods each branch checks the same rule when it starts,
counted from when the plan (``plan_trials``) ran; the first family in search order always runs.
Branches that start together (up to the ParallelFor's parallelism) are never skipped, so the
budget only cuts the families queued behind the parallelism limit, and a started branch finishes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlstages.components.common.errors import InputDataError
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.search import FamilyOutcome, native

# The files of an outcome artifact (a folder): the candidates' table keeps its dtypes in Parquet,
# so the scores train ranks are the very floats the branch computed.
OUTCOME_FILE = "outcome.json"
TABLE_FILE = "candidates.parquet"


def save_outcome(outcome: FamilyOutcome, path: str | Path) -> None:
    """``outcome`` as a folder at ``path``: outcome.json and, when searched, candidates.parquet."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if outcome.table is not None:
        outcome.table.to_parquet(folder / TABLE_FILE, index=False)
    record = {
        "family": outcome.family,
        "best_score": outcome.best_score,
        "best_params": {k: native(v) for k, v in outcome.best_params.items()},
        "seconds": outcome.seconds,
        "skipped": outcome.skipped,
        "table": TABLE_FILE if outcome.table is not None else None,
    }
    (folder / OUTCOME_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")


def load_outcome(path: str | Path) -> FamilyOutcome:
    """The outcome ``save_outcome`` wrote at ``path``."""
    folder = Path(path)
    try:
        record = json.loads((folder / OUTCOME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"trial outcome {folder}: cannot read {OUTCOME_FILE}: {exc}") from exc
    table = pd.read_parquet(folder / record["table"]) if record.get("table") else None
    return FamilyOutcome(
        record["family"],
        table,
        record["best_score"],
        dict(record["best_params"]),
        float(record["seconds"]),
        skipped=record.get("skipped") or "",
    )


def collect_outcomes(paths: Sequence[str | Path], config: TrainConfig) -> list[FamilyOutcome]:
    """The branches' outcomes (``dsl.Collected``, in any order) in ``model_families`` order, as
    ``search_families`` returns them; every configured family exactly once."""
    outcomes: dict[str, FamilyOutcome] = {}
    for path in paths:
        outcome = load_outcome(path)
        if outcome.family in outcomes:
            raise InputDataError(f"two trial outcomes for model family {outcome.family!r}")
        outcomes[outcome.family] = outcome
    expected = list(config.model_families)
    if sorted(outcomes) != sorted(expected):
        raise InputDataError(
            f"the trial outcomes are for model families {sorted(outcomes)}, but train searches "
            f"{expected}: run the trials with the same model_families and task"
        )
    return [outcomes[f] for f in expected]
