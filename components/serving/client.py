"""The one serving client: rows to V1/V2 requests, sent, and the answers compared with the model.

Infra validation, deploy's smoke test, the benchmarks and the tests all build their requests here,
from the model card's input features, with the one type rule the server decodes them by (numeric
features as FP64, boolean as BOOL, the rest as BYTES strings; missing and non-finite values as
null), read predictions out of the answers the same way, and compare them with the model's own
predictions with one tolerance.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import (
    BOOLEAN,
    NUMERIC,
)
from mlstages.components.common.model_card import (
    InputFeature,
)
from mlstages.components.serving.protocol import PREDICT_OUTPUT, PROBA_OUTPUT, RETURN_PROBABILITIES

# Served regression predictions must match the model's own to this relative tolerance (JSON
# round-trips floats exactly; the margin covers a server on another BLAS).
REGRESSION_RTOL = 1e-6
MAX_BODY_IN_MESSAGE = 500


def json_value(value: Any) -> Any:
    """``value`` as JSON carries it: numpy scalars as Python ones, dates as ISO 8601, and missing or
    non-finite numbers as null (JSON has no NaN or infinity)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64, dt.datetime, dt.date)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _feature_names(features: Sequence[InputFeature] | Sequence[str]) -> list[str]:
    return [f.name if isinstance(f, InputFeature) else str(f) for f in features]


def v1_request(
    frame: pd.DataFrame,
    features: Sequence[InputFeature] | Sequence[str],
    *,
    return_probabilities: bool = False,
) -> dict[str, Any]:
    """The V1 request body for ``frame``'s rows: one object per row, keyed by feature name."""
    names = _feature_names(features)
    instances = [
        {name: json_value(value) for name, value in zip(names, row, strict=True)}
        for row in frame[names].itertuples(index=False, name=None)
    ]
    body: dict[str, Any] = {"instances": instances}
    if return_probabilities:
        body["parameters"] = {RETURN_PROBABILITIES: True}
    return body


def v2_request(
    frame: pd.DataFrame, features: Sequence[InputFeature], *, return_probabilities: bool = False
) -> dict[str, Any]:
    """The V2 (Open Inference Protocol) request body for ``frame``'s rows: one tensor per feature."""
    inputs = []
    for feature in features:
        data = [json_value(v) for v in frame[feature.name].tolist()]
        datatype = {NUMERIC: "FP64", BOOLEAN: "BOOL"}.get(feature.logical_type, "BYTES")
        inputs.append({"name": feature.name, "shape": [len(data)], "datatype": datatype, "data": data})
    body: dict[str, Any] = {"id": uuid.uuid4().hex, "inputs": inputs}
    if return_probabilities:
        body["outputs"] = [{"name": PREDICT_OUTPUT}, {"name": PROBA_OUTPUT}]
    return body


def predict_url(base_url: str, name: str, protocol: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/v1/models/{name}:predict" if protocol == "v1" else f"{base}/v2/models/{name}/infer"


def request_body(
    frame: pd.DataFrame,
    features: Sequence[InputFeature],
    protocol: str,
    *,
    return_probabilities: bool = False,
) -> dict[str, Any]:
    if protocol == "v1":
        return v1_request(frame, features, return_probabilities=return_probabilities)
    return v2_request(frame, features, return_probabilities=return_probabilities)


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Reply:
    """What one POST brought back: the parsed JSON, or why there is none."""

    url: str
    status_code: int | None
    seconds: float
    answer: Any = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def post(session: Any, url: str, body: Mapping[str, Any], timeout: float) -> Reply:
    """POST ``body`` as JSON; every failure (connection, non-200, not JSON) becomes ``problem``."""
    import requests

    started = time.perf_counter()
    try:
        response = session.post(
            url,
            data=json.dumps(body, allow_nan=False),
            timeout=timeout,
            headers={"Content-Type": "application/json"},
        )
    except requests.RequestException as exc:
        return Reply(url, None, time.perf_counter() - started, problem=f"POST {url} failed: {exc}")
    seconds = time.perf_counter() - started
    text = response.text[:MAX_BODY_IN_MESSAGE]
    if response.status_code != 200:
        return Reply(
            url,
            response.status_code,
            seconds,
            problem=f"POST {url} answered HTTP {response.status_code}: {text}",
        )
    try:
        return Reply(url, 200, seconds, answer=response.json())
    except ValueError:
        return Reply(
            url, 200, seconds, problem=f"POST {url} answered HTTP 200 with a body that is not JSON: {text}"
        )


def v2_output(answer: Any, name: str) -> list[Any]:
    """The data of the V2 output tensor ``name``; KServe's stock runtime names its one output
    "output-0", which stands for ``predict``."""
    outputs = answer.get("outputs") if isinstance(answer, Mapping) else None
    if isinstance(outputs, list):
        for output in outputs:
            if (
                isinstance(output, Mapping)
                and output.get("name") == name
                and isinstance(output.get("data"), list)
            ):
                return list(output["data"])
        if name == PREDICT_OUTPUT and len(outputs) == 1 and isinstance(outputs[0], Mapping):
            data = outputs[0].get("data")
            if isinstance(data, list):
                return list(data)
    raise ValueError(f"the response has no output tensor {name!r}")


def predictions_of(answer: Any, protocol: str) -> list[Any]:
    """The predictions in a V1 or V2 answer; ValueError when there are none."""
    if protocol == "v1":
        if isinstance(answer, Mapping) and isinstance(answer.get("predictions"), list):
            return list(answer["predictions"])
        raise ValueError("the response has no 'predictions' list")
    return v2_output(answer, PREDICT_OUTPUT)


def mismatches(
    served: Sequence[Any], expected: Sequence[Any], classification: bool, first_row: int = 0
) -> list[str]:
    """Rows whose served prediction differs from the model's own: class labels exactly (value and
    type, as JSON gives them back), regression values to ``REGRESSION_RTOL``."""
    if len(served) != len(expected):
        return [f"{len(served)} prediction(s) for {len(expected)} row(s)"]
    found = []
    for i, (got, want) in enumerate(zip(served, expected, strict=True), start=first_row):
        want = json_value(want)
        if classification:
            same = got == want and type(got) is type(want)
        else:
            same = (
                isinstance(got, (int, float))
                and isinstance(want, (int, float))
                and math.isclose(got, want, rel_tol=REGRESSION_RTOL, abs_tol=1e-12)
            )
        if not same:
            found.append(f"row {i}: served {got!r}, in-process {want!r}")
    return found
