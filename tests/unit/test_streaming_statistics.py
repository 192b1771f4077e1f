"""Statistics built a batch at a time: exactly the whole table's on small data, whatever the batch
sizes and the order of merges; within the stated error bounds of their sketches on large data."""

from __future__ import annotations

import copy

import numpy as np
import palmerpenguins
import pandas as pd
import pytest
from mixed_table import mixed_table
from sklearn import datasets as sklearn_datasets
from statistics_before_streaming import compute_statistics as statistics_before_streaming

from mlstages.components.common.dataset_files import iter_batches, write_dataset
from mlstages.components.common.errors import InputDataError
from mlstages.components.common.memory import MEMORY_ENV
from mlstages.components.common.sketches import (
    DISTINCT_K,
    EXACT_VALUES,
    QUANTILE_K,
    DistinctHashes,
    FrequentCounts,
    Moments,
    QuantileSketch,
    QuantileValues,
    exact_limit,
)
from mlstages.components.validate_data.column_statistics import Limits
from mlstages.components.validate_data.config import ValidationConfig
from mlstages.components.validate_data.schema import infer_schema
from mlstages.components.validate_data.statistics import compute_statistics
from mlstages.components.validate_data.streaming import RowDuplicates, RowSample, StatisticsAccumulator
from mlstages.components.validate_data.validate_data import validate, validate_dataset


def _sklearn_table(loader) -> pd.DataFrame:
    return loader(as_frame=True).frame


TABLES = {
    "penguins": palmerpenguins.load_penguins,
    "diabetes": lambda: _sklearn_table(sklearn_datasets.load_diabetes),
    "wine": lambda: _sklearn_table(sklearn_datasets.load_wine),
    "breast_cancer": lambda: _sklearn_table(sklearn_datasets.load_breast_cancer),
}


def streamed(df: pd.DataFrame, batch_rows: int, limits: Limits | None = None) -> dict:
    accumulator = StatisticsAccumulator(limits)
    for start in range(0, len(df), batch_rows):
        accumulator.update(df.iloc[start : start + batch_rows], start=start)
    return accumulator.result()


def without_exact(document: dict) -> dict:
    document = dict(document)
    assert document.pop("exact") is True
    return document


# --- exactly the whole table's statistics on small data --------------------------------------------


@pytest.mark.parametrize("table", [*TABLES, "mixed"])
@pytest.mark.parametrize("batch_rows", [1, 7, 64, 100_000])
def test_streamed_statistics_are_exactly_those_of_the_whole_table(table, batch_rows):
    df = mixed_table() if table == "mixed" else TABLES[table]()
    if batch_rows == 1 and len(df) > 1_000:
        df = df.head(1_000)
    before = statistics_before_streaming(df)
    assert without_exact(streamed(df, batch_rows)) == before
    assert without_exact(compute_statistics(df)) == before


@pytest.mark.parametrize("table", ["penguins", "wine", "mixed"])
def test_a_dataset_folder_streamed_by_row_group_gives_the_same_document(tmp_path, table):
    df = mixed_table() if table == "mixed" else TABLES[table]()
    write_dataset(df, tmp_path / "data", part_rows=97)
    accumulator = StatisticsAccumulator()
    for batch in iter_batches(tmp_path / "data", batch_rows=31):
        accumulator.update(batch, start=int(batch.index[0]))
    assert without_exact(accumulator.result()) == statistics_before_streaming(df)


def _parts(df: pd.DataFrame, cuts: list[int]) -> list[StatisticsAccumulator]:
    parts = []
    for start, end in zip([0, *cuts], [*cuts, len(df)], strict=True):
        part = StatisticsAccumulator()
        part.update(df.iloc[start:end], start=start)
        parts.append(part)
    return parts


def _merged(parts: list[StatisticsAccumulator], order: list[int]) -> dict:
    total = StatisticsAccumulator()
    for index in order:
        total.merge(parts[index])
    return total.result()


@pytest.mark.parametrize("table", ["penguins", "breast_cancer", "mixed"])
def test_merge_is_order_independent_and_associative(table):
    df = mixed_table() if table == "mixed" else TABLES[table]()
    cuts = [len(df) // 7, len(df) // 3, len(df) // 2, 4 * len(df) // 5]
    whole = without_exact(compute_statistics(df))
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]):
        assert without_exact(_merged(_parts(df, cuts), order)) == whole
    # (a + b) + c and a + (b + c), each side built from fresh parts.
    a, b, c = _parts(df, [len(df) // 3, 2 * len(df) // 3])
    a.merge(b)
    a.merge(c)
    d, e, f = _parts(df, [len(df) // 3, 2 * len(df) // 3])
    e.merge(f)
    d.merge(e)
    assert a.result() == d.result() == compute_statistics(df)


def test_validate_dataset_gives_what_validate_gives_on_the_whole_table(tmp_path):
    penguins = palmerpenguins.load_penguins()
    frame = mixed_table(300)
    schema = infer_schema(frame)
    bad = frame.copy()
    bad.loc[[3, 150], "count"] = [90, -40]
    bad.loc[[5, 77, 78], "city"] = ["Paris", "Paris", "Berlin"]
    cases = [
        (penguins, ValidationConfig(label_column="species"), None),
        (bad, ValidationConfig(policy="warn", max_duplicate_share=0.01), schema),
        (penguins.assign(species=None), ValidationConfig(label_column="species", policy="warn"), None),
    ]
    for number, (df, config, given) in enumerate(cases):
        path = tmp_path / f"case{number}"
        write_dataset(df, path, part_rows=50)
        whole = validate(df, config, schema=copy.deepcopy(given))
        for batch_rows in (13, 4096):
            result = validate_dataset(path, config, schema=copy.deepcopy(given), batch_rows=batch_rows)
            assert (result.statistics, result.schema, result.anomalies) == (
                whole.statistics,
                whole.schema,
                whole.anomalies,
            )
            assert result.value_check_rows is None
    assert {a.kind for a in whole.anomalies} >= {"label_has_missing"}


def test_type_checks_on_a_sample_judge_identifiers_and_label_classes_on_the_whole_column(tmp_path):
    rows = 5_000
    rng = np.random.default_rng(2)
    labels = rng.choice(["yes", "no"], rows).astype(object)
    labels[4_321] = "Yes "  # one row: a sample of 500 rows misses it 9 times in 10
    df = pd.DataFrame(
        {"row": np.arange(rows) + 10_000, "amount": rng.integers(0, 10**9, rows), "label": labels}
    )
    write_dataset(df, tmp_path / "data")
    result = validate_dataset(
        tmp_path / "data", ValidationConfig(label_column="label", policy="warn"), value_check_rows=500
    )
    kinds = {(a.column, a.kind) for a in result.anomalies}
    # Row numbers are keys over the whole column (in 500 sampled rows their range is ten times
    # the row count, which alone would say "amounts"); spread-out unique amounts are not keys;
    # the rare class spelling is found although the sample has not seen it.
    assert ("row", "id") in kinds and ("amount", "id") not in kinds
    assert ("label", "label_variants") in kinds
    assert result.value_check_rows == 500
    whole = validate(df, ValidationConfig(label_column="label", policy="warn"))
    assert {(a.column, a.kind) for a in whole.anomalies if a.severity == "warning"} == {
        (a.column, a.kind) for a in result.anomalies if a.severity == "warning"
    }


def test_the_type_checks_sample_is_every_row_below_its_size_and_the_same_rows_whatever_the_batches():
    df = mixed_table(3_000)
    small = RowSample(10_000)
    for start in range(0, len(df), 700):
        small.update(df.iloc[start : start + 700], start)
    assert small.rows().reset_index(drop=True).equals(df)
    samples = []
    for batch_rows in (97, 1_000, 100_000):
        sample = RowSample(500, seed=4)
        for start in range(0, len(df), batch_rows):
            sample.update(df.iloc[start : start + batch_rows], start)
        samples.append(sample.rows())
    assert len(samples[0]) == 500 and samples[0].index.is_monotonic_increasing
    assert all(s.equals(samples[0]) for s in samples)
    assert samples[0].equals(df.loc[samples[0].index])


# --- sketches: exact below their bounds, within their stated error beyond ----------------------------


def _check_quantiles(sorted_values: np.ndarray, sketch: QuantileSketch, levels: np.ndarray) -> None:
    n = len(sorted_values)
    assert sketch.count == n
    for level, value in zip(levels, sketch.quantiles(levels), strict=True):
        below = np.searchsorted(sorted_values, value, side="left")
        at_most = np.searchsorted(sorted_values, value, side="right")
        assert below <= level * n + sketch.rank_error and at_most >= level * n - sketch.rank_error
    points = sorted_values[:: max(1, n // 997)]
    true = np.searchsorted(sorted_values, points, side="left")
    assert np.abs(sketch.ranks(points, inclusive=False) - true).max() <= sketch.rank_error


@pytest.mark.parametrize("shape", ["normal", "sorted", "ties", "lognormal"])
def test_quantile_sketch_stays_within_its_stated_rank_error_on_millions_of_values(shape):
    rng = np.random.default_rng(11)
    n = 4_000_000
    values = {
        "normal": lambda: rng.normal(size=n),
        "sorted": lambda: np.arange(n, dtype=float),  # an adversarial order: ascending
        "ties": lambda: rng.integers(0, 50, n).astype(float),
        "lognormal": lambda: rng.lognormal(sigma=2.0, size=n),
    }[shape]()
    sketch = QuantileSketch()
    for start in range(0, n, 131_072):
        sketch.update(values[start : start + 131_072])
    levels = np.array([0.0, 0.001, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999, 1.0])
    _check_quantiles(np.sort(values), sketch, levels)
    assert sketch.rank_error / n < 0.001  # the bound itself is small: under 0.1% of the values
    assert sum(len(level) for level in sketch.levels) < 40 * sketch.k  # bounded memory


def test_quantile_sketches_merge_within_the_sum_of_their_errors_and_deterministically():
    rng = np.random.default_rng(4)
    parts = [rng.normal(loc, size=700_000) for loc in (0.0, 3.0, -2.0)]
    sketches = []
    for part in parts:
        sketch = QuantileSketch(k=2_048)
        for start in range(0, len(part), 100_000):
            sketch.update(part[start : start + 100_000])
        sketches.append(sketch)
    total = sketches[0]
    total.merge(sketches[1])
    total.merge(sketches[2])
    _check_quantiles(np.sort(np.concatenate(parts)), total, np.linspace(0, 1, 41))
    again = QuantileSketch(k=2_048)
    for part in parts:
        again.update(part)
    other = QuantileSketch(k=2_048)
    for part in parts:
        other.update(part)
    assert np.array_equal(again.quantiles([0.1, 0.5, 0.9]), other.quantiles([0.1, 0.5, 0.9]))


def test_quantile_values_are_exact_up_to_their_bound_and_sketched_beyond():
    rng = np.random.default_rng(1)
    values = QuantileValues(exact_limit=1_000, k=64)
    data = rng.normal(size=900)
    values.update(data[:400], start=400)
    values.update(data[400:], start=0)  # positions, not arrival, order the values
    assert values.exact and np.array_equal(values.values(), np.concatenate([data[400:], data[:400]]))
    values.update(rng.normal(size=200), start=900)
    assert not values.exact and values.count == 1_100 and values.rank_error >= 1
    with pytest.raises(RuntimeError, match="sketched"):
        values.values()


def test_moments_combined_by_chan_match_two_pass_figures():
    rng = np.random.default_rng(9)
    values = rng.normal(1e6, 3.0, size=3_000_000)  # a large mean: the naive formula loses digits
    moments = Moments()
    for start in range(0, len(values), 131_072):
        moments.update(values[start : start + 131_072])
    assert moments.count == len(values)
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.std(1) == pytest.approx(values.std(ddof=1), rel=1e-9)
    merged = Moments()
    for part in np.array_split(values, 7)[::-1]:
        piece = Moments()
        piece.update(part)
        merged.merge(piece)
    assert merged.std(0) == pytest.approx(values.std(), rel=1e-9)


def test_distinct_hashes_are_exact_below_their_bound_and_within_the_kmv_error_beyond():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, size=3_000_000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    small = DistinctHashes(exact_limit=100_000, k=4_096)
    small.update(np.concatenate([hashes[:50_000], hashes[:20_000]]))
    assert small.exact and small.count() == 50_000
    big = DistinctHashes(exact_limit=100_000, k=4_096)
    for start in range(0, len(hashes), 200_000):
        big.update(hashes[start : start + 200_000])
        big.update(hashes[start : start + 1_000])  # repeats do not count twice
    assert not big.exact
    assert abs(big.count() / len(hashes) - 1) < 4 * big.relative_error
    left, right = DistinctHashes(100_000, 4_096), DistinctHashes(100_000, 4_096)
    left.update(hashes[:1_600_000])
    right.update(hashes[1_400_000:])
    left.merge(right)
    assert left.count() == big.count()  # KMV merges exactly: the same k smallest hashes


def test_frequent_counts_are_exact_below_their_bound_and_never_high_beyond():
    rng = np.random.default_rng(8)
    keys = rng.zipf(1.3, size=400_000).astype(str)
    true = pd.Series(keys).value_counts()
    counts = FrequentCounts(exact_limit=2_000, capacity=500)
    for start in range(0, len(keys), 50_000):
        chunk = pd.Series(keys[start : start + 50_000]).value_counts()
        counts.update(chunk.index.tolist(), chunk.to_numpy())
    assert not counts.exact and counts.total == len(keys)
    assert counts.count_error <= len(keys) / (counts.capacity + 1)
    for key, count in counts.top(20):
        assert true[key] - counts.count_error <= count <= true[key]
    assert [key for key, _ in counts.top(5)] == list(true.index[:5])
    exact = FrequentCounts(exact_limit=10_000, capacity=500)
    exact.update_mapping({"a": 3, "b": 3, "c": 1})
    assert exact.exact and exact.top() == [("a", 3), ("b", 3), ("c", 1)]


def test_duplicate_rows_are_sampled_by_hash_with_a_stated_error_beyond_the_bound():
    rng = np.random.default_rng(6)
    distinct = rng.integers(0, 2**64 - 1, size=300_000, dtype=np.uint64)
    rows = np.concatenate([distinct, distinct[:45_000]])  # 45,000 repeats
    rng.shuffle(rows)
    exact = RowDuplicates(limit=1_000_000)
    exact.update(rows)
    assert exact.duplicates() == (45_000, None)
    sampled = RowDuplicates(limit=40_000)
    for start in range(0, len(rows), 10_000):
        sampled.update(rows[start : start + 10_000])
    estimate, how = sampled.duplicates()
    assert not sampled.exact and how is not None
    assert abs(estimate - 45_000) <= 4 * how["standard_error"]
    assert set(sampled.repeated_keys().tolist()) <= set((distinct[:45_000] & ~np.uint64(1)).tolist())


def test_a_large_table_gets_estimates_within_the_bounds_its_document_states():
    rng = np.random.default_rng(12)
    rows = 300_000
    df = pd.DataFrame(
        {
            "x": rng.lognormal(size=rows),
            "id": rng.permutation(rows).astype(str),
            "city": rng.choice([f"c{i}" for i in range(30)], rows, p=np.linspace(1, 3, 30) / 60),
        }
    )
    limits = Limits(
        exact_values=10_000, exact_distinct=20_000, distinct_k=4_096, exact_keys=5_000, frequent_capacity=500
    )
    document = streamed(df, 65_536, limits)
    assert document["exact"] is False
    x = document["columns"]["x"]
    values = np.sort(df["x"].to_numpy())
    rank_error = x["estimates"]["quantiles"]["rank_error"] * rows
    for name, level in {"p01": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99}.items():
        rank = np.searchsorted(values, x["quantiles"][name])
        assert abs(rank - level * rows) <= rank_error + 1
    true_counts, _ = np.histogram(values, bins=x["histogram"]["edges"])
    assert (
        np.abs(np.array(x["histogram"]["counts"]) - true_counts).max()
        <= x["estimates"]["histogram"]["count_error"]
    )
    lower, upper = x["outlier_bounds"]["lower"], x["outlier_bounds"]["upper"]
    true_outliers = int(((values < lower) | (values > upper)).sum())
    assert abs(x["outliers"] - true_outliers) <= x["estimates"]["outliers"]["count_error"]
    assert (x["count"], x["min"], x["max"]) == (rows, values[0], values[-1])  # exact at any size
    assert x["mean"] == pytest.approx(values.mean(), rel=1e-9)
    ids = document["columns"]["id"]
    assert abs(ids["distinct"] / rows - 1) < 4 * ids["estimates"]["distinct"]["relative_standard_error"]
    assert ids["logical_type"] == "categorical" and "top_values" in ids["estimates"]
    city = document["columns"]["city"]
    assert "estimates" not in city and city["distinct"] == 30  # 30 categories stay exact


def test_compacted_quantile_levels_own_their_items():
    # A level left as a view of the sorted array it was cut from kept that whole array alive: 300 MB
    # of dead levels on 1M rows x 150 columns.
    sketch = QuantileSketch(k=64)
    for start in range(0, 10_000, 1_000):
        sketch.update(np.arange(start, start + 1_000, dtype=float))
    sketch._flush()
    assert len(sketch.levels) > 3
    assert all(level.base is None for level in sketch.levels)


def test_exact_limit_shrinks_with_the_table_width_and_the_allowance(monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "4096")
    assert exact_limit(25) == EXACT_VALUES  # the benchmark's 1M x 25 table stays exact at 4 GiB
    wide = exact_limit(150)
    # What the process holds before any row (256 MiB) is not the rows': a quarter of the rest.
    assert wide == (3840 << 20) // 4 // (150 * 24) < EXACT_VALUES
    monkeypatch.setenv(MEMORY_ENV, "1024")
    assert exact_limit(150) == (768 << 20) // 4 // (150 * 24)
    monkeypatch.setenv(MEMORY_ENV, "64")
    assert exact_limit(10_000) == max(QUANTILE_K, DISTINCT_K)  # never below what a sketch keeps


def test_a_table_too_wide_for_the_allowance_is_sketched_and_states_its_estimates(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    rows, columns = 40_000, 40
    df = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    df["label"] = rng.integers(0, 2, rows)
    write_dataset(df, tmp_path / "data", part_rows=10_000)
    config = ValidationConfig(label_column="label")
    exact = validate_dataset(tmp_path / "data", config)
    assert exact.statistics["exact"] is True
    # 320 MiB: the rows get a quarter of it (80 MiB; the process itself holds 256), and the
    # summaries a quarter of that: 20 MiB / (41 columns x 24 bytes) = 21,312 values a column.
    monkeypatch.setenv(MEMORY_ENV, "320")
    bounded = validate_dataset(tmp_path / "data", config)
    assert bounded.statistics["exact"] is False
    x0 = bounded.statistics["columns"]["x0"]
    values = np.sort(df["x0"].to_numpy())
    rank_error = x0["estimates"]["quantiles"]["rank_error"] * rows
    for name, level in {"p01": 0.01, "p50": 0.5, "p99": 0.99}.items():
        assert abs(np.searchsorted(values, x0["quantiles"][name]) - level * rows) <= rank_error + 1
    assert (x0["count"], x0["min"], x0["max"]) == (rows, values[0], values[-1])
    # The type checks' sample shrinks with the allowance too (10% of it, held three times over),
    # to its floor of 10,000 rows here; the same anomalies are found.
    assert exact.value_check_rows is None and bounded.value_check_rows == 10_000  # None: every row
    assert [a.kind for a in bounded.anomalies] == [a.kind for a in exact.anomalies]
    # The summary says why the figures are estimates, and what would make them exact.
    from mlstages.components.validate_data.report import render_markdown

    assert bounded.exact_values == 21_312 and exact.exact_values >= rows
    note = "values are kept exactly up to 21,312 of them"
    assert note in render_markdown(bounded) and note not in render_markdown(exact)
    assert "$MLSTAGES_MEMORY_MB" in render_markdown(bounded)


# --- bad input: one clear line --------------------------------------------------------------------


def test_bad_input_gets_one_line_naming_the_column_or_file(tmp_path):
    accumulator = StatisticsAccumulator()
    accumulator.update(pd.DataFrame({"a": [1.0], "b": ["x"]}))
    with pytest.raises(InputDataError) as columns:
        accumulator.update(pd.DataFrame({"a": [2.0], "c": ["y"]}))
    with pytest.raises(InputDataError) as dtype:
        accumulator.update(pd.DataFrame({"a": ["text"], "b": ["y"]}))
    other = StatisticsAccumulator()
    other.update(pd.DataFrame({"a": pd.to_datetime(["2024-01-01"]), "b": ["z"]}))
    with pytest.raises(InputDataError) as merged:
        accumulator.merge(other)
    (tmp_path / "data.parquet").write_text("not parquet")
    with pytest.raises(InputDataError) as unreadable:
        validate_dataset(tmp_path / "data.parquet", ValidationConfig())
    with pytest.raises(InputDataError) as names:
        compute_statistics(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    write_dataset(pd.DataFrame({"mass": ["heavy", "light", "3"] * 10}), tmp_path / "words")
    with pytest.raises(InputDataError) as declared:
        validate_dataset(tmp_path / "words", ValidationConfig(column_types={"mass": "numeric"}))
    messages = [e.value.args[0] for e in (columns, dtype, merged, unreadable, names, declared)]
    assert all("\n" not in m for m in messages)
    assert "have columns a, c, the first rows had a, b" in messages[0]
    assert "column 'a' is float64" in messages[1] and "object" in messages[1]
    assert "column 'a'" in messages[2]
    assert "data.parquet is not a readable Parquet file" in messages[3]
    assert "duplicate column names: 'a'" in messages[4]
    assert "column 'mass' is declared 'numeric' in column_types, but 20 of 30" in messages[5]
