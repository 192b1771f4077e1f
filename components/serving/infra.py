"""Infra validation (as TFX's InfraValidator): serve the candidate model in the real model server and
query it before anything is deployed.

``infra_validate`` starts the same server the cluster runs (``python -m mlstages.components.serving``
through ``serve_in_background``) on 127.0.0.1, sends the sample rows over HTTP in both protocols
(V1 and V2, a batch and single rows), and compares the answers with the model loaded in this
process. It also checks the health and readiness routes, that a malformed request is refused with a
4xx (and the server keeps answering), and measures each request's latency. Every check is recorded;
``raise_for_failure()`` raises InfraValidationFailed listing each one that failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import requests

from mlstages.components.common.errors import InputDataError, MlstagesError, ParameterError
from mlstages.components.common.model_card import InputFeature
from mlstages.components.common.registry import check_model_name
from mlstages.components.common.reports import markdown_table, markdown_text
from mlstages.components.serving import client as serving_client
from mlstages.components.serving.model_dir import load_model_dir
from mlstages.components.serving.process import (
    ServerHandle,
    ServerStartError,
    local_session,
    serve_in_background,
)
from mlstages.components.serving.protocol import PROBA_OUTPUT

DEFAULT_MAX_ROWS = 100
DEFAULT_SINGLE_ROW_REQUESTS = 20
PROBABILITY_ATOL = 1e-9
DETAIL_CHARS = 1500
MAX_MISMATCHES_SHOWN = 3


class InfraValidationFailed(MlstagesError):
    """The candidate model could not be served, or the server's answers were wrong."""

    def __init__(self, message: str, failures: Sequence[InfraCheck] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


@dataclass(frozen=True)
class InfraCheck:
    """One check: what was checked, whether it passed, and what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class InfraValidationResult:
    """Every check run against the served model, and the latencies measured (milliseconds)."""

    model_uri: str
    model_name: str
    rows: int
    checks: tuple[InfraCheck, ...]
    latencies_ms: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[InfraCheck]:
        return [check for check in self.checks if not check.passed]

    def raise_for_failure(self) -> None:
        """Raise InfraValidationFailed listing every failed check; do nothing when all passed."""
        if self.passed:
            return
        failed = self.failures
        lines = "\n".join(f"- {check.name}: {check.detail}" for check in failed) or "- no check ran"
        raise InfraValidationFailed(
            f"infra validation of {self.model_uri} failed {len(failed)} of {len(self.checks)} check(s):\n{lines}",
            failed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_uri": self.model_uri,
            "model_name": self.model_name,
            "passed": self.passed,
            "rows": self.rows,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "latencies_ms": self.latencies_ms,
        }


def _short(text: str, limit: int = DETAIL_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Request count, mean, p50, p99 and max of a list of durations in seconds, as milliseconds."""
    values = np.asarray(seconds, dtype=float) * 1000.0
    return {
        "requests": int(values.size),
        "mean": float(values.mean()),
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


class _Checks:
    def __init__(self) -> None:
        self.items: list[InfraCheck] = []

    def record(self, name: str, passed: bool, detail: str) -> bool:
        self.items.append(InfraCheck(name, bool(passed), _short(detail)))
        return passed


def _sample_rows(
    sample: Any, features: Sequence[InputFeature], label_column: str | None, max_rows: int
) -> pd.DataFrame:
    frame = sample.drop(columns=[label_column]) if label_column and label_column in sample.columns else sample
    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise InputDataError(
            f"the infra validation sample lacks the model's input column(s) {', '.join(map(repr, missing))}: "
            "pass rows with every raw feature column the model was trained on"
        )
    return frame[[f.name for f in features]].head(max_rows).reset_index(drop=True)


def _expected(model: Any, rows: pd.DataFrame, checks: _Checks) -> tuple[list[Any] | None, np.ndarray | None]:
    """The in-process predictions (and class probabilities, for a classifier) of ``rows``."""
    try:
        predictions = np.asarray(model.predict(rows))
        probabilities = None
        if _is_classifier(model):
            probabilities = np.asarray(model.predict_proba(rows), dtype=float)
    except Exception as exc:  # any failure of the model itself is what this check reports
        checks.record("model predicts in-process", False, f"{type(exc).__name__}: {exc}")
        return None, None
    checks.record("model predicts in-process", True, f"{len(rows)} row(s)")
    values = predictions.astype(object).tolist() if predictions.dtype.kind in "USO" else predictions.tolist()
    return values, probabilities


def _is_classifier(model: Any) -> bool:
    return getattr(model, "classes_", None) is not None and callable(getattr(model, "predict_proba", None))


def _describe(mismatches: list[str]) -> str:
    shown = "; ".join(mismatches[:MAX_MISMATCHES_SHOWN])
    more = len(mismatches) - MAX_MISMATCHES_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


class _Client:
    """Timed requests to the served model; every failure becomes a failed check, never an exception."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self.session = session
        self.timeout = timeout

    def call(self, method: str, url: str, body: Any = None) -> tuple[requests.Response | None, float, str]:
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            return None, time.perf_counter() - started, f"{method} {url} failed: {exc}"
        return response, time.perf_counter() - started, ""

    def post(self, url: str, body: Any) -> serving_client.Reply:
        return serving_client.post(self.session, url, body, self.timeout)


def _check_routes(
    client: _Client, server: ServerHandle, features: Sequence[InputFeature], checks: _Checks
) -> None:
    name = server.name

    def route(label: str, path: str, accept: Callable[[dict], bool]) -> None:
        response, _, error = client.call("GET", server.base_url + path)
        if response is None:
            checks.record(label, False, error)
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        ok = response.status_code == 200 and isinstance(body, dict) and accept(body)
        shown = "" if ok else f" {response.text[:300]}"
        checks.record(label, ok, f"GET {path}: HTTP {response.status_code}{shown}")

    route("liveness route", "/v2/health/live", lambda b: b.get("live") is True)
    route("readiness route", "/v2/health/ready", lambda b: b.get("ready") is True)
    route("V1 model readiness", f"/v1/models/{name}", lambda b: b.get("ready") is True)
    route("V2 model readiness", f"/v2/models/{name}/ready", lambda b: b.get("ready") is True)
    route("V1 model list", "/v1/models", lambda b: name in (b.get("models") or []))
    expected_inputs = [f.name for f in features]
    route(
        "V2 model metadata",
        f"/v2/models/{name}",
        lambda b: [i.get("name") for i in b.get("inputs") or []] == expected_inputs,
    )


def _check_batch(
    client: _Client,
    server: ServerHandle,
    protocol: str,
    rows: pd.DataFrame,
    features: Sequence[InputFeature],
    expected: list[Any],
    probabilities: np.ndarray | None,
    classification: bool,
    checks: _Checks,
) -> float | None:
    with_proba = probabilities is not None
    url = server.v1_predict_url if protocol == "v1" else server.v2_infer_url
    body = serving_client.request_body(rows, features, protocol, return_probabilities=with_proba)
    label = f"{protocol.upper()} batch of {len(rows)} row(s) matches the in-process model"
    reply = client.post(url, body)
    if not reply.ok:
        checks.record(label, False, reply.problem)
        return None
    answer, seconds = reply.answer, reply.seconds
    try:
        served = serving_client.predictions_of(answer, protocol)
        served_proba = None
        if with_proba:
            served_proba = (
                answer.get("probabilities")
                if protocol == "v1"
                else serving_client.v2_output(answer, PROBA_OUTPUT)
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        checks.record(label, False, f"POST {url}: unexpected response ({exc}): {str(answer)[:300]}")
        return None
    found = serving_client.mismatches(served, expected, classification)
    if not found and with_proba:
        got = np.asarray(served_proba, dtype=float).reshape(probabilities.shape)
        if not np.allclose(got, probabilities, rtol=serving_client.REGRESSION_RTOL, atol=PROBABILITY_ATOL):
            worst = float(np.max(np.abs(got - probabilities)))
            found.append(f"class probabilities differ from predict_proba by up to {worst:.3g}")
    detail = _describe(found) if found else f"{len(expected)} prediction(s) equal, in {seconds * 1000:.1f} ms"
    checks.record(label, not found, detail)
    return seconds


def _check_single_rows(
    client: _Client,
    server: ServerHandle,
    protocol: str,
    rows: pd.DataFrame,
    features: Sequence[InputFeature],
    expected: list[Any],
    classification: bool,
    checks: _Checks,
) -> list[float]:
    label = f"{protocol.upper()} single-row requests match the in-process model"
    seconds: list[float] = []
    found: list[str] = []
    for i in range(len(rows)):
        row = rows.iloc[[i]]
        url = server.v1_predict_url if protocol == "v1" else server.v2_infer_url
        reply = client.post(url, serving_client.request_body(row, features, protocol))
        if not reply.ok:
            checks.record(label, False, f"row {i}: {reply.problem}")
            return seconds
        seconds.append(reply.seconds)
        try:
            served = serving_client.predictions_of(reply.answer, protocol)
        except (KeyError, TypeError, ValueError) as exc:
            checks.record(label, False, f"row {i}: unexpected response ({exc}): {str(reply.answer)[:300]}")
            return seconds
        found += serving_client.mismatches(served, expected[i : i + 1], classification, first_row=i)
    summary = latency_summary(seconds)
    detail = (
        _describe(found)
        if found
        else f"{len(seconds)} request(s) equal; p50 {summary['p50']:.1f} ms, max {summary['max']:.1f} ms"
    )
    checks.record(label, not found, detail)
    return seconds


def _check_rejects_malformed(client: _Client, server: ServerHandle, checks: _Checks) -> None:
    label = "a malformed request gets a 4xx and the server keeps answering"
    response, _, error = client.call("POST", server.v1_predict_url, {"instances": []})
    if response is None:
        checks.record(label, False, error)
        return
    still, _, error = client.call("GET", server.v2_ready_url)
    ok = 400 <= response.status_code < 500 and still is not None and still.status_code == 200
    detail = f"empty batch: HTTP {response.status_code} {response.text[:200]}; then readiness: " + (
        f"HTTP {still.status_code}" if still is not None else error
    )
    checks.record(label, ok, detail)


def infra_validate(
    model_uri: str,
    sample: pd.DataFrame,
    *,
    name: str = "candidate",
    timeout_seconds: float = 60.0,
    max_rows: int = DEFAULT_MAX_ROWS,
    single_row_requests: int = DEFAULT_SINGLE_ROW_REQUESTS,
) -> InfraValidationResult:
    """Serve ``model_uri`` in the real model server on 127.0.0.1 and check it answers correctly.

    ``sample`` holds raw rows (the model's feature columns; the label column, if present, is
    dropped); the first ``max_rows`` are sent as one batch in each protocol and the first
    ``single_row_requests`` one at a time. ``timeout_seconds`` bounds the server's start and each
    request. A model that cannot be served gives a result with failed checks, not an exception;
    call ``raise_for_failure()`` to stop a pipeline on it.

    Raises:
        ParameterError: a parameter is out of range or ``sample`` is not a non-empty DataFrame.
        InputDataError: ``sample`` lacks one of the model's input columns.
    """
    check_model_name(name)
    if not isinstance(sample, pd.DataFrame) or sample.empty:
        raise ParameterError("parameter sample must be a DataFrame with at least one row of raw features")
    for label, value in (("max_rows", max_rows), ("single_row_requests", single_row_requests)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"parameter {label}={value!r} must be an integer >= 1")
    if (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, (int, float))
        or not timeout_seconds > 0
    ):
        raise ParameterError(
            f"parameter timeout_seconds={timeout_seconds!r} must be a positive number of seconds"
        )

    checks = _Checks()
    model = None
    features: tuple[InputFeature, ...] = ()
    rows = sample.head(0)
    try:
        model, card = load_model_dir(model_uri)
        features = card.input_features
    except MlstagesError as exc:
        checks.record("model loads in-process", False, f"{type(exc).__name__}: {exc}")
    expected, probabilities = None, None
    if model is not None:
        checks.record(
            "model loads in-process",
            True,
            f"sha256 {card.sha256[:12]}..., {len(features)} input features",
        )
        rows = _sample_rows(sample, features, card.label_column, max_rows)
        expected, probabilities = _expected(model, rows, checks)
    # Class labels are compared exactly, regression values to a tolerance.
    classification = model is not None and getattr(model, "classes_", None) is not None

    latencies: dict[str, dict[str, float]] = {}
    try:
        with serve_in_background(model_uri, name, start_timeout_seconds=timeout_seconds) as server:
            checks.record(
                "model server starts and reports ready", True, f"{server.base_url} (pid {server.pid})"
            )
            with local_session() as session:
                client = _Client(session, timeout_seconds)
                _check_routes(client, server, features, checks)
                if expected is not None:
                    for protocol in ("v1", "v2"):
                        took = _check_batch(
                            client,
                            server,
                            protocol,
                            rows,
                            features,
                            expected,
                            probabilities,
                            classification,
                            checks,
                        )
                        if took is not None:
                            latencies[f"{protocol}_batch_{len(rows)}_rows"] = latency_summary([took])
                    singles = rows.head(single_row_requests)
                    for protocol in ("v1", "v2"):
                        seconds = _check_single_rows(
                            client, server, protocol, singles, features, expected, classification, checks
                        )
                        if seconds:
                            latencies[f"{protocol}_single_row"] = latency_summary(seconds)
                _check_rejects_malformed(client, server, checks)
    except ServerStartError as exc:
        checks.record("model server starts and reports ready", False, str(exc))
    return InfraValidationResult(
        model_uri=model_uri,
        model_name=name,
        rows=len(rows),
        checks=tuple(checks.items),
        latencies_ms=latencies,
    )


def render_markdown(result: InfraValidationResult) -> str:
    """A Markdown summary: the verdict, every check, and the latencies."""
    verdict = "passed" if result.passed else f"FAILED {len(result.failures)} of {len(result.checks)} check(s)"
    # No heading of its own: callers (validate_model's summary) put it under theirs.
    lines = [
        f"**Infra validation {verdict}.** The model {markdown_text(result.model_uri)} was served by the "
        f"mlstages model server (KServe) as {markdown_text(result.model_name)} on 127.0.0.1 and queried "
        f"with {result.rows} sample row(s).",
        "",
        markdown_table(
            [
                {"check": c.name, "result": "pass" if c.passed else "FAIL", "detail": c.detail}
                for c in result.checks
            ],
            ["check", "result", "detail"],
        ),
        "",
    ]
    if result.latencies_ms:
        lines += [
            "Latency per request (milliseconds, client side, one worker):",
            "",
            markdown_table(
                [
                    {
                        "request": kind,
                        "count": summary["requests"],
                        **{k: summary[k] for k in ("p50", "p99", "max", "mean")},
                    }
                    for kind, summary in result.latencies_ms.items()
                ],
                ["request", "count", "p50", "p99", "max", "mean"],
            ),
            "",
        ]
    return "\n".join(lines)
