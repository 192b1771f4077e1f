"""SklearnPipelineModel: the kserve.Model that serves one exported scikit-learn Pipeline over V1 and
V2, with the prediction log."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

import kserve
import numpy as np
import orjson
import pandas as pd
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import (
    InferOutput,
    InferRequest,
    InferResponse,
    to_http_parameters,
)
from kserve.utils.numpy_codec import from_np_dtype

from mlstages.components.common.errors import ParameterError
from mlstages.components.common.model_card import (
    InputFeature,
    ModelCard,
)
from mlstages.components.common.registry import check_model_name
from mlstages.components.serving.log_format import check_request_id, model_version_of
from mlstages.components.serving.model_dir import load_model_dir
from mlstages.components.serving.prediction_log import DEFAULT_MAX_ROWS, DEFAULT_MAX_SECONDS, PredictionLogger
from mlstages.components.serving.protocol import (
    EXPECTED_DATATYPES,
    PREDICT_OUTPUT,
    PROBA_OUTPUT,
    REQUEST_ID,
    RETURN_PROBABILITIES,
    _shown,
    infer_request_to_frame,
    rows_to_frame,
)

logger = logging.getLogger(__name__)


def _as_output_array(values: Any) -> np.ndarray:
    """Predictions as an array KServe can encode: strings as objects, everything else as it is."""
    array = np.asarray(values)
    if array.dtype.kind in "USO":
        return array.astype(object)
    return array


def _flag(parameters: Mapping[str, Any], where: str) -> bool:
    value = parameters.get(RETURN_PROBABILITIES, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where} {RETURN_PROBABILITIES} must be true or false, got {_shown(value)}")
    return value


class SklearnPipelineModel(kserve.Model):
    """A model directory exported by the train stage, served through KServe (V1 and V2).

    ``load()`` reads and verifies the model (see ``load_model_dir``) and marks it ready; until
    then the readiness routes answer not ready.

    With ``prediction_log`` (a ``gs://`` prefix or a local folder), every scored request is also
    handed to a ``PredictionLogger`` (prediction_log.py), which writes the rows, predictions and
    request ids there as Parquet shards off the request path; the request id is returned to the
    client (V1: ``"request_id"`` in the response, taken from ``parameters.request_id`` when given;
    V2: the response ``id``, the request's ``id`` when given). ``stop()`` writes what is buffered.
    """

    def __init__(
        self,
        name: str,
        model_uri: str,
        *,
        cache_dir: str | os.PathLike | None = None,
        prediction_log: str | None = None,
        prediction_log_max_rows: int = DEFAULT_MAX_ROWS,
        prediction_log_max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        super().__init__(check_model_name(name))
        self.model_uri = model_uri
        self.cache_dir = cache_dir
        self.prediction_log = prediction_log or None
        self.prediction_log_max_rows = prediction_log_max_rows
        self.prediction_log_max_seconds = prediction_log_max_seconds
        self.prediction_logger: PredictionLogger | None = None
        self.model: Any = None
        self.card: ModelCard | None = None
        self.features: tuple[InputFeature, ...] = ()
        self.classes: list[Any] | None = None

    def load(self) -> bool:
        self.model, self.card = load_model_dir(self.model_uri, cache_dir=self.cache_dir)
        self.features = self.card.input_features
        classes = getattr(self.model, "classes_", None)
        self.classes = _as_output_array(classes).tolist() if classes is not None else None
        if self.prediction_log and self.prediction_logger is None:
            self.prediction_logger = PredictionLogger(
                self.prediction_log,
                model_name=self.name,
                model_version=model_version_of(self.model_uri, self.card),
                input_columns={f.name: f.logical_type for f in self.features},
                classes=self.classes,
                probabilities=self.has_probabilities,
                max_rows=self.prediction_log_max_rows,
                max_seconds=self.prediction_log_max_seconds,
            )
            logger.info("model %s: logging predictions under %s", self.name, self.prediction_log)
        self.ready = True
        logger.info(
            "model %s loaded from %s: %s, %d input features, scikit-learn %s",
            self.name,
            self.model_uri,
            self.card.task,
            len(self.features),
            self.card.sklearn_version,
        )
        return self.ready

    def stop(self) -> None:
        """Unloading (server shutdown): write the buffered prediction log."""
        if self.prediction_logger is not None:
            self.prediction_logger.close()
        super().stop()

    def _log(self, frame: pd.DataFrame, predictions: Any, probabilities: Any, request_id: str) -> None:
        if self.prediction_logger is not None:
            self.prediction_logger.log(frame, predictions, probabilities, request_id)

    @property
    def has_probabilities(self) -> bool:
        return self.classes is not None and callable(getattr(self.model, "predict_proba", None))

    # The V2 model-metadata route (/v2/models/NAME) describes these.
    def get_input_types(self) -> list[dict]:
        return [
            {"name": f.name, "datatype": EXPECTED_DATATYPES[f.logical_type][0], "shape": [-1]}
            for f in self.features
        ]

    def get_output_types(self) -> list[dict]:
        outputs = [{"name": PREDICT_OUTPUT, "datatype": self._predict_datatype(), "shape": [-1]}]
        if self.has_probabilities:
            outputs.append({"name": PROBA_OUTPUT, "datatype": "FP64", "shape": [-1, len(self.classes or [])]})
        return outputs

    def _predict_datatype(self) -> str:
        if self.classes is None:
            return "FP64"
        sample = _as_output_array(self.classes)
        return {"O": "BYTES", "b": "BOOL", "i": "INT64", "u": "INT64"}.get(sample.dtype.kind, "FP64")

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            return self._predict_v2(payload)
        if isinstance(payload, (bytes, bytearray, str)):
            # KServe hands over the raw body when the Content-Type is not exactly one of its JSON
            # types ("application/json; charset=utf-8", say); V1 is JSON whatever the header says.
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(
                    f'the request body is not JSON ({exc}): send {{"instances": [...]}} with '
                    "Content-Type: application/json"
                ) from exc
        if isinstance(payload, dict):
            return self._predict_v1(payload)
        raise InvalidInput(
            'the request body must be a JSON object: {"instances": [...]} for V1 (with '
            "Content-Type: application/json), or a V2 inference request at /v2/models/NAME/infer"
        )

    def _predict_v1(self, payload: dict) -> dict:
        unknown = sorted(set(payload) - {"instances", "parameters"})
        if "instances" not in payload:
            hint = f" (got {', '.join(map(repr, unknown))})" if unknown else ""
            raise InvalidInput(f'the request has no "instances"{hint}: send {{"instances": [row, ...]}}')
        if unknown:
            raise InvalidInput(
                f'unknown request field(s) {", ".join(map(repr, unknown))}: send "instances" and optionally "parameters"'
            )
        parameters = payload.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput('"parameters" must be an object, e.g. {"return_probabilities": true}')
        extra = sorted(set(parameters) - {RETURN_PROBABILITIES, REQUEST_ID})
        if extra:
            raise InvalidInput(
                f"unknown parameter(s) {', '.join(map(repr, extra))}; known: {RETURN_PROBABILITIES}, "
                f"{REQUEST_ID}"
            )
        with_probabilities = _flag(parameters, "parameter")
        request_id = parameters.get(REQUEST_ID)
        if request_id is not None:
            try:
                check_request_id(request_id, f"parameter {REQUEST_ID}")
            except ParameterError as exc:
                raise InvalidInput(str(exc)) from exc
        frame = rows_to_frame(payload["instances"], self.features, self.card.label_column)
        predictions, probabilities = self._run(frame, with_probabilities)
        response: dict[str, Any] = {"predictions": predictions.tolist()}
        if probabilities is not None:
            response["probabilities"] = probabilities.tolist()
            response["classes"] = self.classes
        if self.prediction_logger is not None:
            request_id = request_id or uuid.uuid4().hex
            self._log(frame, predictions, probabilities, request_id)
            response[REQUEST_ID] = request_id
        return response

    def _predict_v2(self, request: InferRequest) -> InferResponse:
        parameters = to_http_parameters(request.parameters) if request.parameters else {}
        with_probabilities = _flag(parameters, "parameter")
        requested = [o.name for o in request.request_outputs or []]
        known = [PREDICT_OUTPUT, PROBA_OUTPUT]
        wrong = [n for n in requested if n not in known]
        if wrong:
            raise InvalidInput(
                f"unknown output(s) {', '.join(map(repr, wrong))}; this model has: {', '.join(known)}"
            )
        with_probabilities = with_probabilities or PROBA_OUTPUT in requested
        frame = infer_request_to_frame(request, self.features)
        predictions, probabilities = self._run(frame, with_probabilities)
        outputs = [
            InferOutput(
                name=PREDICT_OUTPUT,
                shape=list(predictions.shape),
                datatype=from_np_dtype(predictions.dtype),
                data=predictions,
            )
        ]
        if probabilities is not None:
            outputs.append(
                InferOutput(
                    name=PROBA_OUTPUT,
                    shape=list(probabilities.shape),
                    datatype="FP64",
                    data=probabilities,
                    parameters={"classes": json.dumps(self.classes)},
                )
            )
        response_id = request.id or uuid.uuid4().hex
        self._log(frame, predictions, probabilities, response_id)
        return InferResponse(
            response_id=response_id,
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def _run(self, frame: pd.DataFrame, with_probabilities: bool) -> tuple[np.ndarray, np.ndarray | None]:
        from sklearn.exceptions import NotFittedError

        if with_probabilities and not self.has_probabilities:
            raise InvalidInput(
                f"model {self.name!r} ({self.card.task if self.card else 'no classes'}) gives no class "
                f"probabilities: leave out {RETURN_PROBABILITIES} / {PROBA_OUTPUT}"
            )
        try:
            predictions = _as_output_array(self.model.predict(frame))
            probabilities = (
                np.asarray(self.model.predict_proba(frame), dtype="float64") if with_probabilities else None
            )
        except NotFittedError as exc:
            raise InferenceError(f"model {self.name!r} cannot predict: it is not fitted ({exc})") from exc
        except (ValueError, TypeError) as exc:
            # The rows passed every check above, so the model refused their values (an unseen
            # category with handle_unknown='error', say): the request's doing, not the server's.
            raise InvalidInput(
                f"the model could not predict these rows: {type(exc).__name__}: {exc}"
            ) from exc
        return predictions, probabilities
