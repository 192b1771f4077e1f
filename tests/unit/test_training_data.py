"""Retraining data under the window policies (issue 14 item 2), on the Palmer penguins: the
original data with a labelled window appended, the newest windows, or the window alone."""

import pandas as pd
import pytest
from palmerpenguins import load_penguins

from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.training_data.training_data import (
    Part,
    TrainingDataConfig,
    assemble,
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


def test_append_adds_the_labelled_window_rows_to_the_original_data(penguins):
    window = penguins.sample(60, random_state=1).reset_index(drop=True)
    window["body_mass_g"] += 500  # new penguins, not copies of known ones
    labelled = labelled_rows(window, "sex")
    assert len(labelled) == window["sex"].notna().sum() < 60
    base = Part("original data", "gs://b/penguins.csv", penguins)
    combined, parts, notes = assemble(_config("append"), Part("window", "gs://b/w1.parquet", labelled), base)
    assert len(combined) == len(penguins) + len(labelled)
    assert list(combined.columns) == list(penguins.columns)
    assert [p.role for p in parts] == ["original data", "window"] and not notes
    sources = lineage_parts(parts)
    assert [s["rows"] for s in sources] == [len(penguins), len(labelled)]
    assert all(len(s["content_hash"]) == 64 for s in sources)
    assert "append" in render_markdown(_config("append"), parts, len(combined), "gs://b/td.parquet", notes)


def test_sliding_keeps_the_newest_windows_and_window_keeps_one(penguins):
    windows = [
        Part("earlier window", f"gs://b/w{i}.parquet", penguins.iloc[i * 10 : i * 10 + 10]) for i in range(4)
    ]
    current = Part("window", "gs://b/w9.parquet", penguins.iloc[100:110])
    combined, parts, notes = assemble(_config("sliding", max_windows=3), current, None, windows)
    assert [p.uri for p in parts] == ["gs://b/w2.parquet", "gs://b/w3.parquet", "gs://b/w9.parquet"]
    assert len(combined) == 30 and not notes
    _, few, notes = assemble(_config("sliding", max_windows=3), current, None, windows[:1])
    assert len(few) == 2 and "fewer than max_windows=3" in notes[0]
    alone, parts, _ = assemble(_config("window"), current, None, windows)
    assert len(alone) == 10 and [p.role for p in parts] == ["window"]


def test_a_window_without_labels_retrains_on_the_original_data_or_is_refused(penguins):
    unlabelled = Part("window", "gs://b/w.parquet", labelled_rows(penguins.drop(columns="sex"), "sex"))
    base = Part("original data", "gs://b/penguins.csv", penguins)
    combined, parts, notes = assemble(_config("append"), unlabelled, base)
    assert len(combined) == len(penguins) and "cannot learn from the new rows" in notes[0]
    assert [p.role for p in parts] == ["original data"]
    with pytest.raises(InputDataError, match="has no row with a 'sex' label, so window_policy='window'"):
        assemble(_config("window"), unlabelled, None)


def test_a_window_lacking_a_training_column_is_named(penguins):
    window = Part("window", "gs://b/w.parquet", penguins.drop(columns=["island"]).head(5))
    base = Part("original data", "gs://b/penguins.csv", penguins)
    with pytest.raises(InputDataError, match=r"the window at gs://b/w.parquet lacks column\(s\) 'island'"):
        assemble(_config("append"), window, base)


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


def test_window_rows_the_data_already_holds_are_left_out_once(penguins):
    base = Part("original data", "gs://b/penguins.csv", penguins)
    window = Part("window", "gs://b/w.parquet", labelled_rows(penguins.head(30), "sex"))
    combined, _, notes = assemble(_config("append"), window, base)
    assert len(combined) == len(penguins.astype(str).drop_duplicates())
    assert any("repeating an earlier row were left out" in n for n in notes)
