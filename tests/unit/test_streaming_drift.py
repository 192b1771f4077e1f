"""The drift reference and the drift monitor, streamed: exactly today's figures on small data,
within the stated bounds on large data."""

from __future__ import annotations

import numpy as np
import palmerpenguins
import pandas as pd
import pytest
from drift_tables import WINDOW_TYPES, population, windows
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


def test_a_reference_of_a_table_too_wide_for_the_allowance_is_sketched_within_its_stated_error(
    tmp_path, monkeypatch
):
    from mlstages.components.common.memory import MEMORY_ENV

    rng = np.random.default_rng(8)
    rows, columns = 40_000, 40
    df = pd.DataFrame(rng.lognormal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    types = {name: "numeric" for name in df.columns}
    write_dataset(df, tmp_path / "train", part_rows=10_000)
    assert "estimates" not in build_reference_from_dataset(tmp_path / "train", None, types)["columns"]["x3"]
    # A 64 MiB allowance: a quarter of it holds 16 MiB / (40 columns x 24 bytes), 17,476 values a
    # column, so 40,000 rows are sketched, with the error the entry states.
    monkeypatch.setenv(MEMORY_ENV, "64")
    entry = build_reference_from_dataset(tmp_path / "train", None, types)["columns"]["x3"]
    values = np.sort(df["x3"].to_numpy())
    rank_error = entry["estimates"]["quantiles"]["rank_error"] * rows
    assert rank_error > 0
    for level, value in entry["summary"]["quantiles"].items():
        assert abs(np.searchsorted(values, value) - float(level) * rows) <= rank_error + 1
    assert (entry["count"], entry["summary"]["min"], entry["summary"]["max"]) == (rows, values[0], values[-1])


# --- the drift monitor --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population_reference() -> dict:
    return build_reference(population(8_000, seed=1), "y", WINDOW_TYPES)


@pytest.mark.parametrize("name", list(windows()))
@pytest.mark.parametrize("batch_rows", [97, 100_000])
def test_drift_of_a_window_folder_is_that_of_the_whole_window(
    tmp_path, population_reference, name, batch_rows
):
    from mlstages.components.monitor_drift.config import DriftConfig
    from mlstages.components.monitor_drift.monitor_drift import detect_drift, detect_drift_dataset

    window = windows()[name]
    write_dataset(window, tmp_path / "window", part_rows=333)
    for config in (DriftConfig(), DriftConfig(method="psi")):
        whole = detect_drift(population_reference, window, config).to_dict()
        streamed = detect_drift_dataset(
            population_reference, tmp_path / "window", config, batch_rows=batch_rows
        )
        assert streamed.to_dict() == whole


def test_a_window_beyond_the_value_bound_tests_a_seeded_sample_and_counts_every_row(tmp_path, monkeypatch):
    from mlstages.components.monitor_drift import window as window_module
    from mlstages.components.monitor_drift.config import DriftConfig
    from mlstages.components.monitor_drift.monitor_drift import detect_drift_dataset

    monkeypatch.setattr(window_module, "WINDOW_VALUES", 5_000)
    reference = build_reference(population(20_000, seed=1), None, {"income": "numeric"})
    current = population(60_000, seed=4)
    write_dataset(current, tmp_path / "window")
    result = detect_drift_dataset(reference, tmp_path / "window", DriftConfig(method="psi"))
    income = result.features[0]
    values = current["income"].to_numpy()
    values = values[np.isfinite(values)]
    edges = np.asarray(reference["columns"]["income"]["bin_edges"])
    expected = np.histogram(values, bins=[-np.inf, *edges, np.inf])[0]
    # Binned tests count every row of the window, exactly.
    assert income.current_n == len(values)
    assert np.allclose(income.plot["current"], expected / expected.sum())
    wasserstein = detect_drift_dataset(reference, tmp_path / "window").features[0]
    assert wasserstein.method == "wasserstein" and not wasserstein.drifted
    assert any("seeded uniform sample of 5,000 of the" in note for note in wasserstein.notes)
    again = detect_drift_dataset(reference, tmp_path / "window", batch_rows=7_777).features[0]
    assert again.score == wasserstein.score  # the sample depends on the rows, not the batches


def test_a_window_too_wide_for_the_allowance_tests_fewer_values_a_column_and_says_so(tmp_path, monkeypatch):
    from mlstages.components.common.memory import MEMORY_ENV
    from mlstages.components.monitor_drift.monitor_drift import detect_drift_dataset
    from mlstages.components.monitor_drift.window import window_values

    rng = np.random.default_rng(9)
    rows, columns = 30_000, 40
    frame = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    reference = build_reference(frame, None, {name: "numeric" for name in frame.columns})
    write_dataset(frame, tmp_path / "window", part_rows=10_000)
    whole = detect_drift_dataset(reference, tmp_path / "window").features[0]
    assert not any("seeded uniform sample" in note for note in whole.notes)
    # 64 MiB: a quarter of it (16 MiB: less than the 256 a process holds) is the rows'; a quarter of
    # that over 40 columns of 32-byte sampled values is 3,276 values; the floor is 16,384.
    monkeypatch.setenv(MEMORY_ENV, "64")
    assert window_values(columns) == 16_384
    sampled = detect_drift_dataset(reference, tmp_path / "window").features[0]
    assert any("seeded uniform sample of 16,384 of the 30,000 current values" in n for n in sampled.notes)
    assert sampled.current_n == rows and not sampled.drifted  # counts every row, same data: no drift


def test_seeded_sample_is_every_value_below_its_size_and_uniform_beyond():
    from mlstages.components.common.sketches import SeededSample

    values = np.arange(100_000, dtype=float)
    small = SeededSample(200_000)
    small.update(values[50_000:], np.arange(50_000, 100_000))
    small.update(values[:50_000], np.arange(50_000))
    assert small.exact and np.array_equal(small.sorted_values(), values)
    whole = SeededSample(10_000, seed=3)
    whole.update(values, np.arange(len(values)))
    parts = [SeededSample(10_000, seed=3) for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(np.arange(len(values)), 3), strict=True):
        part.update(values[chunk], chunk)
    parts[2].merge(parts[0])
    parts[2].merge(parts[1])
    sample = whole.sorted_values()
    assert not whole.exact and len(sample) == 10_000 and np.array_equal(parts[2].sorted_values(), sample)
    # Uniform: each tenth of the range holds about a tenth of the sample.
    assert np.abs(np.histogram(sample, bins=10)[0] - 1_000).max() < 120
