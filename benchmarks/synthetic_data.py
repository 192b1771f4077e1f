"""The benchmarks' seeded synthetic classification table: whole (``make_dataset``, for
bench_pipeline) or written in chunks straight to a dataset folder (``write_chunked``, for
bench_scale), so that 50M rows never sit in memory.

25 feature columns: num_00 ... num_19 of different distributions and scales (normal, lognormal,
exponential, uniform, gamma, beta, Poisson counts, Student t, Weibull), 5 categorical string
columns of 4 to 50 levels with skewed frequencies, about 5% of the feature values missing (each
column its own share between 2% and 8%), and a binary label drawn from a logistic function of six
numeric columns (two non-linearly) and two categorical columns, plus noise.

The dataset's structure (level frequencies, category effects, missing shares) comes from its own
random stream, so it is the same whatever the row count or the chunking; the rows come from
another. ``make_dataset`` standardizes the logit's terms with the sample's mean and deviation;
the chunked writer with the distributions' exact ones (``TERM_MOMENTS``), so that every chunk
draws the label from the same function.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 20240602


LABEL_COLUMN = "label"


# Categorical columns: name and number of levels (level frequencies are skewed, see Structure).
CATEGORICAL_LEVELS = {"region": 4, "channel": 7, "segment": 12, "product": 25, "city": 50}


# Rows generated (and held) at a time by write_chunked: about 120 MB as pandas holds them.
CHUNK_ROWS = 250_000


# Bump when the generated rows change, so that cached folders are not reused.
GENERATOR_VERSION = 1


# Rows read back from the written dataset to measure its in-memory size per row.
PROBE_ROWS = 131_072


def _ratio_moments() -> tuple[float, float]:
    """Mean and standard deviation of X / K, X exponential (scale 2,000), K uniform on 1..119."""
    inverse = [1.0 / k for k in range(1, 120)]
    mean_inverse = sum(inverse) / len(inverse)
    mean_inverse_square = sum(v * v for v in inverse) / len(inverse)
    mean = 2_000.0 * mean_inverse
    second = 2.0 * 2_000.0**2 * mean_inverse_square  # E[X^2] E[1/K^2]
    return mean, math.sqrt(second - mean * mean)


# Each logit term's exact mean and standard deviation under the generating distributions.
TERM_MOMENTS: dict[str, tuple[float, float]] = {
    "num_00": (0.0, 1.0),
    "num_02": (-200.0, 75.0),
    "log_num_05": (10.5, 0.6),
    "num_07_per_num_08": _ratio_moments(),
    "num_09_squared": (1.0 / 3.0, math.sqrt(4.0 / 45.0)),
    "num_13": (3.0, math.sqrt(3.0)),
}


@dataclass(frozen=True)
class Structure:
    """What does not depend on the rows: each categorical column's level weights and effects on
    the logit, and each feature column's missing share."""

    weights: dict[str, Any]
    effects: dict[str, Any]
    missing_shares: Any


def structure_of(seed: int = SEED) -> Structure:
    import numpy as np

    stream = np.random.default_rng([seed, 0])
    weights, effects = {}, {}
    for name, levels in CATEGORICAL_LEVELS.items():
        weights[name] = stream.dirichlet(np.full(levels, 2.0))  # skewed level frequencies
        effects[name] = stream.normal(0.0, 0.8, levels)
    shares = stream.permutation(np.linspace(0.02, 0.08, 20 + len(CATEGORICAL_LEVELS)))
    return Structure(weights, effects, shares)


def draw_rows(rng: Any, rows: int, structure: Structure, standardize: Callable[[str, Any], Any]) -> Any:
    """``rows`` rows drawn from ``rng``; ``standardize(term, values)`` centres and scales each
    term of the label's logit."""
    import numpy as np
    import pandas as pd

    numeric = {
        "num_00": rng.normal(0.0, 1.0, rows),
        "num_01": rng.normal(50.0, 10.0, rows),
        "num_02": rng.normal(-200.0, 75.0, rows),
        "num_03": rng.normal(1e5, 2e4, rows),
        "num_04": rng.lognormal(0.0, 0.75, rows),
        "num_05": rng.lognormal(10.5, 0.6, rows),  # income-like
        "num_06": rng.exponential(3.0, rows),
        "num_07": rng.exponential(2_000.0, rows),  # balance-like
        "num_08": rng.integers(1, 120, rows).astype(float),  # tenure in months
        "num_09": rng.uniform(0.0, 1.0, rows),
        "num_10": rng.uniform(-1_000.0, 1_000.0, rows),
        "num_11": rng.gamma(2.0, 2.0, rows),
        "num_12": rng.gamma(9.0, 0.5, rows),
        "num_13": rng.poisson(3.0, rows).astype(float),
        "num_14": rng.poisson(40.0, rows).astype(float),
        "num_15": rng.standard_t(4, rows),
        "num_16": rng.normal(0.0, 1e-3, rows),
        "num_17": rng.beta(2.0, 5.0, rows),
        "num_18": rng.normal(5.0, 2.0, rows) ** 2,
        "num_19": rng.weibull(1.5, rows) * 10.0,
    }
    categorical = {}
    category_effects = {}
    for name, levels in CATEGORICAL_LEVELS.items():
        codes = rng.choice(levels, size=rows, p=structure.weights[name])
        labels = np.array([f"{name}_{i:02d}" for i in range(levels)], dtype=object)
        categorical[name] = labels[codes]
        category_effects[name] = structure.effects[name][codes]

    logit = (
        0.9 * standardize("num_00", numeric["num_00"])
        - 0.7 * standardize("num_02", numeric["num_02"])
        + 0.6 * standardize("log_num_05", np.log(numeric["num_05"]))
        + 0.5 * standardize("num_07_per_num_08", numeric["num_07"] / numeric["num_08"])
        + 0.8 * standardize("num_09_squared", numeric["num_09"] ** 2)
        - 0.4 * standardize("num_13", numeric["num_13"])
        + category_effects["segment"]
        + category_effects["region"]
        + rng.logistic(0.0, 1.0, rows) * 0.5
    )
    label = (rng.uniform(0.0, 1.0, rows) < 1.0 / (1.0 + np.exp(-(logit - 0.4)))).astype(np.int64)

    frame = pd.DataFrame({**numeric, **categorical})
    # Missing values after the label is drawn: the label depends on the true values.
    for column, share in zip(frame.columns, structure.missing_shares, strict=True):
        missing = rng.uniform(0.0, 1.0, rows) < share
        if frame[column].dtype == object:
            frame.loc[missing, column] = None
        else:
            frame.loc[missing, column] = np.nan
    frame[LABEL_COLUMN] = label
    return frame


def make_dataset(rows: int, seed: int = SEED) -> Any:
    """The whole table as one DataFrame (its logit's terms standardized on the sample)."""
    import numpy as np

    def on_sample(_: str, values: Any) -> Any:
        return (values - values.mean()) / values.std()

    return draw_rows(np.random.default_rng([seed, 1]), rows, structure_of(seed), on_sample)


def chunks(rows: int, seed: int = SEED, chunk_rows: int = CHUNK_ROWS) -> Iterator[Any]:
    """The table ``chunk_rows`` rows at a time: chunk k from its own stream (seed, 1, k), the
    logit's terms standardized with the distributions' exact moments. Holds one chunk."""
    import numpy as np

    structure = structure_of(seed)

    def exact(term: str, values: Any) -> Any:
        mean, std = TERM_MOMENTS[term]
        return (values - mean) / std

    for number, start in enumerate(range(0, rows, chunk_rows)):
        size = min(chunk_rows, rows - start)
        frame = draw_rows(np.random.default_rng([seed, 1, number]), size, structure, exact)
        frame.index = range(start, start + size)
        yield frame


DESCRIPTION_FILE = "_bench.json"


def dataset_folder(cache_dir: Path, rows: int, seed: int = SEED, chunk_rows: int = CHUNK_ROWS) -> Path:
    return cache_dir / f"synthetic-{rows}-rows-seed{seed}-chunks{chunk_rows}-v{GENERATOR_VERSION}"


def write_chunked(
    cache_dir: Path,
    rows: int,
    seed: int = SEED,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    """The dataset folder of ``rows`` rows (written a chunk at a time unless already cached) and
    its description: rows, columns, missing share, Parquet bytes, in-memory size (measured on the
    first PROBE_ROWS rows read back and scaled to every row)."""
    from mlstages.components.common.dataset_files import write_batches

    folder = dataset_folder(cache_dir, rows, seed, chunk_rows)
    described = folder / DESCRIPTION_FILE
    if described.is_file():
        description = json.loads(described.read_text(encoding="utf-8"))
        description["cached"] = True
        progress(f"Dataset: reusing {folder}")
        return folder, description
    shutil.rmtree(folder, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stats = {"missing": 0, "cells": 0, "positive": 0}

    def counted(batches: Iterator[Any]) -> Iterator[Any]:
        for number, batch in enumerate(batches):
            features = batch.drop(columns=[LABEL_COLUMN])
            stats["missing"] += int(features.isna().to_numpy().sum())
            stats["cells"] += features.size
            stats["positive"] += int(batch[LABEL_COLUMN].sum())
            if number % 20 == 19:
                progress(f"  generated {batch.index[-1] + 1:,} of {rows:,} rows")
            yield batch

    write_batches(counted(chunks(rows, seed, chunk_rows)), folder, source="bench_scale synthetic")
    seconds = time.monotonic() - started
    description = describe(folder, rows)
    description.update(
        {
            "missing_share_of_feature_values": stats["missing"] / stats["cells"],
            "positive_label_share": stats["positive"] / rows,
            "seed": seed,
            "chunk_rows": chunk_rows,
            "generator_version": GENERATOR_VERSION,
            "generate_seconds": seconds,
        }
    )
    described.write_text(json.dumps(description, indent=2), encoding="utf-8")
    description["cached"] = False
    return folder, description


def describe(folder: Path, rows: int) -> dict[str, Any]:
    """Parquet bytes and the in-memory size, as ingest reads the data (object-dtype strings):
    ``memory_usage(deep=True)`` of the first PROBE_ROWS rows, scaled to ``rows``."""
    from mlstages.components.common.dataset_files import part_files, read_dataset_head

    files = part_files(folder)
    probe = read_dataset_head(folder, PROBE_ROWS)  # the first row group only
    per_row = float(probe.memory_usage(deep=True, index=False).sum()) / len(probe)
    features = probe.drop(columns=[LABEL_COLUMN])
    return {
        "rows": rows,
        "numeric_columns": int(features.select_dtypes("number").shape[1]),
        "categorical_columns": int(features.select_dtypes(exclude="number").shape[1]),
        "categorical_levels": CATEGORICAL_LEVELS,
        "parts": len(files),
        "parquet_bytes": sum(f.stat().st_size for f in files),
        "in_memory_bytes_per_row": per_row,
        "in_memory_bytes": int(per_row * rows),
        "in_memory_method": f"memory_usage(deep=True) of the first {len(probe):,} rows as read from "
        f"Parquet, times {rows:,} rows (the whole table is never loaded)",
    }


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    stat = os.statvfs(probe)
    return stat.f_bavail * stat.f_frsize
