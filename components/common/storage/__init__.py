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

The package is this one facade: callers import ``mlstages.components.common.storage``; its modules
hold the URIs, the client and its retries, local files and digests, reads, writes, and whole folders.
"""

from mlstages.components.common.storage.client import (
    DEFAULT_EMULATOR_PROJECT,
    DEFAULT_RETRY_TIMEOUT_SECONDS,
    GCS_ENDPOINT,
    REQUEST_TIMEOUT_SECONDS,
    RETRY_TIMEOUT_ENV,
    UPLOAD_CHUNK_BYTES,
    client,
    endpoint,
    retry_policy,
)
from mlstages.components.common.storage.folders import TRANSFER_THREADS, download_dir, upload_dir
from mlstages.components.common.storage.local import LOCAL_COPY_CHUNK_BYTES, SHA256_METADATA_KEY
from mlstages.components.common.storage.reads import (
    DOWNLOAD_READ_BYTES,
    LIST_PAGE_SIZE,
    download_file,
    exists,
    list_uris,
    read_bytes,
)
from mlstages.components.common.storage.uris import (
    gcs_uri,
    is_gcs_uri,
    join_uri,
    split_gcs_uri,
    to_local_path,
    validate_bucket_name,
)
from mlstages.components.common.storage.writes import (
    OVERWRITE_ATTEMPTS,
    copy,
    delete,
    upload_file,
    write_bytes,
)

__all__ = [
    "DEFAULT_EMULATOR_PROJECT",
    "DEFAULT_RETRY_TIMEOUT_SECONDS",
    "DOWNLOAD_READ_BYTES",
    "GCS_ENDPOINT",
    "LIST_PAGE_SIZE",
    "LOCAL_COPY_CHUNK_BYTES",
    "OVERWRITE_ATTEMPTS",
    "REQUEST_TIMEOUT_SECONDS",
    "RETRY_TIMEOUT_ENV",
    "SHA256_METADATA_KEY",
    "TRANSFER_THREADS",
    "UPLOAD_CHUNK_BYTES",
    "client",
    "copy",
    "delete",
    "download_dir",
    "download_file",
    "endpoint",
    "exists",
    "gcs_uri",
    "is_gcs_uri",
    "join_uri",
    "list_uris",
    "read_bytes",
    "retry_policy",
    "split_gcs_uri",
    "to_local_path",
    "upload_dir",
    "upload_file",
    "validate_bucket_name",
    "write_bytes",
]
