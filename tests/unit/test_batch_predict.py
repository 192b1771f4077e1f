"""Batch inference's logic on the Palmer penguins: streamed in batches, written in the model
server's prediction-log format (read back by ingest and by monitor_drift as the server's log is),
and refusing what it cannot score or must not score with, in one line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from palmerpenguins import load_penguins
from serving_helpers import export_penguins_classifier, export_penguins_model

from mlstages.components.batch_predict import batch_predict as bp
from mlstages.components.batch_predict.batch_predict import (
    BatchPredictConfig,
    UnblessedModel,
    open_dataset,
    render_markdown,
    require_blessed,
)
from mlstages.components.common import registry, storage
from mlstages.components.common.dataset_files import read_dataset, write_dataset
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.reference import build_reference
from mlstages.components.ingest.ingest import IngestConfig, read_source
from mlstages.components.monitor_drift.config import DriftConfig
from mlstages.components.monitor_drift.monitor_drift import detect_drift
from mlstages.components.serving.model_dir import load_model_dir
from mlstages.components.serving.prediction_log import PredictionLogger

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
LOG_COLUMNS = ["request_id", "row_index", "logged_at", "model_name", "model_version"]
SHARD_NAME = re.compile(r"/date=\d{4}-\d{2}-\d{2}/part-\d{8}T\d{12}Z-[0-9a-f]{12}\.parquet$")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return export_penguins_classifier(tmp_path_factory)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory) -> Path:
    return export_penguins_model(
        tmp_path_factory.mktemp("regressor") / "model",
        "body_mass_g",
        "regression",
        "linear_regression",
        {"linear_regression": {"alpha": [1.0]}},
    )


@pytest.fixture(scope="module")
def penguins_file(tmp_path_factory) -> Path:
    """The penguins as ingest writes them, with an order id (a key that is no feature)."""
    data = load_penguins()
    data.insert(0, "order_id", np.arange(1_000_000_000_000, 1_000_000_000_000 + len(data), dtype="int64"))
    path = tmp_path_factory.mktemp("data") / "penguins.parquet"
    write_dataset(data, path)
    return path


def score(model_dir: Path, data: Path, out: Path, **options) -> bp.BatchResult:
    model, card = load_model_dir(str(model_dir))
    config = BatchPredictConfig(**options)
    return bp.batch_predict(
        open_dataset(data),
        model,
        card,
        config,
        output_uri=str(out),
        model_name="penguins",
        model_version="20260101T000000Z-abcdef12",
        blessing=bp.CHAMPION,
    )


def test_batches_become_log_shards_equal_to_predicting_all_rows_at_once(classifier, penguins_file, tmp_path):
    result = score(classifier, penguins_file, tmp_path / "out", batch_rows=50)

    assert result.rows == 344 and result.batches == 7 and len(result.shards) == 7
    assert all(SHARD_NAME.search(uri) for uri in result.shards), result.shards
    model, card = load_model_dir(str(classifier))
    # The same schema the model server's logger writes for this model: one format, one reader.
    logger = PredictionLogger(
        str(tmp_path / "server-log"),
        model_name="penguins",
        model_version="v",
        input_columns=card.input_columns,
        classes=list(model.classes_),
        probabilities=True,
    )
    assert all(pq.read_schema(uri) == logger.schema for uri in result.shards)
    logger.close()

    logged = read_source(IngestConfig(source_uri=str(tmp_path / "out")))
    assert list(logged.columns) == [*FEATURES, "prediction", *(f"proba_{c}" for c in CLASSES), *LOG_COLUMNS]
    logged = logged.sort_values(["request_id", "row_index"], kind="stable").reset_index(drop=True)
    everything = read_dataset(penguins_file)
    assert logged["prediction"].tolist() == model.predict(everything[FEATURES]).tolist()
    np.testing.assert_allclose(
        logged[[f"proba_{c}" for c in CLASSES]].to_numpy(),
        model.predict_proba(everything[FEATURES]),
        rtol=1e-12,
    )
    # Missing values compared as missing (None in one object column, NaN in the other).
    same_missing = [
        frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None) for frame in (logged, everything)
    ]
    pd.testing.assert_frame_equal(*same_missing, check_dtype=False)
    # One request per batch: its id, and each row's place in it.
    assert logged["request_id"].nunique() == 7
    assert logged["request_id"].str.fullmatch(rf"{result.request_prefix}-00000[0-6]").all()
    assert logged.groupby("request_id")["row_index"].apply(list).map(lambda r: r == list(range(len(r)))).all()
    assert set(logged["model_version"]) == {"20260101T000000Z-abcdef12"}
    assert set(logged["model_name"]) == {"penguins"}
    assert result.prediction_counts and sum(result.prediction_counts.values()) == 344
    assert "344 in 7 batch(es)" in render_markdown(result)


def test_it_never_holds_more_than_a_batch(classifier, penguins_file, tmp_path, monkeypatch):
    sizes: list[int] = []
    predict = bp.predict_frame

    def spy(model, frame, probabilities):
        sizes.append(len(frame))
        return predict(model, frame, probabilities)

    monkeypatch.setattr(bp, "predict_frame", spy)
    score(classifier, penguins_file, tmp_path / "out", batch_rows=64)
    assert sizes == [64] * 5 + [24]


def test_an_id_column_replaces_the_inputs_and_keeps_its_type(classifier, penguins_file, tmp_path):
    result = score(classifier, penguins_file, tmp_path / "out", id_column="order_id")
    assert result.columns[:2] == ["order_id", "prediction"]
    logged = read_source(IngestConfig(source_uri=str(tmp_path / "out")))
    assert not set(FEATURES) & set(logged.columns)
    assert logged["order_id"].dtype == "int64"  # a 13-digit key, not a float
    assert sorted(logged["order_id"]) == list(range(1_000_000_000_000, 1_000_000_000_000 + 344))


def test_a_regressor_writes_no_probabilities(regressor, penguins_file, tmp_path):
    result = score(regressor, penguins_file, tmp_path / "out")
    logged = read_source(IngestConfig(source_uri=str(tmp_path / "out")))
    assert not any(c.startswith("proba_") for c in logged.columns)
    assert logged["prediction"].dtype == "float64" and result.prediction_counts == {}


def test_monitor_drift_reads_batch_predictions_as_it_reads_the_servers_log(
    classifier, penguins_file, tmp_path
):
    """The monitoring pipeline ingests a prefix of shards and hands the window to monitor_drift:
    the log's own columns are not new features, and every model input is checked."""
    score(classifier, penguins_file, tmp_path / "out", batch_rows=100)
    window = read_source(IngestConfig(source_uri=str(tmp_path / "out")))
    _, card = load_model_dir(str(classifier))
    training = read_dataset(penguins_file)
    reference = build_reference(training, "species", card.input_columns, seed=0)
    outcome = detect_drift(reference, window, DriftConfig())
    result = outcome.to_dict()
    assert outcome.rows == 344
    assert result["new_columns"] == []
    assert sorted(f["column"] for f in result["features"]) == sorted(FEATURES)
    assert not outcome.retrain  # the rows the model was trained on have not drifted


@pytest.fixture
def version(classifier, tmp_path) -> tuple[str, str]:
    """The classifier published to a registry folder: (registry root, version URI)."""
    root = str(tmp_path / "registry")
    return root, registry.publish_model(classifier, root, "penguins")


def _downloaded(uri: str, tmp_path: Path) -> Path:
    target = tmp_path / "downloaded"
    registry.download_version(uri, target)
    return target


def test_the_champion_and_a_blessed_version_are_accepted(version, tmp_path):
    root, uri = version
    _, card = load_model_dir(uri)
    registry.attach_evaluation(uri, b'{"metrics": {"accuracy": 0.9}}')  # only an evaluated version leads
    registry.set_champion(root, "penguins", uri)
    assert require_blessed(uri, uri, card, model_registry=root, model_name="penguins") == bp.CHAMPION
    other = str(tmp_path / "elsewhere")
    registry.attach_blessing(uri, registry.blessing_record(True, "blessed: all checks passed", card.sha256))
    storage.upload_dir(str(_downloaded(uri, tmp_path)), other)
    assert require_blessed(other, other, card, model_registry=root, model_name="penguins") == bp.BLESSED


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (None, "the blessing gate never judged it (it has no blessing.json)"),
        (
            {"blessed": False, "reason": "not blessed: accuracy 0.5 below 0.9"},
            "the blessing gate did not bless it (not blessed: accuracy 0.5 below 0.9)",
        ),
        (
            {"blessed": True, "reason": "blessed", "sha256": "0" * 64},
            "its blessing.json belongs to another model file",
        ),
    ],
)
def test_an_unblessed_version_is_refused_in_one_line_unless_forced(version, tmp_path, record, message):
    root, uri = version
    _, card = load_model_dir(uri)
    if record is not None:
        registry.attach_blessing(uri, {"sha256": card.sha256, **record})
    with pytest.raises(UnblessedModel) as refused:
        require_blessed(uri, uri, card, model_registry=root, model_name="penguins")
    text = str(refused.value)
    assert "\n" not in text and text.startswith(f"model {uri} is not blessed: {message}")
    assert "force=true" in text
    assert (
        require_blessed(uri, uri, card, model_registry=root, model_name="penguins", force=True) == bp.FORCED
    )


def test_a_table_missing_a_model_input_names_the_column(classifier, tmp_path):
    path = tmp_path / "short.parquet"
    write_dataset(load_penguins().drop(columns=["flipper_length_mm"]), path)
    with pytest.raises(InputDataError) as refused:
        score(classifier, path, tmp_path / "out")
    text = str(refused.value)
    assert "\n" not in text
    assert text.startswith("the dataset has no column(s) 'flipper_length_mm' that the model takes as input")
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        (lambda d: d, {"id_column": "order"}, "parameter id_column: column 'order' is not in the dataset"),
        (
            lambda d: d.assign(body_mass_g=d["body_mass_g"].astype(str)),
            {},
            "column 'body_mass_g' of the dataset holds text (string) but the model takes numbers",
        ),
        (lambda d: d.head(0), {}, "the dataset has no rows: nothing to score"),
        (
            lambda d: d.assign(prediction=1),
            {"id_column": "prediction"},
            "column(s) 'prediction' of the dataset have the name of a column the predictions add",
        ),
    ],
)
def test_bad_input_is_refused_in_one_line_before_writing(classifier, tmp_path, change, options, message):
    path = tmp_path / "bad.parquet"
    write_dataset(change(load_penguins()), path)
    with pytest.raises(InputDataError) as refused:
        score(classifier, path, tmp_path / "out", **options)
    assert "\n" not in str(refused.value) and str(refused.value).startswith(message)
    assert not (tmp_path / "out").exists()


def test_a_batch_the_model_refuses_removes_the_shards_already_written(classifier, penguins_file, tmp_path):
    model, card = load_model_dir(str(classifier))

    class FailsOnTheThirdBatch:
        classes_ = model.classes_
        calls = 0

        def predict(self, frame):
            return model.predict(frame)

        def predict_proba(self, frame):
            FailsOnTheThirdBatch.calls += 1
            if FailsOnTheThirdBatch.calls == 3:
                raise ValueError("Found unknown categories ['Atlantis']\nin column 0")
            return model.predict_proba(frame)

    with pytest.raises(InputDataError) as refused:
        bp.batch_predict(
            open_dataset(penguins_file),
            FailsOnTheThirdBatch(),
            card,
            BatchPredictConfig(batch_rows=100),
            output_uri=str(tmp_path / "out"),
            model_name="penguins",
            model_version="v",
            blessing=bp.FORCED,
        )
    assert str(refused.value) == (
        "the model could not predict rows 200 to 299 of the dataset: ValueError: "
        "Found unknown categories ['Atlantis'] in column 0"
    )
    assert storage.list_uris(str(tmp_path / "out")) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_rows": 0}, "parameter batch_rows=0 must be an integer from 1 to 4,000,000"),
        ({"batch_rows": True}, "parameter batch_rows=True must be an integer"),
        ({"output_uri": "s3://bucket/predictions"}, "s3://"),
        ({"output_uri": "gs://Bad_Bucket/p"}, "Bad_Bucket"),
        ({"force": "yes"}, "parameter force='yes' must be true or false"),
    ],
)
def test_bad_parameters_are_named(options, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        BatchPredictConfig(**options)


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    path = tmp_path / "rows.parquet"
    path.write_text("island,sex\nDream,male\n")
    with pytest.raises(InputDataError, match=r"^dataset .*rows\.parquet is not a readable Parquet file: "):
        open_dataset(path)
    with pytest.raises(InputDataError, match="no such file"):
        open_dataset(tmp_path / "absent.parquet")


def test_a_long_scoring_pass_says_how_far_it_is(
    classifier, penguins_file, tmp_path, progress_lines, monkeypatch
):
    from mlstages.components.common import progress

    monkeypatch.setattr(progress, "_STREAM_THROTTLE", progress.Throttle(0.0))
    score(classifier, penguins_file, tmp_path / "out", batch_rows=100)
    scoring = [line for line in progress_lines if line.startswith("scoring the dataset: ")]
    assert scoring == [f"scoring the dataset: {n} of 344 rows ({n / 344:.0%})" for n in (100, 200, 300, 344)]
