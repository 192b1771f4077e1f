"""Property-based requests against a real model server (issue 13): whatever a client sends to the
V1 and V2 predict routes, the answer is a 2xx or a 4xx naming the problem, never a 5xx, and the
server goes on serving. hypothesis generates the bodies: valid requests with values of every JSON
type swapped in, wrong datatypes and shapes, missing and extra names, and arbitrary JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from serving_helpers import export_penguins_model

from mlstages.components.serving.process import local_session, serve_in_background

NAME = "penguins"
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
V2_DATATYPES = [
    "BOOL",
    "INT8",
    "INT32",
    "INT64",
    "UINT8",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
    "STRING",
    "int64",
    "",
]
# Enough bodies to reach every decoder branch, few enough for the fast suite (about 10 s).
EXAMPLES = 150

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
feature_names = st.sampled_from(FEATURES) | st.text(max_size=12)
# Plausible values per feature (a valid row), each sometimes replaced by any JSON value: the bodies
# that reach the decoders' per-value checks, not only their first refusal.
PLAUSIBLE = {
    "island": st.sampled_from(["Biscoe", "Dream", "Torgersen", "Atlantis"]),
    "bill_length_mm": st.floats(30, 60),
    "bill_depth_mm": st.floats(13, 22),
    "flipper_length_mm": st.floats(170, 235),
    "body_mass_g": st.integers(2500, 6500),
    "sex": st.sampled_from(["male", "female"]) | st.none(),
    "year": st.integers(2007, 2009),
}
V2_TYPES = {"island": "BYTES", "sex": "BYTES", "year": "INT64", "body_mass_g": "FP64"}
near_valid_rows = st.fixed_dictionaries({name: value | json_values for name, value in PLAUSIBLE.items()})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = export_penguins_model(
        tmp_path_factory.mktemp("fuzz") / "model",
        "species",
        "classification",
        "logistic_regression",
        {"logistic_regression": {"C": [1.0]}},
    )
    with serve_in_background(str(model_dir), NAME) as handle, local_session() as session:
        yield handle, session


v1_rows = st.one_of(
    st.dictionaries(feature_names, json_values, max_size=9),
    st.lists(json_values, max_size=9),
    json_scalars,
)
v1_bodies = st.one_of(
    st.fixed_dictionaries({"instances": st.lists(near_valid_rows, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"instances": st.lists(v1_rows, max_size=4)}),
    st.fixed_dictionaries({"instances": json_values}),
    json_values,
)
v2_inputs = st.fixed_dictionaries(
    {
        "name": feature_names,
        "datatype": st.sampled_from(V2_DATATYPES) | st.text(max_size=6),
        "shape": st.lists(st.integers(min_value=-2, max_value=5) | st.text(max_size=2), max_size=3),
        "data": st.lists(json_values, max_size=6) | json_values,
    },
    optional={"parameters": st.dictionaries(st.text(max_size=8), json_scalars, max_size=3)},
)
near_valid_v2 = near_valid_rows.map(
    lambda row: {
        "inputs": [
            {"name": name, "datatype": V2_TYPES.get(name, "FP64"), "shape": [1], "data": [value]}
            for name, value in row.items()
        ]
    }
)
v2_bodies = st.one_of(
    near_valid_v2,
    st.fixed_dictionaries({"inputs": st.lists(v2_inputs, max_size=8)}),
    st.fixed_dictionaries({"inputs": json_values}),
    json_values,
)


def _post(server, url: str, body) -> int:
    _, session = server
    response = session.post(
        url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code < 500, (body, response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.text.strip(), body  # a 4xx names the problem
    return response.status_code


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=v1_bodies)
def test_v1_never_answers_5xx(server, body):
    event(f"HTTP {_post(server, server[0].v1_predict_url, body)}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=v2_bodies)
def test_v2_never_answers_5xx(server, body):
    event(f"HTTP {_post(server, server[0].v2_infer_url, body)}")


def test_the_server_still_serves_after_the_fuzzing(server):
    handle, _ = server
    row = {
        "island": "Biscoe",
        "bill_length_mm": 45.0,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 210.0,
        "body_mass_g": 4800.0,
        "sex": "male",
        "year": 2008,
    }
    assert _post(server, handle.v1_predict_url, {"instances": [row]}) == 200
