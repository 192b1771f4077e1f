"""Digests and local files: atomic writes through a partial file, and streamed copies."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mlstages.components.common.artifacts import file_sha256 as sha256_file
from mlstages.components.common.errors import (
    DigestMismatch,
    MlstagesError,
    ParameterError,
    StorageError,
    StorageNotFound,
    object_exists,
)

if TYPE_CHECKING:
    from google.cloud import storage as gcs
from mlstages.components.common.storage.uris import to_local_path

SHA256_METADATA_KEY = "sha256"


LOCAL_COPY_CHUNK_BYTES = 4 * 1024 * 1024


_PARTIAL_SUFFIX = ".partial"


def _stored_sha256(blob: gcs.Blob) -> str:
    return (blob.metadata or {}).get(SHA256_METADATA_KEY, "")


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
    raise object_exists(shown, "with other bytes")


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
