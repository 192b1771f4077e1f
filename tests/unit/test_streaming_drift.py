"""The drift reference and the drift monitor, streamed: exactly today's figures on small data,
within the stated bounds on large data."""

from __future__ import annotations

import numpy as np
import palmerpenguins
import pandas as pd
import pytest
from sklearn import datasets as sklearn_datasets

from mlstages.components.common.dataset_files import write_dataset
from mlstages.components.common.reference import build_reference, build_reference_from_dataset
from mlstages.components.common.reference_columns import ReferenceAccumulator

PENGUIN_TYPES = {
    "island": "categorical",
    "bill_length_mm": "numeric",
    "bill_depth_mm": "numeric",
    "flipper_length_mm": "numeric",
    "body_mass_g": "numeric",
    "sex": "categorical",
    "year": "numeric",
}


def wine() -> pd.DataFrame:
    frame = sklearn_datasets.load_wine(as_frame=True).frame
    return frame.assign(target=frame["target"].map({0: "a", 1: "b", 2: "c"}))


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


POPULATION_TYPES = {
    "age": "numeric",
    "income": "numeric",
    "plan": "categorical",
    "flag": "boolean",
    "rooms": "numeric",
    "when": "datetime",
}

CASES = {
    "penguins": (palmerpenguins.load_penguins, "species", PENGUIN_TYPES),
    "wine": (wine, "target", {"alcohol": "numeric", "magnesium": "numeric", "proline": "numeric"}),
    "population": (lambda: population(12_000), "y", POPULATION_TYPES),
}


# --- the reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("batch_rows", [7, 1_000])
def test_reference_from_a_dataset_folder_is_the_whole_table_reference(tmp_path, case, batch_rows):
    load, label, types = CASES[case]
    df = load()
    write_dataset(df, tmp_path / "train", part_rows=501)
    whole = build_reference(df, label, types, max_sample=300, seed=5)
    streamed = build_reference_from_dataset(
        tmp_path / "train", label, types, max_sample=300, seed=5, batch_rows=batch_rows
    )
    assert streamed == whole


def test_reference_parts_merge_in_any_order_to_the_same_reference():
    df = population(6_000, seed=3)
    whole = build_reference(df, "y", POPULATION_TYPES)
    cuts = [0, 700, 2_000, 4_444, len(df)]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        total = ReferenceAccumulator(POPULATION_TYPES, "y")
        for index in order:
            part = ReferenceAccumulator(POPULATION_TYPES, "y")
            part.update(df.iloc[cuts[index] : cuts[index + 1]], start=cuts[index])
            total.merge(part)
        columns, label = total.entries(max_sample=5000, bins=10, seed=42)
        assert (columns, label) == (whole["columns"], whole["label"])


def test_a_sketched_reference_keeps_its_bins_and_sample_within_the_stated_error(tmp_path):
    rows = 1_500_000  # beyond the 1,048,576 values kept one by one
    rng = np.random.default_rng(21)
    income = rng.lognormal(10, 1, rows)
    df = pd.DataFrame({"income": income, "plan": rng.choice(["a", "b", "c"], rows)})
    write_dataset(df, tmp_path / "train")
    reference = build_reference_from_dataset(
        tmp_path / "train", None, {"income": "numeric", "plan": "categorical"}
    )
    entry = reference["columns"]["income"]
    values = np.sort(income)
    assert (entry["count"], entry["summary"]["min"], entry["summary"]["max"]) == (rows, values[0], values[-1])
    assert entry["summary"]["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert entry["summary"]["std"] == pytest.approx(values.std(), rel=1e-9)
    count_error = entry["estimates"]["bin_counts"]["count_error"]
    true_counts = np.histogram(values, bins=[-np.inf, *entry["bin_edges"], np.inf])[0]
    assert np.abs(np.array(entry["bin_counts"]) - true_counts).max() <= count_error
    assert sum(entry["bin_counts"]) == rows and len(entry["bin_edges"]) == 9
    rank_error = entry["estimates"]["quantiles"]["rank_error"] * rows
    for level, value in entry["summary"]["quantiles"].items():
        assert abs(np.searchsorted(values, value) - float(level) * rows) <= rank_error + 1
    # The sample's quantile function follows the data's: one value from each stratum (within the
    # rank error), so its Wasserstein distance to all values is far below the drift threshold.
    sample = np.array(entry["sample"])
    strata = np.searchsorted(values, sample) * len(sample) / rows
    assert np.abs(strata - np.arange(len(sample)) - 0.5).max() <= 0.5 + rank_error * len(sample) / rows + 1e-9
    from scipy import stats

    assert stats.wasserstein_distance(sample, values) / values.std() < 0.005
    assert reference["columns"]["plan"]["counts"] == pd.Series(df["plan"]).value_counts().to_dict()
