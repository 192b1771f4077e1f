"""Whole folders: upload and download of every file under a prefix, a few at a time."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mlstages.components.common.artifacts import file_sha256 as sha256_file
from mlstages.components.common.errors import (
    MlstagesError,
    StorageError,
    StorageNotFound,
    object_exists,
)

if TYPE_CHECKING:
    from google.cloud import storage as gcs
from mlstages.components.common.storage.local import _local_files, _partial_path, _stored_sha256
from mlstages.components.common.storage.reads import _download_to_local, _list_blobs, list_uris
from mlstages.components.common.storage.uris import (
    _folder_prefix,
    _object_name,
    gcs_uri,
    is_gcs_uri,
    join_uri,
    split_gcs_uri,
    to_local_path,
)
from mlstages.components.common.storage.writes import _UNKNOWN, _upload_file, delete

# Folder transfers run this many objects at a time; google-cloud-storage's transfer_manager also
# shares one client between threads.
TRANSFER_THREADS = 8


T = TypeVar("T")


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


def upload_dir(
    local_dir: str | os.PathLike, uri_prefix: str, *, if_absent: bool = False, last: str = ""
) -> list[str]:
    """Copy every file under ``local_dir`` to the folder ``uri_prefix``; return the URIs written.

    With ``if_absent``, every destination is checked before anything is written. If a write fails
    midway, the objects this call created are deleted again (objects it replaced cannot be
    restored), so a failed call does not leave half a folder behind.

    ``last`` names a file (relative to ``local_dir``) written alone after every other one has
    landed: a completion marker. GCS has no rename, so a folder cannot appear at once; a reader
    that treats the folder as present only when ``last`` is there never sees half of it, and the
    clean-up of a failed call (which cannot run when the store is down) becomes a tidy-up of
    invisible leftovers instead of a repair.
    """
    source_dir = to_local_path(local_dir)
    if not source_dir.is_dir():
        raise StorageNotFound(f"{os.fspath(local_dir)}: no such directory to upload")
    files = _local_files(source_dir)
    if not files:
        raise StorageNotFound(f"{os.fspath(local_dir)}: the directory has no files to upload")
    if last and not (source_dir / last).is_file():
        raise StorageNotFound(f"{os.fspath(local_dir)}: no file {last!r} to upload last")
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
            raise object_exists(
                clashes[0],
                f"{len(clashes)} of the {len(destinations)} files under {uri_prefix} exist with other "
                "bytes; upload to a new prefix",
            )
    written: list[str] = []

    def upload(pair: tuple[Path, str]) -> None:
        # The listing already says what exists, which spares a lookup per object; the generation
        # precondition still catches anything that changed since.
        _upload_file(pair[0], pair[1], if_absent, listing.get(pair[1]) if is_gcs_uri(pair[1]) else _UNKNOWN)
        written.append(pair[1])  # list.append is atomic under the GIL

    pairs = list(zip(files, destinations, strict=True))
    final = [pair for pair in pairs if last and pair[0] == source_dir / last]
    try:
        _in_parallel(upload, [pair for pair in pairs if pair not in final])
        for pair in final:
            written.append(pair[1])  # a failed write of the marker may still have landed
            upload(pair)
    except BaseException:
        _remove_created(written, already, final[0][1] if final else "")
        raise
    return destinations


def _remove_created(written: list[str], already: set[str], marker: str) -> None:
    """Best-effort removal of what a failed upload_dir created; the marker goes first, and if it
    cannot be removed nothing else is (a marker must never stand without its folder)."""
    ordered = sorted(set(written), key=lambda uri: uri != marker)
    for created in ordered:
        if created in already:
            continue
        try:
            delete(created, missing_ok=True)
        except MlstagesError:
            if created == marker:
                return
            # otherwise: the original error is the one to report


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
