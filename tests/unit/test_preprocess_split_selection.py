"""The split's selection of the smallest hashes, a chunk at a time, against the plain argpartition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstages.components.preprocess import split
from mlstages.components.preprocess.split import (
    positions_dtype,
    row_positions,
    smallest_hash_positions,
    split_hashes,
    stratified_test_positions,
)


def _plain(positions: np.ndarray, seed: int, count: int) -> np.ndarray:
    hashes = split_hashes(positions, seed)
    return np.sort(positions[np.argsort(hashes)[:count]])


@pytest.mark.parametrize("rows", [1, 2, 17, 1_000, 70_001])
@pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 0.999, 1.0])
def test_the_chosen_rows_are_the_smallest_hashes(rows, share, monkeypatch):
    monkeypatch.setattr(split, "_HASH_CHUNK_ROWS", 4_096)  # many chunks, and a short last one
    positions = np.arange(rows, dtype=np.int32)
    count = int(share * rows)
    chosen = smallest_hash_positions(positions, 7, count)
    np.testing.assert_array_equal(chosen, _plain(positions, 7, count))
    assert chosen.dtype == np.int32


def test_gaps_in_the_positions_and_other_seeds():
    rng = np.random.default_rng(0)
    positions = np.sort(rng.choice(10_000_000, size=50_000, replace=False)).astype(np.int64)
    for seed in (0, 1, 2**63 + 5):
        np.testing.assert_array_equal(
            smallest_hash_positions(positions, seed, 12_345), _plain(positions, seed, 12_345)
        )


def test_stratified_quotas_per_class_from_narrow_codes():
    positions = np.arange(30_000, dtype=np.int32)
    codes = (positions % 3 == 0).astype(np.uint8) + (positions % 7 == 0).astype(np.uint8)
    chosen = stratified_test_positions(positions, codes, 3_000, seed=4)
    quotas = split.test_quotas(np.bincount(codes), 3_000)
    expected = np.concatenate([_plain(positions[codes == c], 4, int(q)) for c, q in enumerate(quotas)])
    np.testing.assert_array_equal(chosen, np.sort(expected))
    assert len(chosen) == 3_000


def test_positions_are_int32_until_they_do_not_fit():
    assert positions_dtype(50_000_000) is np.int32
    assert positions_dtype(2**31) is np.int64
    frame = pd.DataFrame({"y": [1, 2, 3]}, index=pd.RangeIndex(5, 8))
    np.testing.assert_array_equal(row_positions(frame), [5, 6, 7])
    assert row_positions(frame).dtype == np.int32
    assert row_positions(frame.set_axis(["a", "b", "c"])).tolist() == [0, 1, 2]
