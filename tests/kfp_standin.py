"""A stand-in for the Kubeflow Pipelines v2beta1 REST API, for testing `mlstages submit` and
`mlstages schedule` offline with the real ``kfp.Client``.

It is NOT Kubeflow Pipelines. It is a small threaded HTTP server on 127.0.0.1 that answers only
the routes the real kfp 2.17 client (kfp/client/client.py over kfp_server_api) calls for uploading
a pipeline, creating runs and recurring runs, and following a run:

    GET    /apis/v2beta1/healthz                                  multi_user, pipeline_store
    GET    /apis/v2beta1/experiments?filter=&namespace=           list (display_name EQUALS filter)
    POST   /apis/v2beta1/experiments                              create (409 on a duplicate name)
    GET    /apis/v2beta1/pipelines?filter=&namespace=             list (display_name/name EQUALS)
    POST   /apis/v2beta1/pipelines/upload?name=&description=&namespace=
                                                                  multipart `uploadfile`: a pipeline
                                                                  and its first version, named after
                                                                  it (409 on a duplicate name)
    POST   /apis/v2beta1/pipelines/upload_version?name=&pipelineid=&description=
                                                                  multipart: a new version (409 on a
                                                                  duplicate version name)
    GET    /apis/v2beta1/pipelines/{id}/versions?filter=&sort_by=&page_size=
    GET    /apis/v2beta1/pipelines/{id}/versions/{version_id}
    POST   /apis/v2beta1/runs                                     create (PENDING)
    GET    /apis/v2beta1/runs/{id}                                the next scripted state
    POST   /apis/v2beta1/recurringruns                            create (ENABLED)
    GET    /apis/v2beta1/recurringruns?experiment_id=&filter=     list
    DELETE /apis/v2beta1/recurringruns/{id}

Bodies follow the real server's JSON (proto field names, RFC 3339 times); a version's
``pipeline_spec`` is returned the way the real server returns it: the pipeline spec itself, or
``{pipeline_spec, platform_spec}`` when the upload had a Kubernetes platform document. Errors use
grpc-gateway's ``{code, message}`` body, the upload routes the upload server's
``{error_message, error_details}``. The API can sit under a path prefix (``base_path="/pipeline"``),
as it does behind Kubeflow's ingress.

What the test switches: ``token`` (requests without ``Authorization: Bearer <token>`` get 401),
``multi_user`` (experiments, pipelines and runs need a namespace), ``run_states`` (the states a
run goes through, one per GET of the run) and ``run_error``, ``silent`` (accept connections, read
requests, never answer) or ``hang_on`` (the same for one route only, so the calls before it
succeed), ``redirect_to`` (answer everything with 302 to a login page, as Kubeflow's
auth proxy does for a request without credentials), ``html_page`` (answer everything 200 with
an HTML page, as a dashboard or UI at the wrong address does), ``fail_next`` (one injected HTTP error).

What it does not do, and so what the submit tests have not exercised: the KFP API server's own
validation of the pipeline spec and of run parameters, Argo Workflows (or any run actually
executing), the scheduled-workflow controller (recurring runs are stored, never triggered),
multi-user authorization (SubjectAccessReview), Istio/Dex/oauth2-proxy, and a real cluster.
"""

from __future__ import annotations

import copy
import datetime as dt
import email.parser
import email.policy
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import yaml
from loopback_server import LoopbackServer

API = "/apis/v2beta1"
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
# grpc codes the gateway puts in error bodies.
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": _GRPC.get(code, 2), "message": message, "details": []}


def _upload_error(message: str) -> dict[str, Any]:
    return {"error_message": message, "error_details": message}


@dataclass
class Request:
    """One request as the stand-in received it."""

    method: str
    path: str  # without the base path and query string
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or for uploads {"fields": {...}, "filename": str, "file": bytes}

    @property
    def authorization(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "authorization"), None)


@dataclass
class _Pipeline:
    record: dict[str, Any]
    versions: list[dict[str, Any]] = field(default_factory=list)
    # The uploaded file of each version, by version id, byte for byte.
    files: dict[str, bytes] = field(default_factory=dict)


def _as_struct_numbers(value: Any) -> Any:
    """Numbers as a protobuf Struct holds them (doubles) and protojson writes them: a whole
    number without its ``.0``, so the YAML's ``cpuLimit: 4.0`` comes back as ``4``."""
    if isinstance(value, dict):
        return {k: _as_struct_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_struct_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def spec_struct(text: str) -> dict[str, Any]:
    """A version's pipeline_spec as the real server returns it: the pipeline spec document alone,
    or ``{pipeline_spec, platform_spec}`` when a Kubernetes platform document follows it."""
    documents = [_as_struct_numbers(d) for d in yaml.safe_load_all(text) if d is not None]
    pipeline_spec = next(d for d in documents if "platforms" not in d)
    platform = next((d for d in documents if "platforms" in d), None)
    if platform is None:
        return pipeline_spec
    return {"pipeline_spec": pipeline_spec, "platform_spec": platform}


def _parse_filter(raw: str | None) -> list[tuple[str, str]]:
    """(key, value) pairs of a filter's EQUALS predicates. Any other operation is refused: the
    stand-in would answer it wrongly, and a test should notice."""
    if not raw:
        return []
    predicates = json.loads(raw).get("predicates", [])
    pairs = []
    for predicate in predicates:
        if predicate.get("operation") not in (1, "EQUALS"):
            raise ValueError(f"the stand-in only filters with EQUALS, got {predicate!r}")
        value = predicate.get("stringValue", predicate.get("string_value"))
        pairs.append((predicate["key"], value))
    return pairs


def _matches(record: Mapping[str, Any], pairs: Sequence[tuple[str, str]]) -> bool:
    return all(record.get(key) == value for key, value in pairs)


def _parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], str, bytes]:
    """Form fields, and the name and bytes of the ``uploadfile`` part, of a multipart body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        raise ValueError("the body is not multipart/form-data")
    fields: dict[str, str] = {}
    filename, data = "", b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "uploadfile":
            filename, data = part.get_filename() or "", payload
        else:
            fields[str(name)] = payload.decode()
    if not filename:
        raise ValueError("no uploadfile part")
    return fields, filename, data


class KfpStandIn(LoopbackServer):
    """The stand-in API server (see the module docstring). Use as a context manager; point the real
    client at ``standin.url``.

    Attributes:
        requests: every request received (see ``Request``), in order.
        runs, recurring_runs, experiments: what was created, by id, as the server stores them.
    """

    thread_name = "kfp-standin"

    def __init__(
        self,
        *,
        token: str | None = None,
        multi_user: bool = False,
        run_states: Sequence[str] = ("PENDING", "RUNNING", "SUCCEEDED"),
        run_error: str = "",
        silent: bool = False,
        hang_on: tuple[str, str] | None = None,
        redirect_to: str | None = None,
        html_page: bool = False,
        base_path: str = "",
    ) -> None:
        super().__init__()
        self.token = token
        self.multi_user = multi_user
        self.run_states = list(run_states)
        self.run_error = run_error
        self.silent = silent
        self.hang_on = (hang_on[0].upper(), API + hang_on[1]) if hang_on else None
        self.redirect_to = redirect_to
        self.html_page = html_page
        self.base_path = base_path.rstrip("/")
        self.requests: list[Request] = []
        self.experiments: dict[str, dict[str, Any]] = {}
        self.pipelines: dict[str, _Pipeline] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self._run_scripts: dict[str, list[str]] = {}
        self._failures: list[tuple[str, str, int, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The host to give the client: scheme, address and base path."""
        return self.root_url + self.base_path

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def before_stop(self) -> None:
        # Lets a silent handler return, so that its thread ends.
        self._stopping.set()

    # --- what the test controls and reads -----------------------------------------------------

    def fail_next(self, method: str, path_prefix: str, code: int, message: str) -> None:
        """Answer the next ``method`` request whose path starts with ``path_prefix`` (after
        /apis/v2beta1) with an HTTP error."""
        with self._lock:
            self._failures.append((method.upper(), path_prefix, code, message))

    def requests_to(self, method: str, path: str) -> list[Request]:
        """The requests with this method whose path (after /apis/v2beta1) is ``path``."""
        return [r for r in self.requests if r.method == method.upper() and r.path == API + path]

    def uploads(self) -> list[Request]:
        """Pipeline and pipeline-version uploads, in order."""
        return [
            r for r in self.requests if r.method == "POST" and r.path.startswith(API + "/pipelines/upload")
        ]

    def uploaded_file(self, version_id: str) -> bytes:
        for pipeline in self.pipelines.values():
            if version_id in pipeline.files:
                return pipeline.files[version_id]
        raise KeyError(f"no pipeline version {version_id}")

    def versions(self, pipeline_name: str) -> list[dict[str, Any]]:
        for pipeline in self.pipelines.values():
            if pipeline.record["display_name"] == pipeline_name:
                return copy.deepcopy(pipeline.versions)
        return []

    def hangs(self, method: str, target: str) -> bool:
        """Whether to accept this request and never answer it."""
        if self.silent:
            return True
        if self.hang_on is None:
            return False
        path = urllib.parse.urlsplit(target).path
        if self.base_path and path.startswith(self.base_path + "/"):
            path = path[len(self.base_path) :]
        return method == self.hang_on[0] and path.startswith(self.hang_on[1])

    # --- the API -----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Any]:
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        if self.base_path and path.startswith(self.base_path + "/"):
            path = path[len(self.base_path) :]
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        content_type = headers.get("Content-Type", "")
        request = Request(method, path, query, dict(headers.items()))
        try:
            if content_type.startswith("multipart/form-data"):
                fields, filename, data = _parse_multipart(content_type, raw)
                request.body = {"fields": fields, "filename": filename, "file": data}
            elif raw:
                request.body = json.loads(raw)
        except ValueError as exc:
            with self._lock:
                self.requests.append(request)
            return 400, _error(400, f"unreadable request body: {exc}")
        with self._lock:
            self.requests.append(request)
            if self.token is not None and request.authorization != f"Bearer {self.token}":
                return 401, _error(
                    401, "Unauthenticated: Request header error: there is no user identity header."
                )
            for index, (failing, prefix, code, message) in enumerate(self._failures):
                if failing == method and path.startswith(API + prefix):
                    del self._failures[index]
                    return code, _error(code, message)
            try:
                return self._route(request)
            except ValueError as exc:
                return 400, _error(400, f"Invalid input error: {exc}")

    def _route(self, request: Request) -> tuple[int, Any]:
        method, path, query = request.method, request.path, request.query
        if not path.startswith(API + "/"):
            return 404, _error(404, "Not Found")
        parts = path[len(API) + 1 :].split("/")
        if method == "GET" and parts == ["healthz"]:
            return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}
        if parts == ["experiments"]:
            if method == "GET":
                return self._list(self.experiments.values(), "experiments", query)
            if method == "POST":
                return self._create_experiment(request.body or {})
        if parts[0] == "pipelines":
            return self._pipelines_route(request, parts[1:])
        if parts[0] == "runs":
            if method == "POST" and len(parts) == 1:
                return self._create_run(request.body or {})
            if method == "GET" and len(parts) == 2:
                return self._get_run(parts[1])
        if parts[0] == "recurringruns":
            if method == "POST" and len(parts) == 1:
                return self._create_recurring_run(request.body or {})
            if method == "GET" and len(parts) == 1:
                records = self.recurring_runs.values()
                if query.get("experiment_id"):
                    records = [r for r in records if r["experiment_id"] == query["experiment_id"]]
                return self._list(records, "recurringRuns", query, namespaced=False)
            if method == "DELETE" and len(parts) == 2:
                if self.recurring_runs.pop(parts[1], None) is None:
                    return 404, _error(404, f"recurring run {parts[1]} not found")
                return 200, {}
        return 404, _error(404, "Not Found")

    def _namespace(self, value: str | None) -> str:
        if self.multi_user and not value:
            raise ValueError("Namespace is required in multi-user mode")
        return value or ""

    def _list(
        self, records: Any, key: str, query: Mapping[str, str], *, namespaced: bool = True
    ) -> tuple[int, Any]:
        pairs = _parse_filter(query.get("filter"))
        selected = [r for r in records if _matches(r, pairs)]
        if namespaced:
            namespace = self._namespace(query.get("namespace"))
            selected = [r for r in selected if r.get("namespace", "") == namespace]
        if not selected:
            return 200, {}
        return 200, {key: copy.deepcopy(selected), "total_size": len(selected)}

    def _create_experiment(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        name = body.get("display_name")
        if not name:
            raise ValueError("Experiment name is empty. Please specify a valid experiment name")
        namespace = self._namespace(body.get("namespace"))
        if any(e["display_name"] == name and e["namespace"] == namespace for e in self.experiments.values()):
            return 409, _error(409, f"Failed to create a new experiment: experiment {name!r} already exists")
        record = {
            "experiment_id": str(uuid.uuid4()),
            "display_name": name,
            "description": body.get("description") or "",
            "namespace": namespace,
            "created_at": _now(),
            "storage_state": "AVAILABLE",
        }
        self.experiments[record["experiment_id"]] = record
        return 200, copy.deepcopy(record)

    # --- pipelines -------------------------------------------------------------------------------

    def _pipelines_route(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        method, query = request.method, request.query
        if method == "GET" and parts == []:
            return self._list((p.record for p in self.pipelines.values()), "pipelines", query)
        if method == "POST" and parts == ["upload"]:
            return self._upload(request, new_pipeline=True)
        if method == "POST" and parts == ["upload_version"]:
            return self._upload(request, new_pipeline=False)
        pipeline = self.pipelines.get(parts[0]) if parts else None
        if pipeline is None:
            return 404, _error(404, f"Pipeline {parts[0] if parts else ''} not found")
        if method == "GET" and parts[1:] == ["versions"]:
            versions = [v for v in pipeline.versions if _matches(v, _parse_filter(query.get("filter")))]
            sort_by = query.get("sort_by", "")
            if sort_by:
                key, _, order = sort_by.partition(" ")
                versions.sort(key=lambda v: (v[key], v["sequence"]), reverse=order.strip() == "desc")
            if query.get("page_size"):
                versions = versions[: int(query["page_size"])]
            if not versions:
                return 200, {}
            shown = [{k: v for k, v in item.items() if k != "sequence"} for item in versions]
            return 200, {"pipeline_versions": copy.deepcopy(shown), "total_size": len(shown)}
        if method == "GET" and len(parts) == 3 and parts[1] == "versions":
            for version in pipeline.versions:
                if version["pipeline_version_id"] == parts[2]:
                    return 200, {k: v for k, v in copy.deepcopy(version).items() if k != "sequence"}
            return 404, _error(404, f"Pipeline version {parts[2]} not found")
        return 404, _error(404, "Not Found")

    def _upload(self, request: Request, *, new_pipeline: bool) -> tuple[int, Any]:
        body, query = request.body, request.query
        if not isinstance(body, dict) or "file" not in body:
            return 400, _upload_error("Failed to read pipeline from file")
        text = body["file"].decode("utf-8")
        try:
            struct = spec_struct(text)
        except (yaml.YAMLError, StopIteration):
            return 400, _upload_error("Failed to read a pipeline spec file")
        spec = struct.get("pipeline_spec", struct)
        if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
            return 400, _upload_error("Failed to read a pipeline spec file")
        # buildPipelineName: the name, else the display name, else the file name without extension.
        name = query.get("name") or query.get("display_name") or body["filename"].rsplit(".", 1)[0]
        description = query.get("description", "")
        if new_pipeline:
            try:
                namespace = self._namespace(query.get("namespace"))
            except ValueError as exc:
                return 400, _upload_error(str(exc))
            if any(
                p.record["name"] == name and p.record["namespace"] == namespace
                for p in self.pipelines.values()
            ):
                return 409, _upload_error("Failed to create a pipeline and a pipeline version")
            record = {
                "pipeline_id": str(uuid.uuid4()),
                "name": name,
                "display_name": query.get("display_name") or name,
                "description": description,
                "namespace": namespace,
                "created_at": _now(),
            }
            pipeline = _Pipeline(record)
            self.pipelines[record["pipeline_id"]] = pipeline
        else:
            pipeline = self.pipelines.get(query.get("pipelineid", ""))
            if pipeline is None:
                return 400, _upload_error("Failed to create a pipeline version")
            if any(v["name"] == name for v in pipeline.versions):
                return 409, _upload_error("Failed to create a pipeline version")
        version = {
            "pipeline_id": pipeline.record["pipeline_id"],
            "pipeline_version_id": str(uuid.uuid4()),
            "name": name,
            "display_name": query.get("display_name") or name,
            "description": description,
            "created_at": _now(),
            "pipeline_spec": struct,
            # Keeps versions created within the same second in creation order.
            "sequence": sum(len(p.versions) for p in self.pipelines.values()),
        }
        pipeline.versions.append(version)
        pipeline.files[version["pipeline_version_id"]] = body["file"]
        if new_pipeline:
            return 200, copy.deepcopy(pipeline.record)
        return 200, {k: v for k, v in copy.deepcopy(version).items() if k != "sequence"}

    def _version(self, reference: Mapping[str, Any]) -> dict[str, Any] | None:
        pipeline = self.pipelines.get(reference.get("pipeline_id", ""))
        if pipeline is None:
            return None
        return next(
            (
                v
                for v in pipeline.versions
                if v["pipeline_version_id"] == reference.get("pipeline_version_id")
            ),
            None,
        )

    # --- runs ------------------------------------------------------------------------------------

    def _check_run_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        experiment = self.experiments.get(body.get("experiment_id", ""))
        if experiment is None:
            raise ValueError(f"experiment {body.get('experiment_id')!r} not found")
        reference = body.get("pipeline_version_reference") or {}
        if self._version(reference) is None and not body.get("pipeline_spec"):
            raise ValueError(f"pipeline version {reference!r} not found")
        return experiment

    def _create_run(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        experiment = self._check_run_body(body)
        record = copy.deepcopy(dict(body))
        record.update(
            run_id=str(uuid.uuid4()),
            experiment_id=experiment["experiment_id"],
            created_at=_now(),
            scheduled_at=_now(),
            storage_state="AVAILABLE",
            state=self.run_states[0],
            state_history=[{"update_time": _now(), "state": self.run_states[0]}],
        )
        self.runs[record["run_id"]] = record
        self._run_scripts[record["run_id"]] = list(self.run_states[1:])
        return 200, copy.deepcopy(record)

    def _get_run(self, run_id: str) -> tuple[int, Any]:
        record = self.runs.get(run_id)
        if record is None:
            return 404, _error(404, f"Run {run_id} not found")
        script = self._run_scripts.get(run_id)
        if script:
            state = script.pop(0)
            record["state"] = state
            record["state_history"].append({"update_time": _now(), "state": state})
            if state in TERMINAL_STATES:
                record["finished_at"] = _now()
            if state == "FAILED":
                message = self.run_error or "the run failed"
                record["error"] = {"code": 2, "message": message, "details": []}
                record["run_details"] = {
                    "task_details": [
                        {
                            "run_id": run_id,
                            "task_id": str(uuid.uuid4()),
                            "display_name": "train",
                            "state": "FAILED",
                            "error": {"code": 2, "message": message, "details": []},
                        },
                        {
                            "run_id": run_id,
                            "task_id": str(uuid.uuid4()),
                            "display_name": "ingest",
                            "state": "SUCCEEDED",
                        },
                    ]
                }
        return 200, copy.deepcopy(record)

    def _create_recurring_run(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        experiment = self._check_run_body(body)
        trigger = body.get("trigger") or {}
        if not (trigger.get("cron_schedule") or {}).get("cron") and not trigger.get("periodic_schedule"):
            raise ValueError("a recurring run needs a trigger: cron_schedule.cron or periodic_schedule")
        record = copy.deepcopy(dict(body))
        record.update(
            recurring_run_id=str(uuid.uuid4()),
            experiment_id=experiment["experiment_id"],
            namespace=experiment["namespace"],
            created_at=_now(),
            updated_at=_now(),
            status="ENABLED" if body.get("mode", "ENABLE") == "ENABLE" else "DISABLED",
        )
        self.recurring_runs[record["recurring_run_id"]] = record
        return 200, copy.deepcopy(record)


class _Handler(BaseHTTPRequestHandler):
    standin: KfpStandIn
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        standin = self.standin
        if standin.hangs(self.command, self.path):
            # Accept, read, never answer: what a wedged proxy or API server looks like.
            with standin._lock:
                standin.requests.append(Request(self.command, self.path, {}, dict(self.headers.items())))
            standin._stopping.wait()
            return
        if standin.redirect_to is not None:
            with standin._lock:
                standin.requests.append(Request(self.command, self.path, {}, dict(self.headers.items())))
            self.send_response(302)
            self.send_header("Location", standin.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if standin.html_page:
            with standin._lock:
                standin.requests.append(Request(self.command, self.path, {}, dict(self.headers.items())))
            page = b"<!doctype html><html><body>Kubeflow Central Dashboard</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        code, body = standin.handle(self.command, self.path, self.headers, raw)
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
def running_standin(**options: Any) -> Iterator[KfpStandIn]:
    with KfpStandIn(**options) as standin:
        yield standin
