"""The training_data component run through kfp.local: an ingested window and the original CSV
assembled, streamed a few rows at a time, into one registry file the training pipeline ingests."""

from pathlib import Path

import pandas as pd
from kfp import dsl
from palmerpenguins import load_penguins

from mlstages.components.common.dataset_files import read_lineage
from mlstages.components.common.datasets import content_hash
from mlstages.components.ingest.component import ingest
from mlstages.components.ingest.ingest import IngestConfig, read_source
from mlstages.components.training_data.component import training_data


@dsl.pipeline
def assemble(window_uri: str, data_uri: str, model_registry: str, window_policy: str) -> str:
    window = ingest(source_uri=window_uri)
    return training_data(
        window=window.outputs["dataset"],
        data_uri=data_uri,
        label_column="sex",
        model_registry=model_registry,
        model_name="penguins",
        window_policy=window_policy,
    ).outputs["data_uri"]


def test_append_then_sliding_publish_files_the_pipeline_ingests(kfp_local, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSTAGES_INGEST_BATCH_ROWS", "16")  # many chunks even on 344 rows
    penguins = load_penguins()
    penguins.to_csv(tmp_path / "penguins.csv", index=False)
    window = penguins.sample(80, random_state=3).assign(body_mass_g=lambda f: f["body_mass_g"] + 1000)
    window = pd.concat([window, penguins.head(5)])  # five rows the original data already holds
    window.to_csv(tmp_path / "window.csv", index=False)
    registry = str(tmp_path / "registry")

    first = assemble(
        window_uri=str(tmp_path / "window.csv"),
        data_uri=str(tmp_path / "penguins.csv"),
        model_registry=registry,
        window_policy="append",
    ).output
    published = read_source(IngestConfig(source_uri=first))
    original = read_source(IngestConfig(source_uri=str(tmp_path / "penguins.csv")))
    ingested = read_source(IngestConfig(source_uri=str(tmp_path / "window.csv")))
    labelled = ingested[ingested["sex"].notna()].reset_index(drop=True)
    expected = pd.concat([original, labelled], ignore_index=True)
    expected = expected[~expected.astype(str).duplicated().to_numpy()].reset_index(drop=True)
    assert len(expected) < len(original) + len(labelled)  # the original rows in the window went
    pd.testing.assert_frame_equal(published, expected)
    sources = read_lineage(Path(first))["sources"]
    assert [s["role"] for s in sources] == ["original data", "window"]
    assert sources[0]["content_hash"] == content_hash(original)
    assert sources[1]["rows"] == len(labelled) and sources[1]["content_hash"] == content_hash(labelled)
    archived = list((Path(registry) / "penguins" / "windows").glob("*.parquet"))
    assert len(archived) == 1 and sources[1]["uri"] == str(archived[0])

    second = assemble(
        window_uri=str(tmp_path / "window.csv"),
        data_uri=str(tmp_path / "penguins.csv"),
        model_registry=registry,
        window_policy="sliding",
    ).output
    # The newest windows, this one and the one the first run archived: the same rows, once.
    assert len(read_source(IngestConfig(source_uri=second))) == len(labelled.astype(str).drop_duplicates())
    assert len(list((Path(registry) / "penguins" / "windows").glob("*.parquet"))) == 2
