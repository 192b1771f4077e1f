"""The gs:// client: endpoint (Google or the emulator), credentials, retries, and errors named by URI."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY, ConditionalRetryPolicy, is_generation_specified
from urllib3 import exceptions as urllib3_exceptions

from mlstages.components.common.errors import (
    MlstagesError,
    ParameterError,
    StorageError,
    StorageNotFound,
    object_exists,
)

if TYPE_CHECKING:
    from google.cloud import storage as gcs
from mlstages.components.common.storage.uris import _object_name, split_gcs_uri

DEFAULT_EMULATOR_PROJECT = "mlstages-local"


GCS_ENDPOINT = "https://storage.googleapis.com"


# How long transient failures are retried before giving up; an environment variable so that
# tests (and impatient local runs) can shorten it without a code change.
RETRY_TIMEOUT_ENV = "MLSTAGES_GCS_RETRY_TIMEOUT"


DEFAULT_RETRY_TIMEOUT_SECONDS = 120.0


REQUEST_TIMEOUT_SECONDS = (10.0, 120.0)  # (connect, read)


# google-cloud-storage's default resumable chunk: large enough for GCS throughput, and the most a
# single upload holds in memory.
UPLOAD_CHUNK_BYTES = 100 * 1024 * 1024


def client() -> gcs.Client:
    """The google-cloud-storage client for the current environment, cached per endpoint and project.

    With STORAGE_EMULATOR_HOST set: anonymous credentials and the project from GOOGLE_CLOUD_PROJECT
    (default ``mlstages-local``). Otherwise Google's default credentials.
    """
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or (DEFAULT_EMULATOR_PROJECT if emulator else None)
    return _client(emulator, project)


@functools.lru_cache(maxsize=8)
def _client(emulator: str, project: str | None) -> gcs.Client:
    from google.cloud import storage as gcs

    if emulator:
        from google.auth.credentials import AnonymousCredentials

        return gcs.Client(project=project, credentials=AnonymousCredentials())
    try:
        return gcs.Client(project=project)
    except auth_exceptions.DefaultCredentialsError as exc:
        raise StorageError(
            "no Google Cloud credentials found: run with workload identity or a Kubernetes secret "
            "named in GOOGLE_APPLICATION_CREDENTIALS, or set STORAGE_EMULATOR_HOST for a local "
            f"emulator ({exc})"
        ) from exc


def endpoint() -> str:
    """Where gs:// requests go: the emulator named by STORAGE_EMULATOR_HOST, or Google's endpoint."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    return f"the GCS emulator at {emulator}" if emulator else GCS_ENDPOINT


def retry_policy() -> Retry:
    """google-cloud-storage's DEFAULT_RETRY with this suite's overall timeout."""
    return DEFAULT_RETRY.with_timeout(_retry_seconds())


def _retry_seconds() -> float:
    raw = os.environ.get(RETRY_TIMEOUT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_RETRY_TIMEOUT_SECONDS
    except ValueError as exc:
        raise ParameterError(
            f"environment variable {RETRY_TIMEOUT_ENV}={raw!r} must be a number of seconds"
        ) from exc


def _conditional_retry() -> ConditionalRetryPolicy:
    # Writes are only retried when they carry a generation precondition, which makes a repeat of
    # a request that in fact succeeded fail with 412 instead of writing twice. Every write here
    # carries one, so this is the same as retry_policy(); it keeps that guarantee explicit.
    return ConditionalRetryPolicy(retry_policy(), is_generation_specified, ["query_params"])


_TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    TimeoutError,
    auth_exceptions.TransportError,
    api_exceptions.RetryError,
)


# Failures that mean the connection was never made: the store is down, the name does not
# resolve, or nothing listens on the port. Anything else in _TRANSIENT broke a connection that was
# open.
_NOT_CONNECTED = (
    ConnectionRefusedError,
    requests.exceptions.ConnectTimeout,
    urllib3_exceptions.NewConnectionError,  # a subclass of ConnectTimeoutError in urllib3 2
    urllib3_exceptions.ConnectTimeoutError,
    urllib3_exceptions.NameResolutionError,
    socket.gaierror,
)


@contextmanager
def _gcs_errors(uri: str, action: str, *, upload: bool = False) -> Iterator[None]:
    """Turn google-cloud-storage's exceptions into the suite's, with the URI and endpoint named.

    The one place where a failure is told apart and worded, as one line that says what happened:

    - the store is unreachable (no connection after retrying): which endpoint, and for how long;
    - an upload was interrupted (``upload=True``: the connection broke or the resumable session
      vanished after the store had answered the lookup or listing that precedes every upload):
      nothing was published, since GCS creates an object only when its upload is finalized;
    - a precondition failed (HTTP 412): the object exists (or changed) and is not overwritten;
    - not found, permission denied, corrupted in transit, any other HTTP answer.
    """
    where = endpoint()  # now: the environment may change while a long transfer runs
    try:
        yield
    except MlstagesError:
        raise
    except (api_exceptions.NotFound, InvalidResponse) as exc:
        status = getattr(exc, "code", None) or getattr(getattr(exc, "response", None), "status_code", "?")
        if status not in (404, 410):
            raise StorageError(f"cannot {action} {uri}: {where} answered HTTP {status}") from exc
        if upload and _bucket_exists(uri):
            # An upload does not look an object up: a 404 there is its resumable session, gone
            # (expired, or the store restarted), not a missing object.
            raise _interrupted(uri, where, "the upload session no longer exists on the store") from exc
        raise _not_found(uri) from exc
    except api_exceptions.PreconditionFailed as exc:
        raise object_exists(uri, f"or changed since it was read: {where} answered HTTP 412") from exc
    except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
        raise StorageError(
            f"cannot {action} {uri}: permission denied by {where} (HTTP {exc.code}): give the "
            "pipeline's service account access to the bucket (for example roles/storage.objectAdmin)"
        ) from exc
    except _TRANSIENT as exc:
        if upload:
            raise _interrupted(uri, where, _reason(exc)) from exc
        raise StorageError(
            f"cannot {action} {uri}: {where} is unreachable ({_reason(exc)}); gave up "
            f"after retrying for {_retry_seconds():g} s (set {RETRY_TIMEOUT_ENV} to retry longer)"
        ) from exc
    except api_exceptions.GoogleAPICallError as exc:
        raise StorageError(f"cannot {action} {uri}: {where} answered HTTP {exc.code}: {exc.message}") from exc
    except DataCorruption as exc:
        raise StorageError(f"cannot {action} {uri}: the data was corrupted in transit ({exc})") from exc
    except auth_exceptions.GoogleAuthError as exc:
        raise StorageError(f"cannot {action} {uri}: authentication failed: {exc}") from exc


def _interrupted(uri: str, where: str, reason: str) -> StorageError:
    return StorageError(
        f"the upload of {uri} to {where} was interrupted ({reason}); nothing was published, run again"
    )


def _bucket_exists(uri: str) -> bool:
    bucket, _ = split_gcs_uri(uri)
    try:
        return bool(client().bucket(bucket).exists(retry=retry_policy()))
    except Exception:  # the question is only for a better message; assume the usual case
        return True


def _reason(exc: BaseException) -> str:
    """The innermost useful cause: "Connection refused" rather than urllib3's wrapping of it."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        nested = getattr(current, "cause", None) or getattr(current, "reason", None)
        if not isinstance(nested, BaseException) and current.args:
            nested = current.args[0] if isinstance(current.args[0], BaseException) else None
        current = nested if isinstance(nested, BaseException) else (current.__cause__ or current.__context__)
    refused = next((e for e in seen if isinstance(e, _NOT_CONNECTED)), None)
    innermost = refused or seen[-1]
    text = str(innermost) or innermost.__class__.__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _not_found(uri: str) -> StorageNotFound:
    bucket, _ = split_gcs_uri(uri)
    if not _bucket_exists(uri):
        return StorageNotFound(
            f"{uri}: bucket {bucket!r} does not exist at {endpoint()}: create it or fix the bucket name"
        )
    return StorageNotFound(f"{uri}: no such object (bucket {bucket!r} has nothing under that name)")


def _blob(uri: str) -> gcs.Blob:
    bucket, name = _object_name(uri)
    return client().bucket(bucket).blob(name, chunk_size=UPLOAD_CHUNK_BYTES)


def _lookup(uri: str) -> gcs.Blob | None:
    """The object's metadata (generation, size, custom metadata), or None if there is none."""
    bucket, name = _object_name(uri)
    with _gcs_errors(uri, "look up"):
        return client().bucket(bucket).get_blob(name, retry=retry_policy(), timeout=REQUEST_TIMEOUT_SECONDS)
