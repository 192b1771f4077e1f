"""Writes: bytes, files, copies and deletes, atomic, with ``if_absent`` refusing to replace."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from google.api_core import exceptions as api_exceptions

from mlstages.components.common.artifacts import file_sha256 as sha256_file
from mlstages.components.common.errors import (
    ParameterError,
    StorageError,
    StorageNotFound,
    object_exists,
)

if TYPE_CHECKING:
    from google.cloud import storage as gcs
from mlstages.components.common.storage.client import (
    REQUEST_TIMEOUT_SECONDS,
    _blob,
    _conditional_retry,
    _gcs_errors,
    _lookup,
    _not_found,
)
from mlstages.components.common.storage.local import (
    SHA256_METADATA_KEY,
    _copy_stream,
    _local_source,
    _local_write,
    _stored_sha256,
)
from mlstages.components.common.storage.reads import _download_to_local
from mlstages.components.common.storage.uris import is_gcs_uri, to_local_path

# An upload that loses a precondition race to another writer in overwrite mode starts again this
# many times before giving up.
OVERWRITE_ATTEMPTS = 3


_UNKNOWN = object()  # "not looked up yet", as opposed to None, "looked up and absent"


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
            with _gcs_errors(uri, "write", upload=True), open_stream() as stream:
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
    raise object_exists(uri, f"generation {existing.generation}, sha256 {recorded}")


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
