"""The smoke test: real rows of the test split sent to the endpoint through the one serving client,
answered with the model's own predictions or the deploy fails."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlstages.components.common.errors import InputDataError, require_choice

if TYPE_CHECKING:
    import pandas as pd

    from mlstages.components.common.model_card import InputFeature
from mlstages.components.deploy.config import PROTOCOLS, DeployFailed


@dataclass(frozen=True)
class SmokeTestResult:
    url: str
    protocol: str
    rows: int
    status_code: int
    seconds: float
    predictions: list[Any]
    compared: bool


def sample_rows(test_df: pd.DataFrame, columns: Sequence[str], count: int) -> pd.DataFrame:
    """The first ``count`` rows of the model's input columns, complete rows first, so the smoke
    test sends real data; rows with missing values fill up the rest (they are real traffic too)."""
    missing = [c for c in columns if c not in test_df.columns]
    if missing:
        raise InputDataError(
            f"the test split lacks the model's input column(s) {', '.join(map(repr, missing))}: "
            "pass the test split the model was evaluated on"
        )
    if len(test_df) == 0:
        raise InputDataError("the test split has no rows: the smoke test needs sample rows")
    import numpy as np

    frame = test_df[list(columns)]
    complete = frame.notna().all(axis=1).to_numpy()
    positions = np.concatenate([np.flatnonzero(complete), np.flatnonzero(~complete)])[:count]
    return frame.iloc[positions].reset_index(drop=True)


def smoke_test(
    url: str,
    name: str,
    protocol: str,
    rows: pd.DataFrame,
    *,
    features: Sequence[InputFeature],
    expected: Sequence[Any] | None = None,
    task: str = "classification",
    timeout: float = 30.0,
) -> SmokeTestResult:
    """Send ``rows`` to the endpoint at ``url`` in ``protocol`` (v1 or v2), built by the one serving
    client from the model card's ``features``, and check the answer: HTTP 200, one prediction per
    row and, given ``expected`` (the model's own predictions), the same predictions (exactly for
    classes, to the client's tolerance for regression).

    Raises DeployFailed saying what was sent where and what came back.
    """
    import requests

    from mlstages.components.serving import client

    require_choice("protocol_version", protocol, PROTOCOLS)
    target = client.predict_url(url, name, protocol)
    session = requests.Session()
    # A loopback endpoint is reached directly even when the environment names a proxy.
    session.trust_env = not client.is_loopback(target)
    try:
        reply = client.post(session, target, client.request_body(rows, features, protocol), timeout)
    finally:
        session.close()
    if not reply.ok:
        raise DeployFailed(f"smoke test: {reply.problem}")
    shown = json.dumps(reply.answer)[: client.MAX_BODY_IN_MESSAGE]
    try:
        predictions = client.predictions_of(reply.answer, protocol)
    except ValueError as exc:
        raise DeployFailed(
            f"smoke test: POST {target} answered without predictions ({exc}): {shown}"
        ) from exc
    if len(predictions) != len(rows):
        raise DeployFailed(
            f"smoke test: POST {target} returned {len(predictions)} prediction(s) for {len(rows)} row(s): {shown}"
        )
    if expected is not None:
        found = client.mismatches(predictions, list(expected), task != "regression")
        if found:
            raise DeployFailed(
                f"smoke test: POST {target}: {'; '.join(found[:3])}: the endpoint does not serve this model"
            )
    return SmokeTestResult(
        url=target,
        protocol=protocol,
        rows=len(rows),
        status_code=int(reply.status_code or 0),
        seconds=reply.seconds,
        predictions=predictions,
        compared=expected is not None,
    )
