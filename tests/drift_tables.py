"""Tables of the streaming drift tests, shared with the engine tests: a population, and windows
of it with every kind of change."""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOW_TYPES = {
    "age": "numeric",
    "income": "numeric",
    "plan": "categorical",
    "flag": "boolean",
    "rooms": "numeric",
    "when": "datetime",
}


def population(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(10, 1, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(rows) < 0.3,
            "rooms": rng.integers(1, 4, rows),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90, rows), unit="D"),
            "y": rng.choice(["yes", "no"], rows),
        }
    )
    df.loc[: rows // 40, "age"] = np.nan
    df.loc[rows // 2 : rows // 2 + 5, "income"] = np.inf
    df.loc[rows // 3 : rows // 3 + 9, "plan"] = None
    return df


def windows() -> dict[str, pd.DataFrame]:
    shifted = population(3_000, seed=7)
    shifted["age"] += 6.0
    shifted.loc[:400, "plan"] = "enterprise"  # a new category
    words = population(900, seed=8)
    words["income"] = words["income"].map(lambda v: f"{v:.2f}")  # numbers as text, and two words
    words.loc[[5, 600], "income"] = ["n/a", "?"]
    many = population(2_500, seed=9).assign(
        rooms=np.random.default_rng(2).integers(1, 5_000, 2_500), extra=1.0
    )
    flags = population(1_200, seed=10).astype({"flag": object})
    flags.loc[:30, "flag"] = None
    return {
        "same": population(4_000, seed=6),
        "small": population(250, seed=11),
        "shifted": shifted,
        "words": words.drop(columns=["plan"]),
        "many_values": many,
        "flags_with_gaps": flags,
    }
