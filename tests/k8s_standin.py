"""A stand-in for the Kubernetes API server, for testing deploy's cluster path offline.

It is NOT a Kubernetes cluster. It is a small threaded HTTP server on 127.0.0.1 that answers only
the routes the real ``kubernetes`` client calls for namespaced custom objects of
serving.kserve.io/v1beta1 ``inferenceservices``:

    POST   /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices          create (409 AlreadyExists)
    GET    /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}   read one
    PATCH  /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}   JSON merge patch only
    DELETE /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}   delete
    GET    /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}/status

with Kubernetes ``Status`` bodies on errors, metadata.generation bumped on spec changes, and
resourceVersion on every write. There is no KServe controller: the TEST decides the status, either
directly (``set_status``), as a script of statuses returned one per GET (``script_statuses``), or
with a ``controller`` function called after every create and patch that returns the status for the
object as it now is (``ready_controller`` marks it Ready at a URL the test gives, typically a real
local model server's; ``serving_controller`` starts mlstages' real model server for the storageUri).

What it does not do, and so what deploy's tests have not exercised: admission webhooks and schema
validation of the InferenceService, the KServe controller (runtime selection, storage
initializer, the predictor Deployment or Knative revision), networking, and RBAC enforcement.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback_server import LoopbackServer

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
MERGE_PATCH = "application/merge-patch+json"
_ROUTE = re.compile(
    rf"^/apis/{re.escape(GROUP)}/{VERSION}/namespaces/(?P<ns>[^/]+)/{PLURAL}"
    r"(?:/(?P<name>[^/]+)(?P<status>/status)?)?/?$"
)

Controller = Callable[[dict[str, Any]], dict[str, Any] | None]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def condition(kind: str, ready: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    """One status condition as KServe writes it."""
    entry: dict[str, Any] = {
        "type": kind,
        "status": "True" if ready else "False",
        "lastTransitionTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return entry


def make_status(
    ready: bool,
    *,
    reason: str = "",
    message: str = "",
    url: str | None = None,
    address_url: str | None = None,
    observed_generation: int | None = None,
) -> dict[str, Any]:
    """An InferenceService status: Ready and PredictorReady conditions, URLs, observedGeneration."""
    status: dict[str, Any] = {
        "conditions": [
            condition("PredictorReady", ready, reason, message),
            condition("Ready", ready, reason, message),
        ]
    }
    if url:
        status["url"] = url
    if address_url:
        status["address"] = {"url": address_url}
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    return status


def ready_controller(url: str, *, failing_storage_uris: Mapping[str, tuple[str, str]] = {}) -> Controller:
    """A controller for tests: every spec is Ready at ``url`` for its generation, except specs whose
    storageUri is in ``failing_storage_uris`` (uri -> (reason, message)), which are Ready=False."""

    def reconcile(obj: dict[str, Any]) -> dict[str, Any]:
        generation = obj["metadata"]["generation"]
        uri = obj.get("spec", {}).get("predictor", {}).get("model", {}).get("storageUri", "")
        if uri in failing_storage_uris:
            reason, message = failing_storage_uris[uri]
            return make_status(False, reason=reason, message=message, observed_generation=generation)
        return make_status(True, url=url, address_url=url, observed_generation=generation)

    return reconcile


def serving_controller(standin: KubernetesStandIn) -> Controller:
    """A controller for tests that stands in for KServe's a little further: for each storageUri it
    starts mlstages' real model server on 127.0.0.1 (serve_in_background, which downloads gs://
    models through the storage module) and reports Ready at its URL; a model the server cannot
    load is reported Ready=False with the server's error. The servers stop with the stand-in."""
    from mlstages.components.serving.process import ServerStartError, serve_in_background

    servers: dict[str, str] = {}

    def reconcile(obj: dict[str, Any]) -> dict[str, Any]:
        generation = obj["metadata"]["generation"]
        uri = obj.get("spec", {}).get("predictor", {}).get("model", {}).get("storageUri", "")
        if uri not in servers:
            try:
                handle = standin.resources.enter_context(serve_in_background(uri, obj["metadata"]["name"]))
            except ServerStartError as exc:
                return make_status(
                    False, reason="ModelLoadFailed", message=str(exc)[:300], observed_generation=generation
                )
            servers[uri] = handle.base_url
        return make_status(True, url=servers[uri], address_url=servers[uri], observed_generation=generation)

    return reconcile


def _status_body(code: int, reason: str, message: str, name: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if name:
        body["details"] = {"name": name, "group": GROUP, "kind": PLURAL}
    return body


class KubernetesStandIn(LoopbackServer):
    """The stand-in API server (see the module docstring). Use as a context manager; point the
    real client at it with ``kubernetes.client.Configuration(host=standin.host)``.

    Attributes:
        requests: every request received, as (method, path, content type, parsed JSON body).
        controller: called after every create and patch with the stored object; the status it
            returns is stored (None leaves the status alone).
        token: when set, requests without ``Authorization: Bearer <token>`` get 401.
    """

    thread_name = "k8s-standin"

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token
        self.controller: Controller | None = None
        self.requests: list[tuple[str, str, str, Any]] = []
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._scripts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._failures: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()
        self._resource_version = 0
        # What a controller started for the test (model servers); closed by stop().
        self.resources = ExitStack()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.root_url

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def before_stop(self) -> None:
        self.resources.close()

    # --- what the test controls --------------------------------------------------------------

    def get(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if it had been created earlier (a pre-existing InferenceService)."""
        with self._lock:
            return self._create(copy.deepcopy(obj), obj["metadata"].get("namespace", "default"))

    def set_status(self, name: str, namespace: str = "default", *, ready: bool, **fields: Any) -> None:
        """Set the status (Ready and PredictorReady conditions, url, ...) for the current generation."""
        with self._lock:
            obj = self._objects[(namespace, name)]
            fields.setdefault("observed_generation", obj["metadata"]["generation"])
            obj["status"] = make_status(ready, **fields)

    def script_statuses(self, name: str, statuses: list[dict[str, Any]], namespace: str = "default") -> None:
        """Answer the next GETs of ``name`` with these statuses, one per GET; the last one stays."""
        with self._lock:
            self._scripts[(namespace, name)] = [copy.deepcopy(s) for s in statuses]

    def fail_next(self, method: str, code: int, reason: str, message: str = "") -> None:
        """Answer the next ``method`` request with an error Status (e.g. 403 Forbidden, 500)."""
        with self._lock:
            self._failures.append((method.upper(), code, reason or message))

    def requests_of(self, method: str) -> list[tuple[str, str, str, Any]]:
        return [r for r in self.requests if r[0] == method.upper()]

    # --- the API -----------------------------------------------------------------------------

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _create(self, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.update(
            uid=str(uuid.uuid4()),
            generation=1,
            resourceVersion=self._next_resource_version(),
            creationTimestamp=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        body.pop("status", None)
        self._objects[(namespace, meta["name"])] = body
        self._reconcile(body)
        return body

    def _reconcile(self, obj: dict[str, Any]) -> None:
        if self.controller is not None:
            status = self.controller(copy.deepcopy(obj))
            if status is not None:
                obj["status"] = status

    def handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Any]:
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return 400, _status_body(400, "BadRequest", "the body is not JSON")
        with self._lock:
            self.requests.append((method, path, content_type, body))
            if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
                return 401, _status_body(401, "Unauthorized", "Unauthorized")
            for index, (failing, code, reason) in enumerate(self._failures):
                if failing == method:
                    del self._failures[index]
                    return code, _status_body(code, reason, f"{reason} (injected by the test)")
            route = _ROUTE.match(path.split("?", 1)[0])
            if route is None:
                return 404, _status_body(404, "NotFound", f"the stand-in does not serve {path}")
            namespace, name, status_only = route["ns"], route["name"], bool(route["status"])
            if name is None:
                if method != "POST":
                    return 405, _status_body(405, "MethodNotAllowed", f"{method} on a collection")
                return self._post(namespace, body)
            key = (namespace, name)
            if key not in self._objects:
                return 404, _status_body(404, "NotFound", f'{PLURAL}.{GROUP} "{name}" not found', name)
            if method == "GET":
                return self._get(key, status_only)
            if method == "PATCH" and not status_only:
                return self._patch(key, content_type, body)
            if method == "DELETE" and not status_only:
                del self._objects[key]
                self._scripts.pop(key, None)
                return 200, _status_body(200, "", "", name)
            return 405, _status_body(405, "MethodNotAllowed", f"{method} {path}")

    def _post(self, namespace: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not (body.get("metadata") or {}).get("name"):
            return 422, _status_body(422, "Invalid", "metadata.name: Required value")
        if body.get("apiVersion") != f"{GROUP}/{VERSION}" or body.get("kind") != "InferenceService":
            return 400, _status_body(400, "BadRequest", "apiVersion/kind do not match the URL")
        name = body["metadata"]["name"]
        if (namespace, name) in self._objects:
            return 409, _status_body(409, "AlreadyExists", f'{PLURAL}.{GROUP} "{name}" already exists', name)
        return 201, copy.deepcopy(self._create(copy.deepcopy(body), namespace))

    def _get(self, key: tuple[str, str], status_only: bool) -> tuple[int, Any]:
        obj = self._objects[key]
        script = self._scripts.get(key)
        if script:
            obj["status"] = script.pop(0) if len(script) > 1 else copy.deepcopy(script[0])
        return 200, copy.deepcopy(obj)

    def _patch(self, key: tuple[str, str], content_type: str, body: Any) -> tuple[int, Any]:
        if content_type != MERGE_PATCH:
            return 415, _status_body(
                415, "UnsupportedMediaType", f"the stand-in takes {MERGE_PATCH}, not {content_type!r}"
            )
        if not isinstance(body, dict):
            return 400, _status_body(400, "BadRequest", "a merge patch must be a JSON object")
        current = self._objects[key]
        body = {k: v for k, v in body.items() if k != "status"}  # status is a subresource
        patched = merge_patch(current, body)
        patched["metadata"]["name"], patched["metadata"]["namespace"] = key[1], key[0]
        if patched.get("spec") != current.get("spec"):
            patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
        patched["metadata"]["resourceVersion"] = self._next_resource_version()
        self._objects[key] = patched
        self._reconcile(patched)
        return 200, copy.deepcopy(patched)


class _Handler(BaseHTTPRequestHandler):
    standin: KubernetesStandIn
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        code, body = self.standin.handle(self.command, self.path, self.headers, raw)
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass


@contextmanager
def running_standin(token: str | None = None) -> Iterator[KubernetesStandIn]:
    with KubernetesStandIn(token=token) as standin:
        yield standin


def custom_objects_api(standin: KubernetesStandIn, token: str | None = None):
    """The real kubernetes CustomObjectsApi pointed at the stand-in."""
    from kubernetes import client

    configuration = client.Configuration(host=standin.host)
    if token is not None:
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.CustomObjectsApi(client.ApiClient(configuration))
