"""A size budget for artifact metadata.

A task receives every input artifact's metadata inside its executor input, which KFP passes as ONE
command-line argument (``--executor_input {{$}}``), under kfp.local and in a cluster's pod alike;
Linux caps one argument at 128 KiB, and past it the task cannot start ("Argument list too long").
Per-column maps grow with the table: a dataset of 6,000 columns carried ~330 KB of column types and
dtypes, and the next task failed. So an artifact's metadata keeps to ``METADATA_BUDGET`` bytes:
the largest lists and maps are left out when it would not fit (the same facts are in the artifact's
files: the Parquet schema, metadata.json), and ``left_out`` names them. Nothing in the suite reads
them back from metadata; they are for people looking at the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Three input artifacts (the most a component takes) at 24 KiB leave more than 50 KiB of the
# 128 KiB argument for parameters; tests/kfp_launcher_rules.py checks outputs against 32 KiB.
METADATA_BUDGET = 24 * 1024
LEFT_OUT_KEY = "left_out"


def metadata_size(metadata: Mapping[str, Any]) -> int:
    """Bytes of ``metadata`` as JSON, as it travels in the executor input."""
    return len(json.dumps(metadata, default=str).encode("utf-8"))


def within_budget(metadata: Mapping[str, Any], budget: int = METADATA_BUDGET) -> dict[str, Any]:
    """``metadata`` with its largest list and map values left out, largest first, until it fits in
    ``budget`` bytes; ``left_out`` then says which and where to find them. Scalars always stay."""
    kept = dict(metadata)
    if metadata_size(kept) <= budget:
        return kept
    bulky = sorted(
        (key for key, value in kept.items() if isinstance(value, (Mapping, list))),
        key=lambda key: metadata_size({key: kept[key]}),
        reverse=True,
    )
    dropped: list[str] = []
    for key in bulky:
        del kept[key]
        dropped.append(key)
        kept[LEFT_OUT_KEY] = (
            f"{', '.join(dropped)}: too large for artifact metadata; see the artifact's files"
        )
        if metadata_size(kept) <= budget:
            break
    return kept
