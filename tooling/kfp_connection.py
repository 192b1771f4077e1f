"""A Kubeflow Pipelines connection through the real kfp client, with every call bounded.

The kfp client (kfp_server_api over urllib3) sets no timeout at all, so a host that accepts the
connection and never answers hangs it forever, and its ``get_kfp_healthz`` retries for 25 s with a
traceback per attempt. ``KubeflowClient`` gives every request a connect and a read timeout and no
hidden retries; ``Connection`` turns every failure into a ``KubeflowError`` that names the host,
what was being done and, for 401/403, which credentials were sent (never the token itself).

Kept apart from kubeflow.py so that importing the command line does not import kfp.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import urllib3

from mlstages.components.common.errors import ParameterError
from mlstages.tooling.cron import rfc3339
from mlstages.tooling.kfp_runs import CompiledPipeline, PipelineVersion
from mlstages.tooling.kfp_target import DEFAULT_TIMEOUT, UI_ENV, Auth, KubeflowError, check_host, ui_base

# --- a kfp client whose every call is bounded ----------------------------------------------------


class _BoundedRESTClient(kfp_server_api.rest.RESTClientObject):
    """kfp_server_api's REST client with a connect and a read timeout on every request; the
    generated API passes ``_request_timeout=None`` unless told, which urllib3 reads as "wait
    forever"."""

    def __init__(self, configuration: Any, timeout: float) -> None:
        super().__init__(configuration)
        # A (connect, read) pair: rest.py turns a float into no timeout at all.
        self._timeout = (timeout, timeout)

    def request(self, method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return super().request(
            method, url, *args, _request_timeout=_request_timeout or self._timeout, **kwargs
        )


class KubeflowClient(kfp.Client):
    """``kfp.Client`` with every request bounded by ``timeout`` seconds (connect, and each wait
    for data) and no transport retries, one health check, and nothing read from or written to
    ~/.config/kfp/context.json: the command line says everything."""

    def __init__(
        self,
        host: str,
        *,
        timeout: float,
        auth: Auth,
        namespace: str | None = None,
        ca_cert: str | None = None,
    ) -> None:
        self._timeout = timeout
        self._given_namespace = namespace or ""
        self.healthz: Any = None
        with warnings.catch_warnings():
            # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later versions."
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(
                host=host, namespace=namespace or "kubeflow", ssl_ca_cert=ca_cert, **auth.client_options()
            )
        if self.healthz is None:
            self.get_kfp_healthz()

    def _bound_every_request(self) -> None:
        api_client = self._healthz_api.api_client
        if not isinstance(api_client.rest_client, _BoundedRESTClient):
            configuration = api_client.configuration
            # No retries: a retried read timeout would multiply --timeout. Redirects are not
            # followed but returned (a login page is a 302, and its HTML is not the API's JSON).
            configuration.retries = urllib3.Retry(total=0, redirect=0, raise_on_redirect=False)
            api_client.rest_client = _BoundedRESTClient(configuration, self._timeout)

    def _load_context_setting_or_default(self) -> None:
        self._context_setting = {"namespace": self._given_namespace}

    def set_user_namespace(self, namespace: str) -> None:
        # kfp writes the namespace into ~/.config/kfp/context.json here; keep it to this client.
        self._context_setting["namespace"] = namespace

    def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
        # kfp's own tries five times, five seconds apart, logging a traceback each time. And the
        # generated client turns any 200 answer into a response object, even a dashboard's HTML
        # page, so the answer is read here: a host that is not the pipelines API is caught now,
        # before anything is uploaded.
        self._bound_every_request()
        answer = self._healthz_api.healthz_service_get_healthz(_preload_content=False)
        try:
            body = json.loads(answer.data)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            kind = answer.headers.get("Content-Type", "no content type")
            raise KubeflowError(
                f"{self._existing_config.host} answered the health check with something other than the "
                f"Kubeflow Pipelines API's JSON ({kind}): is --host the pipelines API? Use "
                "https://KUBEFLOW/pipeline for a full Kubeflow"
            )
        self.healthz = kfp_server_api.V2beta1GetHealthzResponse(
            multi_user=body.get("multi_user"), pipeline_store=body.get("pipeline_store")
        )
        return self.healthz


# --- turning failures into messages --------------------------------------------------------------


def _body_message(exc: kfp_server_api.ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        text = " ".join(str(body).split())
        return text[:200] + ("..." if len(text) > 200 else "")
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("error_message") or parsed.get("error") or parsed)
    return str(parsed)


def describe_http_error(exc: kfp_server_api.ApiException, *, host: str, what: str, auth: Auth) -> str:
    status = exc.status
    message = _body_message(exc)
    detail = f": {message}" if message else ""
    if status in (301, 302, 303, 307, 308):
        location = exc.headers.get("Location", "") if exc.headers else ""
        return (
            f"{host} redirected to {location or 'another page'} (HTTP {status}) while {what}: usually a "
            f"login page in front of Kubeflow (Dex, oauth2-proxy). Auth used: {auth.description}; give a "
            "token with --token-env VAR or --token-file PATH"
        )
    if status == 401:
        hint = (
            "give a token with --token-env VAR or --token-file PATH"
            if auth.token is None and auth.token_path is None
            else "the token may have expired or be meant for another audience"
        )
        return (
            f"{host} refused the credentials (401 Unauthorized) while {what}{detail}. "
            f"Auth used: {auth.description}; {hint}"
        )
    if status == 403:
        return (
            f"{host} denied access (403 Forbidden) while {what}{detail}. Auth used: {auth.description}; "
            "the identity may lack access to this namespace (--namespace)"
        )
    # An unknown route: no body, or grpc-gateway's bare "Not Found" (a missing run says which).
    if status == 404 and message.strip().lower() in ("", "not found", "404 page not found"):
        return (
            f"{host} has no such API route (404) while {what}: is it the Kubeflow Pipelines API? Use "
            "https://KUBEFLOW/pipeline for a full Kubeflow, or http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"
        )
    if status == 0:
        return (
            f"TLS error talking to {host} while {what}: {exc.reason}. Give the CA certificate with --ca-cert"
        )
    return f"{host} answered {status} {exc.reason or ''} while {what}{detail}".replace("  ", " ")


def describe_network_error(exc: Exception, *, host: str, what: str, timeout: float) -> str:
    reason = getattr(exc, "reason", None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    reason = reason or exc
    # urllib3's NewConnectionError (refused, unreachable, no such host) is a subclass of
    # ConnectTimeoutError, so it is tested first.
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return f"cannot resolve the host name of {host} while {what}: check --host"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = str(reason).split("Failed to establish a new connection: ", 1)[-1]
        return f"cannot connect to {host} while {what}: {text}"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection to {host} within {timeout:g} s (--timeout) while {what}"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return (
            f"{host} accepted the connection but did not answer within {timeout:g} s (--timeout) while {what}"
        )
    if isinstance(reason, urllib3.exceptions.SSLError):
        return f"TLS error talking to {host} while {what}: {reason}. Give the CA certificate with --ca-cert"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return f"{host} closed the connection while {what}: {reason}"
    return f"request to {host} failed while {what}: {reason}"


# --- the connection ----------------------------------------------------------------------------


def _numbers_as_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def same_spec(stored: Any, ours: Mapping[str, Any]) -> bool:
    """Whether a version's pipeline_spec, as the server returns it, is the compiled spec. The
    server keeps specs as protobuf Structs, whose numbers are all doubles."""
    return _numbers_as_floats(stored) == _numbers_as_floats(ours)


def _filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


class Connection:
    """One Kubeflow Pipelines API: the bounded kfp client, and every call's failure turned into a
    KubeflowError naming the host and what was being done."""

    def __init__(
        self,
        host: str,
        *,
        auth: Auth,
        timeout: float = DEFAULT_TIMEOUT,
        namespace: str | None = None,
        ca_cert: str | None = None,
        ui_url: str | None = None,
    ) -> None:
        self.host = check_host(host)
        if timeout <= 0:
            raise ParameterError(f"--timeout {timeout:g}: expected a number of seconds above 0")
        self.auth = auth
        self.timeout = timeout
        self.ui = ui_base(self.host, ui_url or os.environ.get(UI_ENV))
        with self.calling("checking the API (healthz)"):
            self.client = KubeflowClient(
                self.host, timeout=timeout, auth=auth, namespace=namespace, ca_cert=ca_cert
            )
        self.multi_user = bool(getattr(self.client.healthz, "multi_user", False))
        self.namespace = namespace or (self.client.get_user_namespace() if self.multi_user else "") or None
        if self.multi_user and not self.namespace:
            raise KubeflowError(
                f"{self.host} is a multi-user Kubeflow Pipelines: give --namespace (your profile's namespace)"
            )

    @contextlib.contextmanager
    def calling(self, what: str) -> Iterator[None]:
        try:
            # The kfp client prints its own links to stdout; this module reports what it did.
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        except kfp_server_api.ApiException as exc:
            raise KubeflowError(
                describe_http_error(exc, host=self.host, what=what, auth=self.auth), status=exc.status
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise KubeflowError(
                describe_network_error(exc, host=self.host, what=what, timeout=self.timeout)
            ) from None
        except OSError as exc:  # a token file that went away between two calls
            raise KubeflowError(
                f"cannot read the credentials ({self.auth.description}) while {what}: {exc.strerror or exc}"
            ) from None

    def describe(self) -> str:
        mode = f"multi-user, namespace {self.namespace}" if self.multi_user else "single-user"
        return f"Kubeflow Pipelines at {self.host} ({mode}); auth: {self.auth.description}"

    # --- pipelines ---------------------------------------------------------------------------

    def _find_pipeline(self, name: str) -> Any:
        with self.calling(f"looking up pipeline {name!r}"):
            found = self.client.list_pipelines(filter=_filter("display_name", name), namespace=self.namespace)
        pipelines = found.pipelines or []
        if len(pipelines) > 1:
            raise KubeflowError(
                f"{self.host} has {len(pipelines)} pipelines named {name!r}; give --pipeline-name"
            )
        return pipelines[0] if pipelines else None

    def _versions(self, pipeline_id: str, **query: Any) -> list[Any]:
        with self.calling("listing pipeline versions"):
            return self.client.list_pipeline_versions(pipeline_id, **query).pipeline_versions or []

    def ensure_version(
        self,
        compiled: CompiledPipeline,
        *,
        pipeline_name: str,
        name: str,
        name_given: bool,
        description: str,
    ) -> PipelineVersion:
        """The pipeline version holding exactly ``compiled``: uploaded the first time (KFP names a
        pipeline's first version after the pipeline), otherwise the version called ``name`` or
        the newest one when either holds this spec, otherwise a new version ``name``."""
        ours = compiled.as_server_struct()
        with tempfile.TemporaryDirectory() as scratch:
            package = Path(scratch) / f"{compiled.display_name}.yaml"
            package.write_text(compiled.text, encoding="utf-8")
            pipeline = self._find_pipeline(pipeline_name)
            if pipeline is None:
                with self.calling(f"uploading pipeline {pipeline_name!r}"):
                    pipeline = self.client.upload_pipeline(
                        str(package),
                        pipeline_name=pipeline_name,
                        description=description,
                        namespace=self.namespace,
                    )
                (first,) = self._versions(pipeline.pipeline_id, page_size=1) or [None]
                if first is None:
                    raise KubeflowError(f"{self.host} created pipeline {pipeline_name!r} without a version")
                return PipelineVersion(
                    pipeline.pipeline_id, first.pipeline_version_id, first.display_name, "new pipeline"
                )
            named = self._versions(pipeline.pipeline_id, filter=_filter("display_name", name))
            if named:
                version = named[0]
                # A default name is derived from the spec's digest, so it names this spec. A name
                # the user gave may name anything: it is reused only when it holds this spec.
                if name_given and not same_spec(version.pipeline_spec, ours):
                    raise KubeflowError(
                        f"pipeline {pipeline_name!r} already has a version {name!r} with a different spec; "
                        "give another --version-name, or leave it out (the default is derived from the spec)"
                    )
                return PipelineVersion(
                    pipeline.pipeline_id, version.pipeline_version_id, name, "existing version"
                )
            if not name_given:
                # KFP names a pipeline's first version after the pipeline: found by its spec.
                newest = self._versions(pipeline.pipeline_id, sort_by="created_at desc", page_size=1)
                if newest and same_spec(newest[0].pipeline_spec, ours):
                    version = newest[0]
                    return PipelineVersion(
                        pipeline.pipeline_id,
                        version.pipeline_version_id,
                        version.display_name,
                        "existing version",
                    )
            with self.calling(f"uploading version {name!r} of pipeline {pipeline_name!r}"):
                version = self.client.upload_pipeline_version(
                    str(package), name, pipeline_id=pipeline.pipeline_id, description=description
                )
            return PipelineVersion(pipeline.pipeline_id, version.pipeline_version_id, name, "new version")

    # --- experiments, runs, recurring runs ---------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        with self.calling(f"finding or creating experiment {name!r}"):
            try:
                return self.client.create_experiment(name, namespace=self.namespace).experiment_id
            except ValueError as exc:  # kfp: several experiments with that name
                raise KubeflowError(f"experiment {name!r}: {exc}") from None

    def create_run(
        self,
        version: PipelineVersion,
        *,
        experiment_id: str,
        run_name: str,
        params: Mapping[str, Any],
        pipeline_root: str | None,
        service_account: str | None,
    ) -> str:
        with self.calling(f"creating run {run_name!r}"):
            run = self.client.run_pipeline(
                experiment_id,
                run_name,
                params=dict(params),
                pipeline_id=version.pipeline_id,
                version_id=version.version_id,
                pipeline_root=pipeline_root,
                service_account=service_account,
            )
        return run.run_id

    def get_run(self, run_id: str) -> Any:
        with self.calling(f"reading run {run_id}"):
            return self.client.get_run(run_id)

    def existing_recurring_runs(self, experiment_id: str, name: str) -> list[Any]:
        with self.calling(f"looking up recurring run {name!r}"):
            found = self.client.list_recurring_runs(
                experiment_id=experiment_id, filter=_filter("display_name", name)
            )
        return found.recurring_runs or []

    def delete_recurring_run(self, recurring_run_id: str) -> None:
        with self.calling(f"deleting recurring run {recurring_run_id}"):
            self.client.delete_recurring_run(recurring_run_id)

    def create_recurring_run(
        self,
        version: PipelineVersion,
        *,
        experiment_id: str,
        name: str,
        cron: str,
        params: Mapping[str, Any],
        max_concurrency: int,
        no_catchup: bool,
        start: dt.datetime | None,
        end: dt.datetime | None,
        pipeline_root: str | None,
        service_account: str | None,
        enabled: bool = True,
    ) -> str:
        with self.calling(f"creating recurring run {name!r}"):
            recurring = self.client.create_recurring_run(
                experiment_id,
                name,
                cron_expression=cron,
                start_time=rfc3339(start) if start else None,
                end_time=rfc3339(end) if end else None,
                max_concurrency=max_concurrency,
                no_catchup=no_catchup,
                params=dict(params),
                pipeline_id=version.pipeline_id,
                version_id=version.version_id,
                enabled=enabled,
                pipeline_root=pipeline_root,
                service_account=service_account,
            )
        return recurring.recurring_run_id
