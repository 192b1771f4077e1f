"""Retraining data under the window policies (issue 14 item 2), on the Palmer penguins: the
original data with a labelled window appended, the newest windows, or the window alone; the rows
streamed a chunk at a time (issue 15), the same as the whole tables put together."""

from pathlib import Path

import pandas as pd
import pytest
from palmerpenguins import load_penguins

from mlstages.components.common.dataset_files import read_dataset, read_lineage, write_dataset
from mlstages.components.common.datasets import content_hash
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.ingest.column_values import normalize_missing
from mlstages.components.training_data.streaming import assemble_rows, labelled_window
from mlstages.components.training_data.training_data import (
    Part,
    TrainingDataConfig,
    choose_parts,
    labelled_rows,
    lineage_parts,
    render_markdown,
)


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_penguins()


def _config(policy: str, **more) -> TrainingDataConfig:
    return TrainingDataConfig(
        data_uri="gs://b/penguins.csv", label_column="sex", window_policy=policy, **more
    )


def _part(folder: Path, role: str, uri: str, frame: pd.DataFrame) -> Part:
    metadata = write_dataset(frame.reset_index(drop=True), folder)
    return Part(role, uri, folder, metadata["rows"], tuple(frame.columns), metadata["content_hash"])


def _expected(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The parts put together whole, repeats left out: what the streamed assembly must equal."""
    combined = pd.concat([f[list(frames[0].columns)] for f in frames], ignore_index=True)
    return combined[~combined.astype(str).duplicated().to_numpy()].reset_index(drop=True)


def test_append_adds_the_labelled_window_rows_to_the_original_data(penguins, tmp_path):
    window = penguins.sample(60, random_state=1).reset_index(drop=True)
    window["body_mass_g"] += 500  # new penguins, not copies of known ones
    write_dataset(window, tmp_path / "window-in")
    current = labelled_window(
        tmp_path / "window-in", "sex", tmp_path / "window", "gs://b/w1", lineage={"sources": []}, batch_rows=7
    )
    assert current.rows == window["sex"].notna().sum() < 60
    assert current.content_hash == content_hash(labelled_rows(window, "sex"))
    base = _part(tmp_path / "base", "original data", "gs://b/penguins.csv", penguins)
    parts, notes = choose_parts(_config("append"), current, base)
    assert [p.role for p in parts] == ["original data", "window"] and not notes
    sources = lineage_parts(parts)
    assembled = assemble_rows(parts, tmp_path / "out", lineage={"sources": sources}, batch_rows=50)
    expected = _expected([penguins, labelled_rows(window, "sex")])
    assert assembled.rows == len(penguins) + current.rows == len(expected) and assembled.repeated == 0
    back = normalize_missing(read_dataset(assembled.file))
    pd.testing.assert_frame_equal(back, expected)
    assert assembled.content_hash == content_hash(expected)
    assert read_lineage(assembled.file)["sources"] == sources
    assert [s["rows"] for s in sources] == [len(penguins), current.rows]
    assert sources[0]["content_hash"] == content_hash(penguins)
    assert "append" in render_markdown(_config("append"), parts, assembled.rows, "gs://b/td.parquet", notes)


def test_sliding_keeps_the_newest_windows_and_window_keeps_one(penguins, tmp_path):
    windows = [
        _part(
            tmp_path / f"w{i}", "earlier window", f"gs://b/w{i}.parquet", penguins.iloc[i * 10 : i * 10 + 10]
        )
        for i in range(4)
    ]
    current = _part(tmp_path / "w9", "window", "gs://b/w9.parquet", penguins.iloc[100:110])
    parts, notes = choose_parts(_config("sliding", max_windows=3), current, None, windows)
    assert [p.uri for p in parts] == ["gs://b/w2.parquet", "gs://b/w3.parquet", "gs://b/w9.parquet"]
    assembled = assemble_rows(
        parts, tmp_path / "out", lineage={"sources": lineage_parts(parts)}, batch_rows=4
    )
    assert assembled.rows == 30 and not notes
    pd.testing.assert_frame_equal(
        normalize_missing(read_dataset(assembled.file)),
        penguins.iloc[[*range(20, 40), *range(100, 110)]].reset_index(drop=True),
    )
    few, notes = choose_parts(_config("sliding", max_windows=3), current, None, windows[:1])
    assert len(few) == 2 and "fewer than max_windows=3" in notes[0]
    alone, _ = choose_parts(_config("window"), current, None, windows)
    assert [p.role for p in alone] == ["window"]


def test_a_window_without_labels_retrains_on_the_original_data_or_is_refused(penguins, tmp_path):
    write_dataset(penguins.drop(columns="sex"), tmp_path / "window-in")
    unlabelled = labelled_window(
        tmp_path / "window-in", "sex", tmp_path / "window", "gs://b/w.parquet", lineage={"sources": []}
    )
    assert unlabelled.rows == 0 and "island" in unlabelled.columns
    base = _part(tmp_path / "base", "original data", "gs://b/penguins.csv", penguins)
    parts, notes = choose_parts(_config("append"), unlabelled, base)
    assert "cannot learn from the new rows" in notes[0]
    assert [p.role for p in parts] == ["original data"]
    assembled = assemble_rows(parts, tmp_path / "out", lineage={"sources": lineage_parts(parts)})
    assert assembled.rows == len(penguins.astype(str).drop_duplicates())
    with pytest.raises(InputDataError, match="has no row with a 'sex' label, so window_policy='window'"):
        choose_parts(_config("window"), unlabelled, None)


def test_a_window_lacking_a_training_column_is_named(penguins, tmp_path):
    window = _part(tmp_path / "w", "window", "gs://b/w.parquet", penguins.drop(columns=["island"]).head(5))
    base = _part(tmp_path / "base", "original data", "gs://b/penguins.csv", penguins)
    with pytest.raises(InputDataError, match=r"the window at gs://b/w.parquet lacks column\(s\) 'island'"):
        choose_parts(_config("append"), window, base)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window_policy": "latest"}, "window_policy='latest' is not one of"),
        ({"max_windows": 0}, "max_windows=0 must be a whole number of at least 1"),
        ({"data_uri": ""}, "window_policy='append' needs data_uri"),
        ({"label_column": " "}, "label_column is empty"),
    ],
)
def test_bad_settings_are_named(settings, message):
    values = {"data_uri": "gs://b/p.csv", "label_column": "sex", **settings}
    with pytest.raises(ParameterError, match=message):
        TrainingDataConfig(**values)


@pytest.mark.parametrize("batch_rows", [5, 1000])
def test_window_rows_the_data_already_holds_are_left_out_once(penguins, tmp_path, batch_rows):
    base = _part(tmp_path / "base", "original data", "gs://b/penguins.csv", penguins)
    head = labelled_rows(penguins.head(30), "sex")
    # A later column order and an extra column in the window: the training data's columns rule.
    window = _part(
        tmp_path / "w", "window", "gs://b/w.parquet", head[list(head.columns[::-1])].assign(extra=1)
    )
    parts, _ = choose_parts(_config("append"), window, base)
    assembled = assemble_rows(parts, tmp_path / "out", lineage={"sources": []}, batch_rows=batch_rows)
    expected = _expected([penguins, head])
    assert assembled.rows == len(expected) == len(penguins.astype(str).drop_duplicates())
    assert assembled.repeated == len(penguins) + len(head) - len(expected) > 0
    pd.testing.assert_frame_equal(normalize_missing(read_dataset(assembled.file)), expected)
    assert assembled.content_hash == content_hash(expected)


def test_parts_whose_integers_meet_missing_values_are_put_together_as_floats(tmp_path):
    # The window's counts are whole; the original data's have a gap: float64, as pd.concat gives,
    # and the window's (1, "a") then repeats the original (1.0, "a").
    frame = pd.DataFrame({"n": [1.0, None, 3.0], "y": list("abc")})
    base = _part(tmp_path / "b", "original data", "gs://b/d.csv", frame)
    window = _part(tmp_path / "w", "window", "gs://b/w.parquet", pd.DataFrame({"n": [4, 1], "y": ["d", "a"]}))
    parts, _ = choose_parts(_config("append"), window, base)
    assembled = assemble_rows(parts, tmp_path / "out", lineage={"sources": []}, batch_rows=1)
    back = normalize_missing(read_dataset(assembled.file))
    assert back["n"].dtype == "float64" and back["n"].tolist()[-1] == 4.0
    assert assembled.repeated == 1 and assembled.rows == 4
