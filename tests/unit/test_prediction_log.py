"""Prediction logging: the real model server on 127.0.0.1 writes the rows it scores to the real GCS
emulator, and the shards read back as one dataset through the ingest stage's own reader.

The logger itself (schema, buffering, a failed write retried, the bounded buffer) is tested in
this process against the same emulator; join_labels on the rows read back.
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from kserve.errors import InvalidInput
from palmerpenguins import load_penguins
from threadpoolctl import threadpool_limits

from mlstages.components.common import storage
from mlstages.components.common.datasets import column_types
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
from mlstages.components.ingest.ingest import IngestConfig, read_source
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.serving.__main__ import parse_args
from mlstages.components.serving.client import v1_request, v2_request
from mlstages.components.serving.log_format import join_labels, model_version_of
from mlstages.components.serving.model import SklearnPipelineModel
from mlstages.components.serving.prediction_log import PredictionLogger
from mlstages.components.serving.process import local_session, serve_in_background
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.train import train

NAME = "penguins"
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
LOG_COLUMNS = ["request_id", "row_index", "logged_at", "model_name", "model_version"]
EXPECTED_COLUMNS = [*FEATURES, "prediction", *(f"proba_{c}" for c in CLASSES), *LOG_COLUMNS]
SHARD_NAME = re.compile(r"/date=\d{4}-\d{2}-\d{2}/part-\d{8}T\d{12}Z-[0-9a-f]{12}\.parquet$")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A species classifier exported by the suite's own stages (raw rows in)."""
    penguins = load_penguins().dropna(subset=["species"])
    with threadpool_limits(limits=1):
        prepared = preprocess(
            penguins, PreprocessConfig(label_column="species", task="classification", seed=0)
        )
        features = engineer_features(
            prepared.train,
            prepared.preprocessor,
            FeatureConfig(label_column="species", task="classification"),
        )
        result = train(
            prepared.train,
            features.feature_pipeline,
            TrainConfig(
                label_column="species",
                task="classification",
                model_families=("logistic_regression",),
                cv_folds=2,
                search_space={"logistic_regression": {"C": [1.0]}},
            ),
        )
    directory = tmp_path_factory.mktemp("classifier") / "model"
    export_model(result, directory, column_types(prepared.train[result.input_columns]))
    return directory


@pytest.fixture(scope="module")
def served(model_dir) -> SklearnPipelineModel:
    model = SklearnPipelineModel(NAME, str(model_dir))
    model.load()
    return model


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Raw rows with missing values (row 2 has no measurements and no sex)."""
    return (
        load_penguins().iloc[[0, 1, 3, 8, 50, 120, 160, 200, 220, 300, 339]][FEATURES].reset_index(drop=True)
    )


def post(http, url: str, body: dict) -> dict:
    answer = http.post(url, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_shards(prefix: str, count: int, seconds: float = 20.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        shards = storage.list_uris(prefix)
        if len(shards) >= count or time.monotonic() > deadline:
            return shards
        time.sleep(0.1)


# --- the server logs what it scores ------------------------------------------------------------------


def test_server_logs_v1_and_v2_rows_with_predictions_probabilities_and_request_ids(
    model_dir, served, rows, gcs_bucket, no_external_network
):
    prefix = f"{gcs_bucket}/predictions"
    model = served.model
    with (
        serve_in_background(
            str(model_dir),
            NAME,
            prediction_log=prefix,
            prediction_log_max_rows=5,
            prediction_log_max_seconds=600,
        ) as server,
        local_session() as http,
    ):
        # V1 with the client's request id and probabilities: 3 rows.
        body = v1_request(rows.iloc[:3], FEATURES, return_probabilities=True)
        body["parameters"]["request_id"] = "order-17"
        first = post(http, server.v1_predict_url, body)
        assert first["request_id"] == "order-17"
        # V1 without an id: one is generated and returned. 3 more rows: max_rows=5 is reached,
        # so the two requests are written while the server runs, as two shards of at most 5 rows.
        second = post(http, server.v1_predict_url, v1_request(rows.iloc[3:6], FEATURES))
        generated = second["request_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        during = wait_for_shards(prefix, 2)
        assert len(during) == 2 and all(SHARD_NAME.search(s) for s in during), during
        # V2 with the client's id, and V2 without one (the response id is the logged id).
        v2_body = v2_request(rows.iloc[6:9], served.features)
        v2_body["id"] = "batch-v2"
        assert post(http, server.v2_infer_url, v2_body)["id"] == "batch-v2"
        v2_body = v2_request(rows.iloc[9:], served.features)
        del v2_body["id"]
        v2_generated = post(http, server.v2_infer_url, v2_body)["id"]
        assert v2_generated
    # The two V2 requests (3 + 2 rows) reach max_rows again: one more shard. Nothing is lost, and
    # each shard is whole Parquet.
    shards = storage.list_uris(prefix)
    assert len(shards) == 3 and all(SHARD_NAME.search(s) for s in shards), shards

    logged = read_source(IngestConfig(source_uri=prefix))
    assert list(logged.columns) == EXPECTED_COLUMNS
    logged = logged.sort_values(["logged_at", "row_index"], kind="stable").reset_index(drop=True)
    assert (
        logged["request_id"].tolist()
        == ["order-17"] * 3 + [generated] * 3 + ["batch-v2"] * 3 + [v2_generated] * 2
    )
    assert logged["row_index"].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]
    pd.testing.assert_frame_equal(logged[FEATURES], rows, check_dtype=False)
    assert logged["prediction"].tolist() == model.predict(rows).tolist()
    probabilities = logged[[f"proba_{c}" for c in CLASSES]].to_numpy(dtype="float64")
    np.testing.assert_allclose(probabilities[:3], model.predict_proba(rows.iloc[:3]), rtol=1e-12)
    assert np.isnan(probabilities[3:]).all()  # not asked for, not computed
    assert set(logged["model_name"]) == {NAME}
    assert set(logged["model_version"]) == {model_version_of(str(model_dir), served.card)}
    assert (logged["logged_at"] <= pd.Timestamp.now(tz="UTC")).all()


def test_a_failing_log_write_never_fails_a_prediction(model_dir, rows, gcs_bucket, tmp_path):
    missing = f"gs://absent-{uuid.uuid4().hex[:12]}/predictions"
    with (
        serve_in_background(
            str(model_dir),
            NAME,
            prediction_log=missing,
            prediction_log_max_rows=1,
            prediction_log_max_seconds=0.2,
            log_dir=tmp_path,
        ) as server,
        local_session() as http,
    ):
        for start in range(0, 6, 2):
            answer = post(http, server.v1_predict_url, v1_request(rows.iloc[start : start + 2], FEATURES))
            assert len(answer["predictions"]) == 2
            time.sleep(0.3)  # a flush attempt between requests
        assert http.get(server.v2_ready_url, timeout=10).json() == {"ready": True}
        log = server.log_path
    text = log.read_text()
    assert "prediction log: could not write" in text
    assert "does not exist" in text and missing.split("/")[2] in text


def test_v1_request_id_must_be_a_short_string(served, rows):
    body = v1_request(rows.iloc[:1], FEATURES)
    body["parameters"] = {"request_id": 17}
    with pytest.raises(InvalidInput, match="parameter request_id must be a non-empty string"):
        served.predict(body)
    body["parameters"] = {"request_id": "x" * 201}
    with pytest.raises(InvalidInput, match="at most 200 characters"):
        served.predict(body)
    # Without logging, a given id is accepted and the response is unchanged.
    body["parameters"] = {"request_id": "fine"}
    assert set(served.predict(body)) == {"predictions"}


def test_command_line_and_environment_turn_logging_on(monkeypatch):
    monkeypatch.delenv("MLSTAGES_PREDICTION_LOG", raising=False)
    assert parse_args([]).prediction_log is None
    monkeypatch.setenv("MLSTAGES_PREDICTION_LOG", "gs://bucket/predictions")
    assert parse_args([]).prediction_log == "gs://bucket/predictions"
    args = parse_args(["--prediction_log=gs://other/p", "--prediction_log_max_rows=10"])
    assert (args.prediction_log, args.prediction_log_max_rows, args.prediction_log_max_seconds) == (
        "gs://other/p",
        10,
        60.0,
    )


# --- the logger in this process ------------------------------------------------------------------------


@pytest.fixture
def make_logger(gcs_environment):
    """PredictionLogger factory; every logger is closed before the emulator's environment goes."""
    made: list[PredictionLogger] = []

    def make(prefix: str, **options) -> PredictionLogger:
        log = PredictionLogger(
            prefix,
            model_name=NAME,
            model_version="v1",
            input_columns={"member": "boolean", "joined": "datetime", "note": "text", "score": "numeric"},
            classes=[0, 1],
            probabilities=True,
            **options,
        )
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


def _frame(count: int, missing: bool = False) -> pd.DataFrame:
    if missing:  # every value missing: the column types must not change with it
        return pd.DataFrame(
            {
                "member": pd.array([None] * count, dtype="boolean"),
                "joined": pd.Series([pd.NaT] * count, dtype="datetime64[ns]"),
                "note": np.array([np.nan] * count, dtype=object),
                "score": np.full(count, np.nan),
            }
        )
    return pd.DataFrame(
        {
            "member": np.array([True, False] * (count // 2) + [True] * (count % 2)),
            "joined": pd.Series(pd.date_range("2024-05-01", periods=count, freq="h", tz="Europe/Paris")),
            "note": np.array([f"note {i}" for i in range(count)], dtype=object),
            "score": np.arange(count, dtype="float64"),
        }
    )


def test_shards_have_the_same_schema_whatever_the_values(tmp_path, make_logger):
    prefix = str(tmp_path / "log")
    log = make_logger(prefix, max_rows=1000, max_seconds=600)
    log.log(_frame(3), np.array([1, 0, 1]), np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]), "a")
    first = log.flush()
    log.log(_frame(2, missing=True), np.array([0, 0]), None, "b")
    second = log.close()
    assert len(first) == 1 and len(second) == 1
    tables = [pd.read_parquet(uri) for uri in first + second]
    assert [list(t.columns) for t in tables] == [list(log.schema.names)] * 2
    assert [pq.read_schema(storage.to_local_path(uri)) for uri in first + second] == [log.schema] * 2
    first_types, second_types = ([str(t) for t in table.dtypes] for table in tables)
    assert first_types == second_types
    one, two = tables
    # A zoned datetime is logged as the same instant in UTC.
    assert one["joined"].iloc[0] == pd.Timestamp("2024-04-30T22:00:00")
    assert one["prediction"].tolist() == [1, 0, 1] and one["proba_1"].tolist() == [0.8, 0.1, 0.6]
    assert two["member"].isna().all() and two["note"].isna().all() and two["proba_0"].isna().all()
    assert log.stats() == {
        "rows_logged": 5,
        "rows_written": 5,
        "rows_dropped": 0,
        "rows_buffered": 0,
        "shards_written": 2,
        "failed_flushes": 0,
    }


def test_shards_hold_at_most_max_rows_unless_one_request_has_more(tmp_path, make_logger):
    log = make_logger(str(tmp_path / "log"), max_rows=2, max_seconds=600)
    for i, count in enumerate([1, 1, 1, 3, 1]):
        log.log(_frame(count), np.ones(count, dtype=int), None, f"r{i}")
    log.close()
    sizes = {uri: pq.read_metadata(storage.to_local_path(uri)).num_rows for uri in log.shards_written}
    assert sum(sizes.values()) == 7
    big = [uri for uri, rows in sizes.items() if rows > 2]
    assert len(big) == 1 and sizes[big[0]] == 3
    assert pd.read_parquet(storage.to_local_path(big[0]))["request_id"].tolist() == ["r3"] * 3


def test_a_request_whose_values_do_not_fit_is_dropped_not_retried_forever(tmp_path, make_logger, caplog):
    log = make_logger(str(tmp_path / "log"), max_rows=1000, max_seconds=600)
    bad = _frame(1)
    bad["note"] = np.array([{"not": "text"}], dtype=object)
    log.log(_frame(2), np.array([0, 1]), None, "good-1")
    log.log(bad, np.array([1]), None, "bad")
    log.log(_frame(1), np.array([0]), None, "good-2")
    with caplog.at_level(logging.ERROR):
        (uri,) = log.close()
    assert "dropped request bad (1 row(s)): its values do not fit" in caplog.text
    assert pd.read_parquet(storage.to_local_path(uri))["request_id"].tolist() == [
        "good-1",
        "good-1",
        "good-2",
    ]
    assert log.stats()["rows_dropped"] == 1 and log.stats()["rows_written"] == 3


def test_a_failed_flush_keeps_the_rows_for_the_next_and_the_buffer_is_bounded(
    gcs_server, make_logger, caplog
):
    bucket = f"late-{uuid.uuid4().hex[:12]}"
    prefix = f"gs://{bucket}/predictions"
    log = make_logger(prefix, max_rows=2, max_seconds=600, max_buffered_rows=6)
    for i in range(3):
        log.log(_frame(2), np.array([0, 1]), None, f"r{i}")
    with caplog.at_level(logging.WARNING):
        assert log.flush() == []
    assert f"could not write 6 row(s) under {prefix}" in caplog.text
    assert log.stats()["rows_buffered"] == 6 and log.stats()["failed_flushes"] >= 1
    # Still failing: the buffer holds at most 6 rows, the oldest requests are dropped and counted.
    log.log(_frame(2), np.array([0, 1]), None, "r3")
    log.log(_frame(2), np.array([0, 1]), None, "r4")
    assert log.stats()["rows_dropped"] == 4 and log.stats()["rows_buffered"] == 6
    gcs_server.ensure_bucket(bucket)
    try:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            written = log.close()
        assert "dropped 4 row(s)" in caplog.text
        assert len(written) == 3  # max_rows=2 rows a shard
        logged = read_source(IngestConfig(source_uri=prefix))
        assert logged["request_id"].tolist() == ["r2", "r2", "r3", "r3", "r4", "r4"]
        assert log.stats()["rows_written"] == 6
    finally:
        gcs_server.delete_bucket(bucket)


def test_the_background_thread_writes_after_max_seconds(tmp_path, make_logger):
    prefix = str(tmp_path / "log")
    log = make_logger(prefix, max_rows=1000, max_seconds=0.3)
    log.log(_frame(1), np.array([1]), None, "only")
    deadline = time.monotonic() + 10
    while not log.shards_written and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(log.shards_written) == 1 and log.stats()["rows_buffered"] == 0
    log.close()
    # Rows after close are not written, and counted.
    log.log(_frame(1), np.array([1]), None, "late")
    assert log.stats()["rows_dropped"] == 1


def test_a_pickled_logger_starts_empty_with_the_same_settings(tmp_path, make_logger):
    # KServe's extra workers are spawned processes that receive the model (and its logger) pickled.
    log = make_logger(str(tmp_path / "log"), max_rows=7, max_seconds=5)
    log.log(_frame(1), np.array([1]), None, "before")
    copy = pickle.loads(pickle.dumps(log))
    try:
        assert (copy.prefix_uri, copy.max_rows, copy.max_seconds, copy.schema) == (
            log.prefix_uri,
            7,
            5.0,
            log.schema,
        )
        assert copy.stats()["rows_buffered"] == 0
        copy.log(_frame(1), np.array([0]), None, "after")
        (uri,) = copy.close()
        assert pd.read_parquet(storage.to_local_path(uri))["request_id"].tolist() == ["after"]
    finally:
        copy.close()


@pytest.mark.parametrize(
    ("prefix", "options", "message"),
    [
        ("", {}, "parameter prediction_log is empty"),
        ("gs://Bad_Bucket/p", {}, "bucket name 'Bad_Bucket' is not valid"),
        ("s3://bucket/p", {}, "unsupported scheme"),
        ("gs://bucket/p", {"max_rows": 0}, "parameter max_rows=0 must be an integer >= 1"),
        ("gs://bucket/p", {"max_seconds": 0}, "parameter max_seconds=0 must be a positive number"),
        ("gs://bucket/p", {"max_rows": 10, "max_buffered_rows": 5}, "parameter max_buffered_rows=5"),
    ],
)
def test_bad_parameters_are_named(make_logger, prefix, options, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        make_logger(prefix, **options)


def test_a_feature_named_like_a_log_column_is_refused():
    with pytest.raises(ParameterError, match="input feature\\(s\\) 'prediction' have the same name"):
        PredictionLogger(
            "gs://bucket/p", model_name=NAME, model_version="v1", input_columns={"prediction": "numeric"}
        )


def test_model_version_is_the_recorded_one_the_registry_one_or_the_digest():
    def card(**extra):
        return ModelCard.from_dict(
            {"task": "regression", "input_features": [{"name": "x", "type": "numeric"}], "sha256": "ab" * 32}
            | extra
        )

    assert model_version_of("gs://b/m", card(version="3")) == "3"
    assert (
        model_version_of("gs://b/models/p/20260101T000000Z-1234abcd/", card()) == "20260101T000000Z-1234abcd"
    )
    assert model_version_of("/mnt/models", card()) == "sha256-abababababab"


# --- labels that arrive later ------------------------------------------------------------------------


def _logged() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0],
            "prediction": ["a", "b", "a", "b"],
            "request_id": ["r1", "r2", "r2", "r3"],
            "row_index": [0, 0, 1, 0],
            "logged_at": pd.Timestamp("2026-01-01", tz="UTC"),
        }
    )


def test_labels_join_by_request_id_and_row_index():
    labels = pd.DataFrame(
        {"request_id": ["r2", "r1", "r9"], "row_index": [1, 0, 0], "species": ["b", "a", "z"]}
    )
    joined = join_labels(_logged(), labels)
    assert joined["request_id"].tolist() == ["r1", "r2", "r2", "r3"]  # every logged row, in order
    assert joined["species"].fillna("-").tolist() == ["a", "-", "b", "-"]
    # Without row_index, a label belongs to a single-row request.
    by_request = join_labels(_logged(), pd.DataFrame({"request_id": ["r3"], "species": ["b"]}))
    assert by_request["species"].fillna("-").tolist() == ["-", "-", "-", "b"]


@pytest.mark.parametrize(
    ("labels", "on", "message"),
    [
        (pd.DataFrame({"id": ["r1"], "species": ["a"]}), "request_id", "labels have no column 'request_id'"),
        (pd.DataFrame({"id": ["r1"], "species": ["a"]}), "id", "predictions have no column 'id'"),
        (
            pd.DataFrame({"request_id": ["r2"], "species": ["a"]}),
            "request_id",
            "request 'r2' has 2 logged rows",
        ),
        (
            pd.DataFrame({"request_id": ["r1", "r1"], "species": ["a", "b"]}),
            "request_id",
            "labels have 2 rows with the same request_id (first: ['r1'])",
        ),
        (
            pd.DataFrame({"request_id": ["r1"], "prediction": ["a"]}),
            "request_id",
            "'prediction' are already columns",
        ),
        (pd.DataFrame({"request_id": ["r1"]}), "request_id", "labels have no column besides request_id"),
        (
            pd.DataFrame({"request_id": [None], "species": ["a"]}),
            "request_id",
            "labels row 0 has no request_id",
        ),
    ],
)
def test_bad_labels_are_named(labels, on, message):
    with pytest.raises(InputDataError, match=re.escape(message)):
        join_labels(_logged(), labels, on=on)


def test_labels_join_the_shards_read_back(gcs_bucket, make_logger):
    prefix = f"{gcs_bucket}/predictions"
    log = make_logger(prefix)
    log.log(_frame(2), np.array([1, 0]), None, "first")
    log.log(_frame(1), np.array([1]), None, "second")
    log.close()
    logged = read_source(IngestConfig(source_uri=prefix))
    labels = pd.DataFrame({"request_id": ["first", "second"], "row_index": [1, 0], "label": [0, 1]})
    joined = join_labels(logged, labels)
    assert joined["label"].tolist()[1:] == [0, 1] and pd.isna(joined["label"].iloc[0])
    assert (joined["logged_at"].dt.date <= dt.datetime.now(dt.timezone.utc).date()).all()
