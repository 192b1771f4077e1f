"""Reads: existence, bytes, files and listings, each verified against its sha256."""

from __future__ import annotations

import functools
import hashlib
import io
import os
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud import storage as gcs
from mlstages.components.common.storage.client import (
    REQUEST_TIMEOUT_SECONDS,
    _gcs_errors,
    _lookup,
    _not_found,
    client,
    retry_policy,
)
from mlstages.components.common.storage.local import (
    _check_digest,
    _copy_stream,
    _expected_digest,
    _HashingWriter,
    _local_files,
    _local_source,
    _local_write,
    _stored_sha256,
)
from mlstages.components.common.storage.uris import (
    _folder_prefix,
    gcs_uri,
    is_gcs_uri,
    join_uri,
    split_gcs_uri,
    to_local_path,
)

DOWNLOAD_READ_BYTES = 1024 * 1024


LIST_PAGE_SIZE = 1000  # the JSON API's maximum page size


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
