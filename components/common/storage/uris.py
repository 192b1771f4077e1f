"""URIs: ``gs://bucket/object`` and local paths (plain or ``file://``), split, joined and checked."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from mlstages.components.common.errors import (
    ParameterError,
)

if TYPE_CHECKING:
    pass


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$")


_MAX_OBJECT_NAME_BYTES = 1024


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
