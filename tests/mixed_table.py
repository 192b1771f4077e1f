"""A small table with every kind of column the statistics describe: shared by the streaming
statistics tests and the engine tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mixed_table(rows: int = 2_000, seed: int = 5) -> pd.DataFrame:
    """Every kind of column, with gaps, infinities, ties, -0.0, text and duplicate rows."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "count": rng.integers(0, 7, rows),
            "city": rng.choice(["Oslo", "Rome", "Lima", "Kyiv"], rows),
            "note": [" ".join(rng.choice(["a", "bb", "ccc", "dd"], rng.integers(1, 6))) for _ in range(rows)],
            "when": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, rows), unit="D"),
            "flag": rng.random(rows) < 0.3,
            "code": pd.Categorical(rng.choice(["x1", "x2", "x3"], rows)),
        }
    )
    df.loc[rng.choice(rows, rows // 20, replace=False), "x"] = np.nan
    df.loc[:3, "x"] = [np.inf, -np.inf, -0.0, 0.0]
    df.loc[rng.choice(rows, rows // 50, replace=False), "city"] = None
    df.loc[rng.choice(rows, rows // 40, replace=False), "when"] = pd.NaT
    return pd.concat([df, df.iloc[: rows // 10]], ignore_index=True)
