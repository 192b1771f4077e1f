"""Object storage I/O for every stage: ``gs://`` URIs and local paths through one set of functions.

Every function takes either a ``gs://bucket/object`` URI or a local path (plain or ``file://``) and
behaves the same way on both:

- writes are atomic: a reader sees the old content or the new, never a half-written object or file;
- ``if_absent=True`` refuses to replace what is already there, which is how versions are kept from
  overwriting one another;
- the sha256 of what is written is returned and, on GCS, recorded in the object's custom metadata;
  reads verify it (or the digest the caller passes) and raise DigestMismatch on a difference;
- large files stream between disk and the network in chunks;
- transient failures are retried with google-cloud-storage's retry policy; what cannot be completed
  raises StorageError / StorageNotFound naming the URI and the endpoint.

A "prefix" (``list_uris``, ``upload_dir``, ``download_dir``) names a folder: ``gs://b/data`` and
``gs://b/data/`` both mean the objects under ``data/`` (not ``data2/`` or ``data.csv``), exactly as a
local directory path does.

With STORAGE_EMULATOR_HOST set (see emulator.py) the client talks to that emulator anonymously;
otherwise it uses Google's default credentials (workload identity or
GOOGLE_APPLICATION_CREDENTIALS), never credentials written into code.
"""

from __future__ import annotations

import functools
import hashlib
import io
import mimetypes
import os
import re
import shutil
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY, ConditionalRetryPolicy, is_generation_specified

from mlstages.components.common.artifacts import file_sha256 as sha256_file
from mlstages.components.common.errors import (
    DigestMismatch,
    MlstagesError,
    ParameterError,
    StorageError,
    StorageNotFound,
)

if TYPE_CHECKING:
    from google.cloud import storage as gcs

SHA256_METADATA_KEY = "sha256"
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
LOCAL_COPY_CHUNK_BYTES = 4 * 1024 * 1024
DOWNLOAD_READ_BYTES = 1024 * 1024
LIST_PAGE_SIZE = 1000  # the JSON API's maximum page size
# Folder transfers run this many objects at a time; google-cloud-storage's transfer_manager also
# shares one client between threads.
TRANSFER_THREADS = 8
# An upload that loses a precondition race to another writer in overwrite mode starts again this
# many times before giving up.
OVERWRITE_ATTEMPTS = 3
_PARTIAL_SUFFIX = ".partial"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$")
_MAX_OBJECT_NAME_BYTES = 1024
T = TypeVar("T")
_UNKNOWN = object()  # "not looked up yet", as opposed to None, "looked up and absent"


# --- URIs ----------------------------------------------------------------------------------------


def is_gcs_uri(uri: str) -> bool:
    """True for ``gs://`` URIs; False for local paths and ``file://`` URIs."""
    return isinstance(uri, str) and uri[:5].lower() == "gs://"


def validate_bucket_name(name: str) -> str:
    """Return ``name`` if it is a valid GCS bucket name, else raise a ParameterError naming it."""
    parts = name.split(".")
    if (
        not _BUCKET_NAME.match(name)
        or not 3 <= len(name) <= 222
        or (len(parts) == 1 and len(name) > 63)
        or any(not part or len(part) > 63 for part in parts)
    ):
        raise ParameterError(
            f"bucket name {name!r} is not valid: use 3-63 lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return name


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/name`` into ``(bucket, name)``; name is empty for the bucket itself."""
    if not is_gcs_uri(uri):
        raise ParameterError(f"{uri!r} is not a gs:// URI: write it as gs://bucket/object-name")
    bucket, _, name = uri[5:].partition("/")
    if not bucket:
        raise ParameterError(f"{uri!r} has no bucket name: write it as gs://bucket/object-name")
    validate_bucket_name(bucket)
    if len(name.encode("utf-8")) > _MAX_OBJECT_NAME_BYTES:
        raise ParameterError(f"{uri!r}: object names are at most {_MAX_OBJECT_NAME_BYTES} bytes (UTF-8)")
    if "\r" in name or "\n" in name:
        raise ParameterError(f"{uri!r}: object names cannot contain line breaks")
    return bucket, name


def gcs_uri(bucket: str, name: str = "") -> str:
    """The ``gs://`` URI of an object (or of the bucket when name is empty)."""
    return f"gs://{bucket}/{name}"


def _object_name(uri: str) -> tuple[str, str]:
    bucket, name = split_gcs_uri(uri)
    if not name or name.endswith("/"):
        raise ParameterError(f"{uri!r} names a bucket or a folder, not an object: add the object name")
    return bucket, name


def _folder_prefix(name: str) -> str:
    return name if not name or name.endswith("/") else name + "/"


def to_local_path(uri: str | os.PathLike) -> Path:
    """The local path of a plain path or a ``file://`` URI; other schemes raise a ParameterError."""
    text = os.fspath(uri)
    if text.lower().startswith("file://"):
        parts = urllib.parse.urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ParameterError(
                f"{text!r} names host {parts.netloc!r}: file:// URIs must be local (file:///path)"
            )
        return Path(urllib.parse.unquote(parts.path))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", text):
        raise ParameterError(f"{text!r}: unsupported scheme; use gs://, file:// or a local path")
    return Path(text)


def join_uri(prefix: str, relative: str) -> str:
    """``prefix`` (a gs:// folder, file:// folder or local directory) joined with a relative name."""
    if is_gcs_uri(prefix) or prefix.lower().startswith("file://"):
        return prefix.rstrip("/") + "/" + relative
    return str(Path(prefix) / relative)


# --- client, retries and errors --------------------------------------------------------------------


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
    raw = os.environ.get(RETRY_TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_RETRY_TIMEOUT_SECONDS
    except ValueError as exc:
        raise ParameterError(
            f"environment variable {RETRY_TIMEOUT_ENV}={raw!r} must be a number of seconds"
        ) from exc
    return DEFAULT_RETRY.with_timeout(seconds)


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


@contextmanager
def _gcs_errors(uri: str, action: str) -> Iterator[None]:
    """Turn google-cloud-storage's exceptions into the suite's, with the URI and endpoint named."""
    where = endpoint()  # now: the environment may change while a long transfer runs
    try:
        yield
    except MlstagesError:
        raise
    except api_exceptions.NotFound as exc:
        raise _not_found(uri) from exc
    except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
        raise StorageError(
            f"cannot {action} {uri}: permission denied by {where} (HTTP {exc.code}): give the "
            "pipeline's service account access to the bucket (for example roles/storage.objectAdmin)"
        ) from exc
    except _TRANSIENT as exc:
        raise StorageError(
            f"cannot {action} {uri}: {where} did not answer ({_reason(exc)}); gave up after "
            f"retrying (set {RETRY_TIMEOUT_ENV} to retry longer)"
        ) from exc
    except api_exceptions.GoogleAPICallError as exc:
        raise StorageError(f"cannot {action} {uri}: {where} answered HTTP {exc.code}: {exc.message}") from exc
    except DataCorruption as exc:
        raise StorageError(f"cannot {action} {uri}: the data was corrupted in transit ({exc})") from exc
    except InvalidResponse as exc:
        status = getattr(exc.response, "status_code", "?")
        if status == 404:
            raise _not_found(uri) from exc
        raise StorageError(f"cannot {action} {uri}: {where} answered HTTP {status}") from exc
    except auth_exceptions.GoogleAuthError as exc:
        raise StorageError(f"cannot {action} {uri}: authentication failed: {exc}") from exc


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    text = str(cause or exc) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _not_found(uri: str) -> StorageNotFound:
    bucket, _ = split_gcs_uri(uri)
    try:
        bucket_exists = client().bucket(bucket).exists(retry=retry_policy())
    except Exception:  # the question is only for a better message; keep the original error
        bucket_exists = True
    if not bucket_exists:
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


def _stored_sha256(blob: gcs.Blob) -> str:
    return (blob.metadata or {}).get(SHA256_METADATA_KEY, "")


# --- digests -------------------------------------------------------------------------------------


class _HashingWriter:
    """A file-like sink that hashes what passes through it."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.sink.write(data)

    def flush(self) -> None:
        self.sink.flush()


def _check_digest(uri: str, actual: str, expected: str, where: str) -> None:
    if expected and actual != expected.lower():
        raise DigestMismatch(
            f"{uri}: sha256 of the bytes read is {actual}, but {where} says {expected}; the object "
            "is corrupt or was replaced: write it again or fix the expected digest"
        )


def _expected_digest(given: str | None, stored: str) -> tuple[str, str]:
    if given:
        return given, "the sha256 argument"
    return stored, "the sha256 recorded in the object's metadata"


# --- local files ---------------------------------------------------------------------------------


def _partial_path(path: Path) -> Path:
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{_PARTIAL_SUFFIX}"


def _is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(_PARTIAL_SUFFIX)


def _local_source(uri: str) -> Path:
    path = to_local_path(uri)
    if path.is_dir():
        raise ParameterError(f"{uri} is a directory, not a file: name a file")
    if not path.is_file():
        raise StorageNotFound(f"{uri}: no such file")
    return path


def _local_write(path: Path, fill: Callable[[IO[bytes]], str], if_absent: bool, shown: str) -> str:
    """Write through ``fill`` (which returns the sha256) beside ``path``, then move it into place.

    The final step is a rename, so readers never see a partial file; with ``if_absent`` it is a
    hard link, which fails atomically if something already has the name. There is no fsync: it cost
    about 40% of download throughput here, and it only protects against the machine (not the
    process) crashing, after which a pipeline task is run again anyway.
    """
    if path.is_dir():
        raise ParameterError(f"{shown} is a directory: name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot write {shown}: cannot create its folder: {exc}") from exc
    partial = _partial_path(path)
    try:
        with open(partial, "wb") as handle:
            digest = fill(handle)
        if if_absent:
            _link_if_absent(partial, path, shown, digest)
        else:
            os.replace(partial, path)
    except MlstagesError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot write {shown}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return digest


def _link_if_absent(partial: Path, path: Path, shown: str, digest: str) -> None:
    try:
        os.link(partial, path)
    except FileExistsError:
        if sha256_file(path) != digest:
            _refuse_local_overwrite(path, shown)
    except OSError:
        # Some filesystems have no hard links; fall back to check-then-rename (racy only against
        # another writer of the same name at the same instant).
        if path.exists():
            if sha256_file(path) != digest:
                _refuse_local_overwrite(path, shown)
            return
        os.replace(partial, path)


def _refuse_local_overwrite(path: Path, shown: str) -> None:
    raise StorageError(
        f"{shown} already exists and if_absent=True does not replace it: "
        "write a new version under a new name, or delete it first"
    )


def _copy_stream(source: IO[bytes], sink: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := source.read(LOCAL_COPY_CHUNK_BYTES):
        digest.update(chunk)
        sink.write(chunk)
    return digest.hexdigest()


def _local_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(_is_partial(part) for part in p.relative_to(root).parts)
    )


# --- reads ---------------------------------------------------------------------------------------


def exists(uri: str) -> bool:
    """Whether the object (or local file) exists. A bucket URI asks whether the bucket exists; a
    URI ending in ``/`` whether anything is under that folder (a local directory: whether it exists)."""
    if not is_gcs_uri(uri):
        return to_local_path(uri).exists()
    bucket, name = split_gcs_uri(uri)
    with _gcs_errors(uri, "check"):
        if not name:
            return client().bucket(bucket).exists(retry=retry_policy(), timeout=REQUEST_TIMEOUT_SECONDS)
        if name.endswith("/"):
            page = client().list_blobs(
                bucket, prefix=name, max_results=1, retry=retry_policy(), timeout=REQUEST_TIMEOUT_SECONDS
            )
            return any(True for _ in page)
        blob = client().bucket(bucket).blob(name)
        return blob.exists(retry=retry_policy(), timeout=REQUEST_TIMEOUT_SECONDS)


def read_bytes(uri: str, *, sha256: str | None = None) -> bytes:
    """The object's (or file's) content, verified against ``sha256`` or the recorded digest."""
    if not is_gcs_uri(uri):
        path = _local_source(uri)
        data = path.read_bytes()
        _check_digest(uri, hashlib.sha256(data).hexdigest(), sha256 or "", "the sha256 argument")
        return data
    buffer = io.BytesIO()
    _download(uri, buffer, sha256)
    return buffer.getvalue()


def download_file(uri: str, local_path: str | os.PathLike, *, sha256: str | None = None) -> str:
    """Copy the object (or file) at ``uri`` to ``local_path``; return its sha256.

    The bytes go to a temporary file beside the destination and are renamed into place only once
    the digest checks out, so a mismatch or failure leaves nothing at ``local_path``.
    """
    return _download_to_local(uri, local_path, sha256, if_absent=False)


def _download_to_local(
    uri: str,
    local_path: str | os.PathLike,
    sha256: str | None,
    *,
    if_absent: bool,
    blob: gcs.Blob | None = None,
) -> str:
    destination = to_local_path(local_path)
    shown = os.fspath(local_path)
    if not is_gcs_uri(uri):
        source = _local_source(uri)

        def fill(handle: IO[bytes]) -> str:
            with open(source, "rb") as reader:
                actual = _copy_stream(reader, handle)
            _check_digest(uri, actual, sha256 or "", "the sha256 argument")
            return actual

        return _local_write(destination, fill, if_absent, shown)
    return _local_write(destination, lambda handle: _download(uri, handle, sha256, blob), if_absent, shown)


@functools.cache
def _use_larger_download_reads() -> None:
    """Make google-cloud-storage read a download's response in DOWNLOAD_READ_BYTES pieces.

    It reads in 8 KiB pieces (the private ``_SINGLE_GET_CHUNK_SIZE``), which makes Python, not the
    network, the bottleneck: with hashing and writing to disk, 1 MiB reads downloaded about 2.5x
    faster from the emulator here, at the same bounded memory. Should a release drop the constant,
    this does nothing and downloads are only slower (a test checks that it is still there).
    """
    try:
        from google.cloud.storage._media.requests import _request_helpers
    except ImportError:
        return
    current = getattr(_request_helpers, "_SINGLE_GET_CHUNK_SIZE", None)
    if isinstance(current, int) and current < DOWNLOAD_READ_BYTES:
        _request_helpers._SINGLE_GET_CHUNK_SIZE = DOWNLOAD_READ_BYTES


def _download(uri: str, sink: IO[bytes], sha256: str | None, blob: gcs.Blob | None = None) -> str:
    """Stream the object into ``sink``, verify and return its sha256; ``blob`` is its metadata when
    the caller already has it (from a listing)."""
    _use_larger_download_reads()
    blob = blob or _lookup(uri)
    if blob is None:
        raise _not_found(uri)
    writer = _HashingWriter(sink)
    with _gcs_errors(uri, "read"):
        # Pinned to the generation whose metadata was just read, so that the digest checked is the
        # one recorded for these bytes even if the object is replaced meanwhile. The library also
        # resumes an interrupted download with a range request on the same generation.
        blob.download_to_file(
            writer,
            raw_download=True,
            if_generation_match=blob.generation,
            retry=retry_policy(),
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
    actual = writer.digest.hexdigest()
    expected, where = _expected_digest(sha256, _stored_sha256(blob))
    _check_digest(uri, actual, expected, where)
    return actual


def list_uris(prefix_uri: str) -> list[str]:
    """Every object (or file) under the folder ``prefix_uri``, sorted; all pages are read.

    A bucket URI lists the whole bucket. A folder with nothing under it gives an empty list; a
    missing bucket raises StorageNotFound.
    """
    if not is_gcs_uri(prefix_uri):
        root = to_local_path(prefix_uri)
        files = _local_files(root)
        if prefix_uri.lower().startswith("file://"):
            return [join_uri(prefix_uri, p.relative_to(root).as_posix()) for p in files]
        return [str(p) for p in files]
    return sorted(_list_blobs(prefix_uri))


def _list_blobs(prefix_uri: str) -> dict[str, gcs.Blob]:
    """The objects under a gs:// folder by URI, with their metadata."""
    bucket, name = split_gcs_uri(prefix_uri)
    with _gcs_errors(prefix_uri, "list"):
        # The iterator follows nextPageToken until the last page.
        blobs = client().list_blobs(
            bucket,
            prefix=_folder_prefix(name),
            page_size=LIST_PAGE_SIZE,
            retry=retry_policy(),
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        return {gcs_uri(bucket, blob.name): blob for blob in blobs}


def download_dir(uri_prefix: str, local_dir: str | os.PathLike) -> list[Path]:
    """Copy every object under the folder ``uri_prefix`` into ``local_dir``, keeping relative names.

    Everything lands in a scratch folder beside ``local_dir`` first and moves into place only when
    all of it has arrived with the right digests, so a failure adds nothing to ``local_dir``.
    """
    listing = _list_blobs(uri_prefix) if is_gcs_uri(uri_prefix) else dict.fromkeys(list_uris(uri_prefix))
    sources = sorted(u for u in listing if not u.endswith("/"))
    if not sources:
        raise StorageNotFound(f"{uri_prefix}: no objects under this prefix")
    base = _listing_base(uri_prefix)
    relatives = [_safe_relative(uri, uri[len(base) :]) for uri in sources]
    target = to_local_path(local_dir)
    scratch = _partial_path(target)
    try:
        _in_parallel(
            lambda pair: _download_to_local(
                pair[0], scratch / pair[1], None, if_absent=False, blob=listing[pair[0]]
            ),
            list(zip(sources, relatives, strict=True)),
        )
        target.mkdir(parents=True, exist_ok=True)
        placed = []
        for relative in relatives:
            final = target / relative
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / relative, final)
            placed.append(final)
        return placed
    except OSError as exc:
        if isinstance(exc, MlstagesError):
            raise
        raise StorageError(f"cannot download {uri_prefix} into {target}: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _listing_base(prefix_uri: str) -> str:
    """The string that list_uris' results start with for ``prefix_uri``."""
    if is_gcs_uri(prefix_uri):
        bucket, name = split_gcs_uri(prefix_uri)
        return gcs_uri(bucket, _folder_prefix(name))
    if prefix_uri.lower().startswith("file://"):
        return prefix_uri.rstrip("/") + "/"
    return str(to_local_path(prefix_uri)).rstrip(os.sep) + os.sep


def _safe_relative(uri: str, relative: str) -> Path:
    parts = relative.replace(os.sep, "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise StorageError(
            f"{uri}: the object name has an empty, '.' or '..' path segment and cannot be "
            "downloaded as a file under the target folder; rename the object"
        )
    return Path(*parts)


# --- writes --------------------------------------------------------------------------------------


def write_bytes(uri: str, data: bytes, *, if_absent: bool = False) -> str:
    """Write ``data`` to the object (or file) ``uri`` atomically; return its sha256 hex digest."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ParameterError(f"write_bytes({uri!r}): data must be bytes, not {type(data).__name__}")
    digest = hashlib.sha256(data).hexdigest()
    if not is_gcs_uri(uri):

        def fill(handle: IO[bytes]) -> str:
            handle.write(data)
            return digest

        return _local_write(to_local_path(uri), fill, if_absent, uri)
    return _upload(lambda: io.BytesIO(data), len(data), digest, uri, if_absent)


def upload_file(local_path: str | os.PathLike, uri: str, *, if_absent: bool = False) -> str:
    """Copy the local file ``local_path`` to ``uri`` (gs:// or local); return its sha256."""
    return _upload_file(_local_source(os.fspath(local_path)), uri, if_absent)


def _upload_file(
    source: Path, uri: str, if_absent: bool, existing: gcs.Blob | object | None = _UNKNOWN
) -> str:
    if not is_gcs_uri(uri):

        def fill(handle: IO[bytes]) -> str:
            with open(source, "rb") as reader:
                return _copy_stream(reader, handle)

        return _local_write(to_local_path(uri), fill, if_absent, uri)
    digest = sha256_file(source)
    return _upload(
        lambda: open(source, "rb"), source.stat().st_size, digest, uri, if_absent, source.name, existing
    )


def _upload(
    open_stream: Callable[[], IO[bytes]],
    size: int,
    digest: str,
    uri: str,
    if_absent: bool,
    type_hint: str = "",
    existing: gcs.Blob | object | None = _UNKNOWN,
) -> str:
    """Upload to the final name in one atomic step, guarded by a generation precondition.

    Why this leaves no partial object: GCS creates an object only when its upload is finalized (the
    single request of a multipart upload, the last chunk of a resumable session); until then there
    is nothing under the name, and an abandoned session simply expires. fake-gcs-server behaves the
    same way (it buffers a session and writes the object with one rename at the end). A temporary
    object plus a server-side copy would add nothing to that, and would itself leave a stray
    temporary behind whenever the process dies between the two steps.

    The precondition: ``if_generation_match=0`` (must not exist) or the generation just looked
    up (must be unchanged). It makes retries safe (a retried request whose first attempt landed
    fails with 412 instead of writing twice) and makes ``if_absent`` atomic on GCS. fake-gcs-server
    enforces preconditions only on multipart uploads (up to 8 MiB), so the lookup before the upload
    also refuses an existing object there; that check-then-write is racy on the emulator only.
    """
    blob = _blob(uri)
    blob.metadata = {SHA256_METADATA_KEY: digest}
    content_type = mimetypes.guess_type(type_hint or blob.name)[0] or "application/octet-stream"
    for _ in range(OVERWRITE_ATTEMPTS):
        if existing is _UNKNOWN:
            existing = _lookup(uri)
        if existing is not None and if_absent:
            if _stored_sha256(existing) == digest:
                return digest  # the same bytes are already there: nothing to overwrite
            _refuse_gcs_overwrite(uri, existing)
        generation = existing.generation if existing is not None else 0
        try:
            with _gcs_errors(uri, "write"), open_stream() as stream:
                blob.upload_from_file(
                    stream,
                    size=size,
                    content_type=content_type,
                    if_generation_match=generation,
                    retry=_conditional_retry(),
                    timeout=REQUEST_TIMEOUT_SECONDS,
                )
            return digest
        except StorageError as exc:
            if not isinstance(exc.__cause__, api_exceptions.PreconditionFailed):
                raise
        # 412: either an earlier attempt of this very upload landed (then the object has our
        # digest) or another writer got there first.
        current = _lookup(uri)
        if current is not None and _stored_sha256(current) == digest:
            return digest
        if if_absent and current is not None:
            _refuse_gcs_overwrite(uri, current)
        existing = current
    raise StorageError(
        f"cannot write {uri}: another writer kept replacing it during {OVERWRITE_ATTEMPTS} attempts; "
        "write under a new name"
    )


def _refuse_gcs_overwrite(uri: str, existing: gcs.Blob) -> None:
    recorded = _stored_sha256(existing) or "not recorded"
    raise StorageError(
        f"{uri} already exists (generation {existing.generation}, sha256 {recorded}) and "
        "if_absent=True does not replace it: write a new version under a new name, or delete it first"
    )


def upload_dir(local_dir: str | os.PathLike, uri_prefix: str, *, if_absent: bool = False) -> list[str]:
    """Copy every file under ``local_dir`` to the folder ``uri_prefix``; return the URIs written.

    With ``if_absent``, every destination is checked before anything is written. If a write fails
    midway, the objects this call created are deleted again (objects it replaced cannot be
    restored), so a failed call does not leave half a folder behind.
    """
    source_dir = to_local_path(local_dir)
    if not source_dir.is_dir():
        raise StorageNotFound(f"{os.fspath(local_dir)}: no such directory to upload")
    files = _local_files(source_dir)
    if not files:
        raise StorageNotFound(f"{os.fspath(local_dir)}: the directory has no files to upload")
    destinations = [join_uri(uri_prefix, p.relative_to(source_dir).as_posix()) for p in files]
    for destination in destinations:
        if is_gcs_uri(destination):
            _object_name(destination)  # every name is valid before anything is written
    listing = _list_blobs(uri_prefix) if is_gcs_uri(uri_prefix) else dict.fromkeys(list_uris(uri_prefix))
    already = set(listing)
    if if_absent:
        clashes = [
            d
            for p, d in zip(files, destinations, strict=True)
            if d in already and not _same_content(p, d, listing[d])
        ]
        if clashes:
            raise StorageError(
                f"{len(clashes)} of the {len(destinations)} files already exist under {uri_prefix} "
                f"(first: {clashes[0]}) and if_absent=True does not replace them: upload to a new prefix"
            )
    written: list[str] = []

    def upload(pair: tuple[Path, str]) -> None:
        # The listing already says what exists, which spares a lookup per object; the generation
        # precondition still catches anything that changed since.
        _upload_file(pair[0], pair[1], if_absent, listing.get(pair[1]) if is_gcs_uri(pair[1]) else _UNKNOWN)
        written.append(pair[1])  # list.append is atomic under the GIL

    try:
        _in_parallel(upload, list(zip(files, destinations, strict=True)))
    except BaseException:
        for created in written:
            if created not in already:
                try:
                    delete(created, missing_ok=True)
                except MlstagesError:
                    pass  # the original error is the one to report
        raise
    return destinations


def _same_content(path: Path, uri: str, blob: gcs.Blob | None) -> bool:
    """Whether the object or file at ``uri`` holds the same bytes as the local file ``path``."""
    recorded = _stored_sha256(blob) if blob is not None else sha256_file(to_local_path(uri))
    return bool(recorded) and recorded == sha256_file(path)


def _in_parallel(work: Callable[[T], object], items: list[T]) -> None:
    """Run ``work`` over ``items`` on a few threads (transfers wait on the network, not the CPU);
    the first failure stops the rest and is raised."""
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=min(TRANSFER_THREADS, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
        for future in as_completed(futures):
            if future.exception() is not None:
                for pending in futures:
                    pending.cancel()
                raise future.exception()


def copy(src_uri: str, dst_uri: str, *, if_absent: bool = False) -> None:
    """Copy one object or file to another name; gs:// to gs:// is a server-side rewrite that keeps
    the recorded sha256, the other combinations stream through this machine."""
    if not is_gcs_uri(src_uri):
        upload_file(_local_source(src_uri), dst_uri, if_absent=if_absent)
        return
    if not is_gcs_uri(dst_uri):
        _download_to_local(src_uri, dst_uri, None, if_absent=if_absent)
        return
    source = _lookup(src_uri)
    if source is None:
        raise _not_found(src_uri)
    target = _blob(dst_uri)
    # Looked up first because fake-gcs-server ignores preconditions on rewrites; on GCS the
    # precondition below is what makes if_absent atomic.
    existing = _lookup(dst_uri)
    digest = _stored_sha256(source)
    if existing is not None and if_absent:
        if digest and _stored_sha256(existing) == digest:
            return
        _refuse_gcs_overwrite(dst_uri, existing)
    try:
        with _gcs_errors(dst_uri, f"copy {src_uri} to"):
            token = None
            while True:
                # A rewrite across locations or storage classes can take several calls.
                token, _, _ = target.rewrite(
                    source,
                    token=token,
                    if_generation_match=existing.generation if existing is not None else 0,
                    if_source_generation_match=source.generation,
                    retry=_conditional_retry(),
                    timeout=REQUEST_TIMEOUT_SECONDS,
                )
                if token is None:
                    break
    except StorageError as exc:
        if not isinstance(exc.__cause__, api_exceptions.PreconditionFailed):
            raise
        current = _lookup(dst_uri)
        if current is not None and digest and _stored_sha256(current) == digest:
            return  # an earlier attempt of this copy landed
        if if_absent and current is not None:
            _refuse_gcs_overwrite(dst_uri, current)
        raise StorageError(
            f"cannot copy {src_uri} to {dst_uri}: one of them changed while copying; try again"
        ) from exc


def delete(uri: str, *, missing_ok: bool = False) -> None:
    """Delete the object (or local file) ``uri``; a missing one raises StorageNotFound unless
    ``missing_ok``."""
    if not is_gcs_uri(uri):
        path = to_local_path(uri)
        if path.is_dir():
            raise ParameterError(f"{uri} is a directory: delete() removes single files")
        try:
            path.unlink()
        except FileNotFoundError as exc:
            if not missing_ok:
                raise StorageNotFound(f"{uri}: no such file") from exc
        except OSError as exc:
            raise StorageError(f"cannot delete {uri}: {exc}") from exc
        return
    blob = _lookup(uri)
    if blob is None:
        if missing_ok:
            return
        raise _not_found(uri)
    try:
        with _gcs_errors(uri, "delete"):
            blob.delete(
                if_generation_match=blob.generation,
                retry=_conditional_retry(),
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
    except StorageNotFound:
        pass  # it existed a moment ago: a retried delete whose first attempt landed
    except StorageError as exc:
        if isinstance(exc.__cause__, api_exceptions.PreconditionFailed):
            raise StorageError(
                f"cannot delete {uri}: it was replaced while being deleted; try again"
            ) from exc
        raise
