"""A stand-in for the Kubeflow Model Registry's REST API, for testing deploy's registration offline.

It is NOT a model registry. It is a small threaded HTTP server on 127.0.0.1 that answers only the
routes the real ``model-registry`` client (PyPI ``model-registry``, the ``ModelRegistry`` class)
calls to connect and to register a model, under /api/model_registry/v1:

    GET  /registered_models?pageSize=1                     the client's connection check
    GET  /registered_model?name=...                        find a registered model (404 if none)
    POST /registered_models                                create one (RegisteredModelCreate)
    GET  /model_version?name=...&parentResourceId=...      find a version (404 if none)
    POST /model_versions                                   create one (ModelVersionCreate)
    POST /model_versions/{id}/artifacts                    add its model artifact (ModelArtifactCreate)
    GET  /model_artifact?name=...&parentResourceId=...     find a version's artifact (404 if none)

Every request body is validated with the client's own generated OpenAPI models (mr_openapi), and
any key they do not define is refused with 400, as a strict server would. Responses are built
with the same models, so the client parses what the real server's schema says it sends. The test
reads ``requests`` (method, path, query, body) to assert on what the real client sent.

What it does not do, and so what deploy's tests have not exercised: a real registry's storage
(MySQL / PostgreSQL behind it), its authentication and authorization (the bearer token is recorded,
never checked), its TLS, its uniqueness rules beyond names, and its InferenceService controller.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback_server import LoopbackServer

API = "/api/model_registry/v1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    authorization: str | None


def _check_keys(model: Any, body: dict[str, Any]) -> None:
    """Refuse keys the OpenAPI model does not define (pydantic would ignore them silently)."""
    allowed = {field.alias or name for name, field in model.model_fields.items()}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {', '.join(unknown)}")


class ModelRegistryStandin(LoopbackServer):
    """The routes above, over dicts of the objects created; ``fail_with`` makes every request
    answer that HTTP status (a registry that refuses)."""

    thread_name = "model-registry-standin"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.registered_models: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.artifact_parent: dict[str, str] = {}
        self.fail_with: int | None = None
        self._next_id = 1

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler


def _stamp(obj: dict[str, Any], standin: ModelRegistryStandin) -> dict[str, Any]:
    obj = dict(obj)
    obj["id"] = standin.new_id()
    obj.setdefault("customProperties", {})
    obj["createTimeSinceEpoch"] = obj["lastUpdateTimeSinceEpoch"] = "1767225600000"
    return obj


class _Handler(BaseHTTPRequestHandler):
    standin: ModelRegistryStandin

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, what: str) -> None:
        self._send(404, {"code": "404", "message": f"no {what} found"})

    def _handle(self, method: str) -> None:
        standin = self.standin
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        body = None
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        with standin.lock:
            standin.requests.append(
                Request(method, parsed.path, query, body, self.headers.get("Authorization"))
            )
            if standin.fail_with is not None:
                self._send(
                    standin.fail_with, {"code": str(standin.fail_with), "message": "refused by the stand-in"}
                )
                return
            try:
                self._route(method, parsed.path.removeprefix(API), query, body)
            except ValueError as exc:
                self._send(400, {"code": "400", "message": str(exc)})

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        from mr_openapi import (
            ModelArtifact,
            ModelArtifactCreate,
            ModelVersion,
            ModelVersionCreate,
            RegisteredModel,
            RegisteredModelCreate,
            RegisteredModelList,
        )

        standin = self.standin
        if method == "GET" and path == "/registered_models":
            items = list(standin.registered_models.values())[: int(query.get("pageSize") or 100)]
            listing = {
                "items": items,
                "size": len(items),
                "pageSize": int(query.get("pageSize") or 100),
                "nextPageToken": "",
            }
            self._send(200, RegisteredModelList.from_dict(listing).to_dict())
        elif method == "GET" and path == "/registered_model":
            found = [m for m in standin.registered_models.values() if m["name"] == query.get("name")]
            if not found:
                return self._not_found("registered model")
            self._send(200, RegisteredModel.from_dict(found[0]).to_dict())
        elif method == "POST" and path == "/registered_models":
            _check_keys(RegisteredModelCreate, body)
            RegisteredModelCreate.from_dict(body)
            if any(m["name"] == body["name"] for m in standin.registered_models.values()):
                raise ValueError(f"registered model {body['name']!r} exists")
            created = _stamp(body, standin)
            standin.registered_models[created["id"]] = created
            self._send(201, RegisteredModel.from_dict(created).to_dict())
        elif method == "GET" and path == "/model_version":
            found = [
                v
                for v in standin.versions.values()
                if v["name"] == query.get("name") and v["registeredModelId"] == query.get("parentResourceId")
            ]
            if not found:
                return self._not_found("model version")
            self._send(200, ModelVersion.from_dict(found[0]).to_dict())
        elif method == "POST" and path == "/model_versions":
            _check_keys(ModelVersionCreate, body)
            ModelVersionCreate.from_dict(body)
            if body.get("registeredModelId") not in standin.registered_models:
                raise ValueError(f"no registered model {body.get('registeredModelId')!r}")
            created = _stamp(body, standin)
            standin.versions[created["id"]] = created
            self._send(201, ModelVersion.from_dict(created).to_dict())
        elif method == "POST" and path.startswith("/model_versions/") and path.endswith("/artifacts"):
            version_id = path.split("/")[2]
            if version_id not in standin.versions:
                return self._not_found("model version")
            _check_keys(ModelArtifactCreate, body)
            ModelArtifactCreate.from_dict(body)
            created = _stamp(body, standin)
            standin.artifacts[created["id"]] = created
            standin.artifact_parent[created["id"]] = version_id
            self._send(201, ModelArtifact.from_dict(created).to_dict())
        elif method == "GET" and path == "/model_artifact":
            found = [
                a
                for a_id, a in standin.artifacts.items()
                if standin.artifact_parent[a_id] == query.get("parentResourceId")
                and (not query.get("name") or a.get("name") == query.get("name"))
            ]
            if not found:
                return self._not_found("model artifact")
            self._send(200, ModelArtifact.from_dict(found[0]).to_dict())
        else:
            self._send(404, {"code": "404", "message": f"no route {method} {path}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
