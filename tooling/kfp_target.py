"""Where and as whom to talk to Kubeflow Pipelines: the host, the UI addresses and the token."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlstages.components.common.errors import MlstagesError, ParameterError

if TYPE_CHECKING:
    pass


DEFAULT_TOKEN_ENV = "MLSTAGES_KFP_TOKEN"


# kfp's own variables: the API endpoint, the UI's address, and where a pod's audience-bound
# Kubeflow Pipelines token is (a projected volume, as Kubeflow's PodDefaults mount it).
HOST_ENV = "KF_PIPELINES_ENDPOINT"


UI_ENV = "KF_PIPELINES_UI_ENDPOINT"


KFP_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"


KFP_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"


SERVICE_ACCOUNT_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


DEFAULT_TIMEOUT = 30.0


DEFAULT_WAIT_TIMEOUT = 6 * 3600.0


DEFAULT_POLL_INTERVAL = 10.0


DEFAULT_EXPERIMENT = "mlstages"


TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")


# KFP's API server refuses a recurring run's max_concurrency outside 1..10.
MAX_CONCURRENCY_RANGE = (1, 10)


# While waiting for a run, this many failed polls in a row (network, 5xx) end the wait; one
# blip in a run of hours should not.
WAIT_POLL_FAILURES = 3


class KubeflowError(MlstagesError):
    """The Kubeflow Pipelines API could not be reached, did not answer in time, or refused a
    request. ``status`` is the HTTP status when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Auth:
    """Where the bearer token comes from. ``description`` is what messages show; the token itself
    is never shown (``repr`` leaves it out)."""

    description: str
    token: str | None = field(default=None, repr=False)
    token_path: str | None = None  # read again on every request: projected tokens rotate

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of kfp.Client for these credentials."""
        if self.token is not None:
            return {"existing_token": self.token}
        if self.token_path is not None:
            from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

            return {"credentials": ServiceAccountTokenVolumeCredentials(self.token_path)}
        return {}


def _readable_token_file(path: str) -> bool:
    try:
        return bool(Path(path).read_text(encoding="utf-8").strip())
    except OSError:
        return False


def resolve_auth(
    token_env: str | None = None,
    token_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    in_cluster_token_paths: tuple[str, ...] | None = None,
) -> Auth:
    """The credentials to send, in this order: ``token_file``; the environment variable
    ``token_env`` (which must then be set); MLSTAGES_KFP_TOKEN when set; in a pod, the Kubeflow
    Pipelines token (KF_PIPELINES_SA_TOKEN_PATH or /var/run/secrets/kubeflow/pipelines/token),
    then the pod's service-account token; otherwise none."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = str(token_file)
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ParameterError(f"--token-file {path}: no such file") from None
        except OSError as exc:
            raise ParameterError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
        if not token:
            raise ParameterError(f"--token-file {path} is empty")
        return Auth(f"the token in {path} (--token-file)", token_path=path)
    if token_env is not None:
        token = environ.get(token_env, "").strip()
        if not token:
            raise ParameterError(
                f"--token-env {token_env}: the environment variable {token_env} is not set or empty"
            )
        return Auth(f"the token in ${token_env} (--token-env)", token=token)
    token = environ.get(DEFAULT_TOKEN_ENV, "").strip()
    if token:
        return Auth(f"the token in ${DEFAULT_TOKEN_ENV}", token=token)
    if in_cluster_token_paths is None:
        in_cluster_token_paths = (
            environ.get(KFP_TOKEN_PATH_ENV) or KFP_TOKEN_PATH,
            SERVICE_ACCOUNT_TOKEN_PATH,
        )
    for path in in_cluster_token_paths:
        if _readable_token_file(path):
            return Auth(f"this pod's service-account token ({path})", token_path=path)
    return Auth("no token")


def check_host(host: str | None) -> str:
    """The API address without a trailing slash; refuses what the kfp client would silently
    rewrite (no scheme → https://) or cannot use."""
    if not host:
        raise ParameterError(
            f"no Kubeflow Pipelines address: give --host URL (or set {HOST_ENV}), for example "
            "https://kubeflow.example.com/pipeline or http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"
        )
    parts = urllib.parse.urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ParameterError(f"--host {host!r}: expected an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ParameterError(f"--host {host!r}: expected an address without a query or #fragment")
    return host.rstrip("/")


def ui_base(host: str, ui_url: str | None = None) -> str:
    """Where the Kubeflow Pipelines UI is for API address ``host``. A full Kubeflow serves the
    API at https://HOST/pipeline and shows the pipelines UI inside its central dashboard at
    https://HOST/_/pipeline/; a port-forwarded ml-pipeline-ui serves both at its root."""
    if ui_url:
        return ui_url.rstrip("/")
    parts = urllib.parse.urlsplit(host)
    path = parts.path.rstrip("/")
    if path.endswith("/pipeline"):
        path = path[: -len("/pipeline")] + "/_/pipeline"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def run_url(ui: str, run_id: str) -> str:
    return f"{ui}/#/runs/details/{run_id}"


def recurring_run_url(ui: str, recurring_run_id: str) -> str:
    return f"{ui}/#/recurringrun/details/{recurring_run_id}"


def pipeline_version_url(ui: str, pipeline_id: str, version_id: str) -> str:
    return f"{ui}/#/pipelines/details/{pipeline_id}/version/{version_id}"
