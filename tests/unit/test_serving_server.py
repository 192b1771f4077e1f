"""The model server: a real model (the suite's own preprocess → engineer_features → train on the
penguins), served by the real kserve.ModelServer in a subprocess on 127.0.0.1 and queried over HTTP.

One server serves the module's tests; its answers are compared with the model loaded in this
process. Loading (sha256, scikit-learn version, missing files, gs:// through the emulator) is tested
on the loading function itself and, where it matters, on a server of its own.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import psutil
import pytest
import requests
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from palmerpenguins import load_penguins
from serving_helpers import export_penguins_classifier, export_penguins_model

from mlstages.components.common import storage
from mlstages.components.common.artifacts import METADATA_FILE
from mlstages.components.common.errors import DigestMismatch, ParameterError
from mlstages.components.common.model_card import InputFeature
from mlstages.components.serving.__main__ import parse_args, resolve_model_uri
from mlstages.components.serving.app import serve
from mlstages.components.serving.client import v1_request, v2_request
from mlstages.components.serving.model import SklearnPipelineModel
from mlstages.components.serving.model_dir import LibraryVersionMismatch, ModelLoadError, load_model_dir
from mlstages.components.serving.ports import CannotListen, PortInUse, check_can_listen
from mlstages.components.serving.process import ServerStartError, local_session, serve_in_background
from mlstages.components.serving.protocol import rows_to_frame

NAME = "penguins"
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return export_penguins_classifier(tmp_path_factory)


@pytest.fixture(scope="module")
def model(model_dir):
    return joblib.load(model_dir / "model.joblib")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Raw rows as clients send them: every feature column, missing values included (row 3 of the
    penguins has no measurements and no sex), the label left out."""
    frame = load_penguins().iloc[[0, 1, 3, 8, 50, 120, 160, 200, 220, 300, 339]]
    assert frame.iloc[2].isna().sum() >= 4
    return frame[FEATURES].reset_index(drop=True)


@pytest.fixture(scope="module")
def server(model_dir):
    with serve_in_background(str(model_dir), NAME) as handle:
        yield handle


@pytest.fixture(scope="module")
def http():
    with local_session() as session:
        yield session


def features_of(model_dir: Path) -> list[InputFeature]:
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    return [InputFeature(f["name"], f["type"]) for f in metadata["input_features"]]


def post(http: requests.Session, url: str, body=None, **kwargs) -> requests.Response:
    if body is not None:
        kwargs["json"] = body
    return http.post(url, timeout=30, **kwargs)


def v2_predictions(answer: dict, name: str = "predict") -> list:
    return next(o for o in answer["outputs"] if o["name"] == name)["data"]


def assert_still_serving(http: requests.Session, server, rows: pd.DataFrame) -> None:
    ready = http.get(server.v2_ready_url, timeout=10)
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    answer = post(http, server.v1_predict_url, v1_request(rows.head(1), FEATURES))
    assert answer.status_code == 200, answer.text


# --- predictions over HTTP equal the model's own -------------------------------------------------


def test_v1_object_rows_predict_what_the_model_predicts(server, http, model, rows):
    answer = post(http, server.v1_predict_url, v1_request(rows, FEATURES))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": model.predict(rows).tolist()}


def test_v1_list_rows_in_feature_order_predict_the_same(server, http, model, rows):
    instances = [[None if pd.isna(v) else v for v in row] for row in rows.itertuples(index=False, name=None)]
    answer = post(http, server.v1_predict_url, {"instances": json.loads(json.dumps(instances, default=int))})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == model.predict(rows).tolist()


def test_v2_one_tensor_per_feature_predicts_the_same(server, http, model, model_dir, rows):
    body = v2_request(rows, features_of(model_dir))
    # An INT64 tensor for an integer feature is as good as FP64.
    year = next(t for t in body["inputs"] if t["name"] == "year")
    year.update(datatype="INT64", data=[int(v) for v in rows["year"]])
    answer = post(http, server.v2_infer_url, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["id"] == body["id"] and result["model_name"] == NAME
    (output,) = result["outputs"]
    assert output["name"] == "predict" and output["datatype"] == "BYTES" and output["shape"] == [len(rows)]
    assert output["data"] == model.predict(rows).tolist()


def test_v2_one_2d_tensor_in_feature_order_predicts_the_same(server, http, model, rows):
    data = [
        [None if pd.isna(v) else (int(v) if isinstance(v, np.integer) else v) for v in row]
        for row in rows.values
    ]
    body = {
        "inputs": [{"name": "rows", "shape": [len(rows), len(FEATURES)], "datatype": "BYTES", "data": data}]
    }
    answer = post(http, server.v2_infer_url, body)
    assert answer.status_code == 200, answer.text
    assert v2_predictions(answer.json()) == model.predict(rows).tolist()


def test_probabilities_on_request_in_both_protocols(server, http, model, model_dir, rows):
    expected = model.predict_proba(rows)
    classes = model.classes_.tolist()

    v1 = post(http, server.v1_predict_url, v1_request(rows, FEATURES, return_probabilities=True)).json()
    assert v1["predictions"] == model.predict(rows).tolist()
    assert v1["classes"] == classes
    np.testing.assert_allclose(v1["probabilities"], expected, rtol=1e-12)

    body = v2_request(rows, features_of(model_dir))
    body["parameters"] = {"return_probabilities": True}
    v2 = post(http, server.v2_infer_url, body).json()
    proba = next(o for o in v2["outputs"] if o["name"] == "predict_proba")
    assert proba["shape"] == [len(rows), len(classes)]
    assert json.loads(proba["parameters"]["classes"]) == classes
    np.testing.assert_allclose(np.reshape(proba["data"], proba["shape"]), expected, rtol=1e-12)

    # Asking for the output by name works too, and returns only what was asked for.
    body = v2_request(rows, features_of(model_dir))
    body["outputs"] = [{"name": "predict_proba"}]
    only = post(http, server.v2_infer_url, body).json()
    assert [o["name"] for o in only["outputs"]] == ["predict_proba"]


def test_null_and_v2_nan_are_missing_values_the_pipeline_imputes(server, http, model, model_dir, rows):
    row = rows.iloc[[0]].copy()
    row.loc[:, ["bill_length_mm", "sex"]] = [np.nan, np.nan]
    body = v1_request(row, FEATURES)
    assert body["instances"][0]["bill_length_mm"] is None and body["instances"][0]["sex"] is None
    v1 = post(http, server.v1_predict_url, body)
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == model.predict(row).tolist()
    # V2's JSON parser reads NaN: a missing number, like null.
    text = json.dumps(v2_request(row, features_of(model_dir))).replace(
        '"bill_length_mm", "shape": [1], "datatype": "FP64", "data": [null]',
        '"bill_length_mm", "shape": [1], "datatype": "FP64", "data": [NaN]',
    )
    assert "[NaN]" in text
    v2 = post(http, server.v2_infer_url, data=text, headers={"Content-Type": "application/json"})
    assert v2.status_code == 200, v2.text
    assert v2_predictions(v2.json()) == model.predict(row).tolist()


def test_health_readiness_and_model_routes(server, http, model_dir):
    def get(path: str) -> dict:
        answer = http.get(server.base_url + path, timeout=10)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    assert get("/") == {"status": "alive"}
    assert get("/v2/health/live") == {"live": True}
    assert get("/v2/health/ready") == {"ready": True}
    assert get("/v1/models") == {"models": [NAME]}
    assert get(f"/v1/models/{NAME}") == {"name": NAME, "ready": True}
    assert get(f"/v2/models/{NAME}/ready") == {"name": NAME, "ready": True}
    metadata = get(f"/v2/models/{NAME}")
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    types = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert types["island"] == "BYTES" and types["bill_length_mm"] == "FP64"
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    missing = http.get(f"{server.base_url}/v1/models/other", timeout=10)
    assert missing.status_code == 404


def test_the_server_listens_on_loopback_only(server):
    port = int(server.base_url.rsplit(":", 1)[1])
    listening = [
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == "LISTEN" and c.laddr.port == port
    ]
    assert listening == ["127.0.0.1"]


# --- malformed requests: 4xx with a message, never a 500, and the server keeps answering ------------


def _v2_input(name: str, datatype: str, data: list, shape: list | None = None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def _v2_body(rows: pd.DataFrame, **replace) -> dict:
    body = v2_request(
        rows, [InputFeature(n, "categorical" if n in ("island", "sex") else "numeric") for n in FEATURES]
    )
    body["inputs"] = [
        replace.get(t["name"], t) for t in body["inputs"] if replace.get(t["name"], t) is not None
    ]
    return body


def _row(**changes) -> dict:
    row = {
        "island": "Biscoe",
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181.0,
        "body_mass_g": 3750.0,
        "sex": "male",
        "year": 2007,
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v != "__drop__"}


MALFORMED_V1 = {
    "wrong feature count": (
        {"instances": [["Biscoe", 39.1, 18.7, 181.0, 3750.0]]},
        400,
        "row 0 has 5 value(s); expected 7 in this order: island, bill_length_mm, bill_depth_mm",
    ),
    "unknown feature": (
        {"instances": [_row(beak_colour="red")]},
        400,
        "row 0 has unknown feature 'beak_colour'",
    ),
    "the label column": (
        {"instances": [_row(species="Adelie")]},
        400,
        "'species' (the label column: leave it out)",
    ),
    "missing feature": ({"instances": [_row(sex="__drop__")]}, 400, "row 0 lacks feature(s) 'sex'"),
    "string in a numeric column": (
        {"instances": [_row(), _row(bill_length_mm="long")]},
        400,
        "row 1, feature 'bill_length_mm' (numeric): expected a number or null, got the string 'long'",
    ),
    "number in a categorical column": (
        {"instances": [_row(island=3)]},
        400,
        "row 0, feature 'island' (categorical): expected a string or null, got 3 (int)",
    ),
    "boolean in a numeric column": (
        {"instances": [_row(year=True)]},
        400,
        "row 0, feature 'year' (numeric): expected a number or null, got the boolean True",
    ),
    "empty batch": ({"instances": []}, 400, '"instances" is empty'),
    "instances not a list": ({"instances": {"island": "Biscoe"}}, 400, 'Expected "instances" to be a list'),
    "no instances": ({"inputs": [_row()]}, 400, "the request has no \"instances\" (got 'inputs')"),
    "a row that is neither object nor list": ({"instances": ["Biscoe"]}, 400, "row 0 is str 'Biscoe'"),
    "unknown parameter": (
        {"instances": [_row()], "parameters": {"return_probability": True}},
        400,
        "unknown parameter(s) 'return_probability'",
    ),
    "probabilities flag not a boolean": (
        {"instances": [_row()], "parameters": {"return_probabilities": "yes"}},
        400,
        "return_probabilities must be true or false",
    ),
    "a JSON list instead of an object": ([_row()], 400, "the request body must be a JSON object"),
}


@pytest.mark.parametrize("case", list(MALFORMED_V1))
def test_malformed_v1_requests_get_400_naming_the_problem(server, http, rows, case):
    body, status, message = MALFORMED_V1[case]
    answer = post(http, server.v1_predict_url, body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert_still_serving(http, server, rows)


@pytest.mark.parametrize(
    ("case", "text", "message"),
    [
        ("NaN is not JSON", '{"instances": [{"bill_length_mm": NaN}]}', "Unrecognized request format"),
        ("a number too large for a double", '{"instances": [[1e400]]}', "number is infinity"),
        ("invalid JSON", '{"instances": [', "Unrecognized request format"),
    ],
)
def test_v1_bodies_that_are_not_json_get_400(server, http, rows, case, text, message):
    answer = post(http, server.v1_predict_url, data=text, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    assert_still_serving(http, server, rows)


def test_v1_body_is_read_as_json_whatever_its_content_type(server, http, model, rows):
    body = json.dumps(v1_request(rows, FEATURES)).encode()
    answer = post(
        http, server.v1_predict_url, data=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == model.predict(rows).tolist()
    answer = post(http, server.v1_predict_url, data=b"island=Biscoe", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 400, answer.text
    assert "the request body is not JSON" in answer.json()["error"]


def test_malformed_v2_requests_get_4xx_naming_the_problem(server, http, rows):
    one = rows.head(2)
    cases = [
        (
            _v2_body(one, bill_length_mm=_v2_input("bill_length_mm", "BYTES", ["39.1", "40"])),
            400,
            "input 'bill_length_mm' has datatype BYTES, but feature 'bill_length_mm' is numeric: send it as FP64",
        ),
        (
            _v2_body(one, bill_length_mm=_v2_input("bill_length_mm", "FP64", [39.1, "long"])),
            400,
            "row 1, feature 'bill_length_mm' (numeric): expected a number or null, got the string 'long'",
        ),
        (
            _v2_body(one, sex=None),
            400,
            "no input for feature(s) 'sex': send one tensor per feature (island, bill_length_mm",
        ),
        (
            _v2_body(one, year=_v2_input("year", "INT64", [2007])),
            400,
            "input 'year' has 1 row(s) but the inputs before it have 2",
        ),
        (
            _v2_body(one, year=_v2_input("year", "INT64", [2007, 2008], shape=[3])),
            400,
            "input 'year' has shape [3] but 2 value(s)",
        ),
        (
            {"inputs": [_v2_input("rows", "BYTES", ["Biscoe", 39.1, 18.7], shape=[1, 3])]},
            400,
            "send a 2-D tensor of shape [n, 7]",
        ),
        (
            {
                "inputs": [
                    _v2_input(n, "FP64" if n not in ("island", "sex") else "BYTES", []) for n in FEATURES
                ]
            },
            400,
            "the inputs have no rows",
        ),
        ({**_v2_body(one), "outputs": [{"name": "explanation"}]}, 400, "unknown output(s) 'explanation'"),
        ({"inputs": []}, 400, 'the request has no "inputs"'),
    ]
    for body, status, message in cases:
        answer = post(http, server.v2_infer_url, body)
        assert answer.status_code == status, (message, answer.text)
        assert message in answer.json()["error"], answer.text
    assert_still_serving(http, server, rows)


def test_v2_infinity_and_invalid_json_get_4xx(server, http, rows, model_dir):
    text = json.dumps(v2_request(rows.head(1), features_of(model_dir))).replace("39.1", "Infinity")
    assert "Infinity" in text
    answer = post(http, server.v2_infer_url, data=text, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "row 0, feature 'bill_length_mm' (numeric): inf is infinite" in answer.json()["error"]
    broken = post(
        http, server.v2_infer_url, data='{"inputs": [', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422, broken.text
    assert "JSON decode error" in broken.text
    assert_still_serving(http, server, rows)


@pytest.mark.parametrize("route", ["v1", "v2"])
def test_a_10_mb_body_gets_413_before_it_is_read(server, http, rows, route):
    url = server.v1_predict_url if route == "v1" else server.v2_infer_url
    row = _row()
    padding = json.dumps({"instances": [row] * (TEN_MB // len(json.dumps(row)) + 1)})
    assert len(padding) > TEN_MB
    answer = post(http, url, data=padding, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text[:300]
    assert "exceeds this server's limit of 4,194,304 bytes" in answer.json()["error"]
    assert_still_serving(http, server, rows)


def test_a_10_mb_chunked_body_without_length_gets_413(server, http, rows):
    chunk = b"[" + b"0," * (512 * 1024)

    def body():  # a generator: requests sends it chunked, with no Content-Length
        yield b'{"instances": '
        for _ in range(TEN_MB // len(chunk) + 1):
            yield chunk

    answer = http.post(
        server.v1_predict_url, data=body(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 413, answer.text[:300]
    assert_still_serving(http, server, rows)


# --- the same checks in-process: types the penguins do not have, and regression --------------------


def test_rows_to_frame_builds_boolean_and_datetime_columns_and_names_bad_values():
    features = [
        InputFeature("member", "boolean"),
        InputFeature("joined", "datetime"),
        InputFeature("note", "text"),
    ]
    frame = rows_to_frame(
        [
            {"member": True, "joined": "2024-05-01T10:00:00", "note": "likes fish"},
            {"member": None, "joined": None, "note": None},
        ],
        features,
    )
    assert str(frame["member"].dtype) == "boolean" and frame["member"].isna().tolist() == [False, True]
    assert pd.api.types.is_datetime64_any_dtype(frame["joined"])
    assert frame["joined"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00") and pd.isna(frame["joined"].iloc[1])
    with pytest.raises(InvalidInput) as raised:
        rows_to_frame([{"member": "yes", "joined": "the day after", "note": 5}], features)
    message = str(raised.value)
    assert "row 0, feature 'member' (boolean): expected true, false or null, got 'yes'" in message
    assert "row 0, feature 'joined' (datetime): 'the day after' is not an ISO 8601 date or time" in message
    assert "row 0, feature 'note' (text): expected a string or null, got 5 (int)" in message


def test_many_problems_are_listed_up_to_a_few_then_counted():
    features = [InputFeature("x", "numeric")]
    with pytest.raises(InvalidInput) as raised:
        rows_to_frame([{"x": "a"}] * 8, features)
    assert str(raised.value).count("expected a number") == 5
    assert str(raised.value).endswith("and 3 more problem(s)")


@pytest.fixture(scope="module")
def regressor_dir(tmp_path_factory) -> Path:
    return export_penguins_model(
        tmp_path_factory.mktemp("regressor") / "model",
        "body_mass_g",
        "regression",
        "linear_regression",
        {"linear_regression": {"alpha": [1.0]}},
    )


def test_regression_predictions_are_floats_and_have_no_probabilities(regressor_dir):
    served = SklearnPipelineModel("mass", str(regressor_dir))
    served.load()
    features = [f.name for f in served.features]
    rows = load_penguins()[features].head(5)
    answer = served.predict(v1_request(rows, features))
    expected = served.model.predict(rows).tolist()
    assert answer == {"predictions": expected} and all(isinstance(v, float) for v in expected)
    assert [o["name"] for o in served.get_output_types()] == ["predict"]
    with pytest.raises(InvalidInput, match="gives no class probabilities: leave out return_probabilities"):
        served.predict(v1_request(rows, features, return_probabilities=True))
    v2 = served.predict(
        InferRequest.from_inference_request(InferenceRequest(**v2_request(rows, served.features)), "mass")
    )
    (output,) = v2.outputs
    assert (output.name, output.datatype, output.shape) == ("predict", "FP64", [5])
    assert output.data.tolist() == expected


def test_v2_binary_tensors_are_read_like_json_ones(model_dir, model, rows):
    # The binary tensor extension (and gRPC's raw contents) deliver bytes instead of JSON lists.
    served = SklearnPipelineModel(NAME, str(model_dir))
    served.load()
    inputs = []
    for feature in served.features:
        if feature.logical_type == "numeric":
            tensor = InferInput(feature.name, [len(rows)], "FP64")
            tensor.set_data_from_numpy(rows[feature.name].to_numpy(dtype="float64"), binary_data=True)
        else:
            values = np.array([b"" if pd.isna(v) else v.encode() for v in rows[feature.name]], dtype=object)
            tensor = InferInput(feature.name, [len(rows)], "BYTES")
            tensor.set_data_from_numpy(values, binary_data=True)
        assert tensor._raw_data is not None
        inputs.append(tensor)
    response = served.predict(InferRequest(NAME, inputs, raw_inputs=[t._raw_data for t in inputs]))
    # An empty string is a category the model never saw (not a missing value): the encoder ignores it.
    expected = model.predict(rows.fillna({"island": "", "sex": ""})).tolist()
    assert response.outputs[0].data.tolist() == expected


# --- loading: gs://, sha256, scikit-learn version, missing files ------------------------------------


def test_loads_from_gcs_through_the_emulator_and_serves_it(model_dir, gcs_bucket, model, rows, tmp_path):
    uri = f"{gcs_bucket}/models/penguins/v1"
    storage.upload_dir(model_dir, uri)
    loaded, card = load_model_dir(uri, cache_dir=tmp_path / "cache")
    assert loaded.predict(rows).tolist() == model.predict(rows).tolist()
    assert card.sha256 == json.loads((model_dir / METADATA_FILE).read_text())["sha256"]
    assert list((tmp_path / "cache").iterdir()) == []  # the download is removed once loaded

    with serve_in_background(uri, NAME) as handle, local_session() as http:
        answer = post(http, handle.v1_predict_url, v1_request(rows, FEATURES))
        assert answer.status_code == 200 and answer.json()["predictions"] == model.predict(rows).tolist()
        pid, log_dir = handle.pid, handle.log_path.parent
    # Nothing is left running or on disk.
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not log_dir.exists()


def test_a_changed_model_file_is_refused_at_load(model_dir, tmp_path, gcs_bucket):
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    with open(tampered / "model.joblib", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DigestMismatch) as raised:
        load_model_dir(str(tampered))
    message = str(raised.value)
    assert f"{tampered}/model.joblib has sha256" in message and "refusing to serve it" in message

    # On gs:// the digest recorded in metadata.json is checked as the file downloads.
    uri = f"{gcs_bucket}/tampered"
    storage.upload_dir(tampered, uri)
    with pytest.raises(DigestMismatch, match=f"{uri}/model.joblib: refusing to serve it"):
        load_model_dir(uri, cache_dir=tmp_path / "cache")


def test_a_model_saved_with_another_scikit_learn_is_refused(model_dir, tmp_path):
    import sklearn

    skewed = tmp_path / "skewed"
    shutil.copytree(model_dir, skewed)
    metadata = json.loads((skewed / METADATA_FILE).read_text())
    metadata["versions"]["scikit-learn"] = "1.5.1"
    (skewed / METADATA_FILE).write_text(json.dumps(metadata))
    # The sha256 covers model.joblib only, so it still matches: the version check is what refuses.
    with pytest.raises(LibraryVersionMismatch) as raised:
        load_model_dir(str(skewed))
    assert f"saved with scikit-learn 1.5.1, but this server runs scikit-learn {sklearn.__version__}" in str(
        raised.value
    )


def test_missing_files_and_directories_are_named(model_dir, tmp_path):
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    shutil.copy(model_dir / METADATA_FILE, no_model / METADATA_FILE)
    with pytest.raises(ModelLoadError, match=f"{no_model} has no model.joblib"):
        load_model_dir(str(no_model))
    no_metadata = tmp_path / "no-metadata"
    no_metadata.mkdir()
    shutil.copy(model_dir / "model.joblib", no_metadata / "model.joblib")
    with pytest.raises(ModelLoadError, match=f"{no_metadata} has no metadata.json"):
        load_model_dir(f"file://{no_metadata}")
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model_dir(str(tmp_path / "absent"))
    with pytest.raises(ParameterError, match="parameter model_uri is empty"):
        load_model_dir("")


def test_missing_gcs_model_is_named(gcs_bucket, tmp_path, no_external_network):
    with pytest.raises(ModelLoadError, match=f"{gcs_bucket}/nothing is not a model directory"):
        load_model_dir(f"{gcs_bucket}/nothing", cache_dir=tmp_path)


def test_a_server_that_cannot_load_fails_to_start_with_its_log(model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.joblib").unlink()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(ServerStartError) as raised, serve_in_background(str(broken), NAME):
        pytest.fail("the server must not start")
    message = str(raised.value)
    assert "exited with code 1 before it was ready" in message
    assert f"{broken} has no model.joblib" in message  # the server's own words, from its log
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_a_port_taken_before_the_server_binds_it_is_replaced(model_dir, model, rows, monkeypatch):
    from mlstages.components.common import emulator

    real_free_port = emulator.free_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(emulator, "free_port", lambda: next(ports, None) or real_free_port())
        with (
            tempfile.TemporaryDirectory() as logs,
            serve_in_background(str(model_dir), NAME, log_dir=logs) as handle,
        ):
            assert handle.base_url != f"http://127.0.0.1:{taken.getsockname()[1]}"
            first_log = Path(logs, f"{NAME}-{taken.getsockname()[1]}.log").read_text()
            port = taken.getsockname()[1]
            assert f"port {port} on 127.0.0.1 is already in use by another process" in first_log
            assert "pass --http_port with a free port" in first_log
            # Refused before the model was loaded; the server that started loaded it.
            assert f"model {NAME} loaded from" not in first_log
            assert f"model {NAME} loaded from" in handle.log_tail()
            with local_session() as http:
                answer = post(http, handle.v1_predict_url, v1_request(rows, FEATURES))
            assert answer.json()["predictions"] == model.predict(rows).tolist()


# --- serve() and the command line --------------------------------------------------------------------


def test_serve_refuses_bad_parameters_before_loading(tmp_path):
    absent = str(tmp_path / "absent")
    with pytest.raises(ParameterError, match="KServe's gRPC server listens on every interface"):
        serve(absent, NAME, grpc_port=9000)
    with pytest.raises(ParameterError, match="parameter http_port=0"):
        serve(absent, NAME, http_port=0)
    with pytest.raises(ParameterError, match="parameter model_name='Penguins!'"):
        serve(absent, "Penguins!")
    with pytest.raises(ParameterError, match="parameter workers=0"):
        serve(absent, NAME, workers=0)


@contextmanager
def taken_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port another process (here, this test) listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((host, 0))
        holder.listen()
        yield holder.getsockname()[1]


LOADED = f"model {NAME} loaded from"  # the server's line once the model is loaded (model.py)


def test_the_port_check_binds_the_address_the_server_binds():
    with taken_port() as port:
        with pytest.raises(
            PortInUse,
            match=f"^port {port} on 127.0.0.1 is already in use by another process; pass --port with a free port$",
        ):
            check_can_listen("127.0.0.1", port, port_option="--port")
        # Every interface includes loopback: the server could not bind it either.
        with pytest.raises(PortInUse, match=f"port {port} on 0.0.0.0 is already in use"):
            check_can_listen("0.0.0.0", port)
    # A free port passes and is let go: the server binds it next.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_can_listen("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
    # 192.0.2.1 is reserved for documentation (RFC 5737): no machine's own address.
    with pytest.raises(
        CannotListen, match="cannot listen on 192.0.2.1 port .*pass --host with an address of this machine"
    ):
        check_can_listen("192.0.2.1", port, host_option="--host")


def test_a_port_taken_after_the_check_gives_the_same_line_not_uvicorns_exit(model_dir):
    """The port is taken when KServe's server binds it (after serve() checked it, another process
    may have taken it while the model loaded): serve()'s last step, run on a loaded model."""
    script = (
        "import sys\n"
        "from mlstages.components.common.errors import MlstagesError\n"
        "from mlstages.components.serving import app\n"
        "from mlstages.components.serving.model import SklearnPipelineModel\n"
        f"model = SklearnPipelineModel({NAME!r}, sys.argv[1])\n"
        "model.load()\n"
        "try:\n"
        "    app._listen(model, host='127.0.0.1', http_port=int(sys.argv[2]), grpc_port=None, workers=1,\n"
        "                max_body_bytes=4096, request_log=True, port_option='--port', host_option='--host')\n"
        "except MlstagesError as exc:\n"
        "    print(f'{type(exc).__name__}: {exc}', file=sys.stderr)\n"
        "    sys.exit(2)\n"
    )
    with taken_port() as port:
        done = subprocess.run(
            [sys.executable, "-c", script, str(model_dir), str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"PortInUse: port {port} on 127.0.0.1 is already in use by another process; pass --port with a free port"
    )
    assert "Errno" not in done.stderr  # uvicorn's own line is kept out of the log


def _mlstages_serve(model_dir: Path, port: int, workdir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlstages.tooling.cli",
        "serve",
        str(model_dir),
        "--port",
        str(port),
        "--workdir",
        str(workdir),
    ]


def test_mlstages_serve_refuses_a_taken_port_in_one_line_before_loading_the_model(model_dir, tmp_path):
    with taken_port() as port:
        done = subprocess.run(
            _mlstages_serve(model_dir, port, tmp_path / "work"), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2
        assert done.stdout == ""  # no "Serving on", no embedded store started
        assert done.stderr.splitlines() == [
            f"mlstages: error: port {port} on 127.0.0.1 is already in use by another process; "
            "pass --port with a free port"
        ]
        assert not (tmp_path / "work" / "gcs").exists()
    # The same command on the port, once free, loads the model and says so: the line above would
    # have been there had the model been loaded.
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _mlstages_serve(model_dir, port, tmp_path / "work"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while LOADED not in log_path.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert LOADED in log_path.read_text(), log_path.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_command_line_follows_kserve_conventions(tmp_path):
    args = parse_args(["--model_dir=/mnt/models", "--model_name=penguins", "--http_port=8080"])
    assert (args.model_name, args.http_port, args.grpc_port) == ("penguins", 8080, None)
    assert resolve_model_uri(args, {}) == "/mnt/models"
    # Without KServe's storage initializer the model is read from STORAGE_URI itself.
    assert (
        resolve_model_uri(args, {"STORAGE_URI": "gs://b/models/penguins/v1"}) == "gs://b/models/penguins/v1"
    )
    present = parse_args([f"--model_dir={tmp_path}"])
    assert resolve_model_uri(present, {"STORAGE_URI": "gs://b/m"}) == str(tmp_path)
    assert resolve_model_uri(parse_args([]), {"STORAGE_URI": "gs://b/m"}) == "gs://b/m"
    assert resolve_model_uri(parse_args([]), {}) == "/mnt/models"
    assert (
        resolve_model_uri(parse_args(["--model_uri=gs://b/x", "--model_dir=/mnt/models"]), {}) == "gs://b/x"
    )
    assert parse_args(["--host=0.0.0.0"]).host == "0.0.0.0"
    with pytest.raises(SystemExit):
        parse_args(["--model_nme=typo"])


def test_json_helpers_send_missing_values_as_null():
    frame = pd.DataFrame({"a": [1.5, math.nan], "b": ["x", None], "c": [np.int64(3), np.int64(4)]})
    body = v1_request(frame, ["a", "b", "c"])
    assert body == {"instances": [{"a": 1.5, "b": "x", "c": 3}, {"a": None, "b": None, "c": 4}]}
    assert isinstance(body["instances"][0]["c"], int)
    assert json.dumps(body, allow_nan=False)


# --- strict V2 datatypes and shapes (issue 13 item 6) --------------------------------------------


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            _v2_input("year", "INT64", [2008.5, 2007]),
            "input 'year' is INT64 but its value 2008.5 at position 0 is not a whole number",
        ),
        (_v2_input("year", "INT64", [True, 2007]), "its value True at position 0 is not a number"),
        (_v2_input("year", "INT8", [2007, 2008]), "is outside INT8's range [-128, 127]"),
        (_v2_input("year", "UINT16", [-1, 2008]), "is outside UINT16's range [0, 65535]"),
        (_v2_input("year", "UINT16", ["2007", 2008]), "its value '2007' at position 0 is not a number"),
    ],
)
def test_v2_values_must_fit_their_declared_datatype(server, http, rows, tensor, message):
    answer = post(http, server.v2_infer_url, _v2_body(rows.head(2), year=tensor))
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_v2_whole_numbers_as_json_floats_and_nulls_fit_an_integer_tensor(server, http, model, rows):
    two = rows.head(2)
    body = _v2_body(two, year=_v2_input("year", "INT64", [float(v) for v in two["year"]]))
    answer = post(http, server.v2_infer_url, body)
    assert answer.status_code == 200, answer.text
    assert v2_predictions(answer.json()) == list(model.predict(two[FEATURES]))


@pytest.mark.parametrize("shape", [["2"], [2.0]])
def test_a_v2_shape_must_be_json_integers(server, http, rows, shape):
    body = _v2_body(rows.head(2), year=_v2_input("year", "INT64", [2007, 2008], shape=shape))
    answer = post(http, server.v2_infer_url, body)
    assert answer.status_code == 422, answer.text
    assert ["body", "InferenceRequest", "inputs", 6, "shape", 0] in [
        d["loc"] for d in answer.json()["detail"]
    ]


# --- a bounded server log (issue 13 item 5) -------------------------------------------------------


def _bad_requests(http: requests.Session, server, rows: pd.DataFrame, count: int) -> None:
    one = rows.head(1)
    for i in range(count):
        if i % 3 == 0:
            answer = post(http, server.v1_predict_url, {"instances": [[1, 2]]})
        elif i % 3 == 1:
            answer = post(http, server.v2_infer_url, _v2_body(one, year=_v2_input("year", "INT64", [2008.5])))
        else:
            answer = http.get(f"{server.base_url}/v1/models/no-such-model", timeout=10)
        assert 400 <= answer.status_code < 500, answer.text


def test_each_request_logs_one_line_and_a_client_error_no_traceback(model_dir, http, rows, tmp_path):
    with serve_in_background(str(model_dir), NAME, log_dir=tmp_path) as handle:
        before = handle.log_path.read_text()
        _bad_requests(http, handle, rows, 30)
        post(http, handle.v1_predict_url, v1_request(rows.head(1), FEATURES))
        lines = handle.log_path.read_text()[len(before) :].splitlines()
    assert len(lines) == 31, "\n".join(lines)
    assert not any("Traceback" in line or line.startswith(" ") for line in lines)
    assert sum(" 400 " in line for line in lines) == 20 and sum(" 404 " in line for line in lines) == 10
    v1 = next(line for line in lines if "POST /v1/models/" in line and " 400 " in line)
    assert "row 0 has 2 value(s); expected 7" in v1
    assert "is not a whole number" in next(line for line in lines if "/infer 400" in line)
    assert "POST /v1/models/penguins:predict 200" in lines[-1]


def test_with_the_request_log_off_bad_clients_write_nothing(model_dir, http, rows, tmp_path):
    with serve_in_background(str(model_dir), NAME, log_dir=tmp_path, request_log=False) as handle:
        before = handle.log_path.read_text()
        _bad_requests(http, handle, rows, 30)
        assert_still_serving(http, handle, rows)
        written = handle.log_path.read_text()[len(before) :]
    assert written == ""


def test_the_request_log_setting_is_checked(monkeypatch, capsys):
    assert parse_args(["--request_log", "off"]).request_log == "off"
    monkeypatch.setenv("MLSTAGES_REQUEST_LOG", "quiet")
    with pytest.raises(SystemExit):
        parse_args([])
    assert "$MLSTAGES_REQUEST_LOG='quiet' must be 'on' or 'off'" in capsys.readouterr().err
