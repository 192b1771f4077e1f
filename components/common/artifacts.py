"""Fitted scikit-learn objects as artifacts: a directory with the joblib file and a metadata file.

The layout (``<dir>/<name>.joblib`` + ``<dir>/metadata.json`` with its sha256) is the one KServe's
sklearn runtime loads for ``model.joblib``; preprocessing and feature transformers use it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from mlstages.components.common.errors import DigestMismatch, InputDataError

METADATA_FILE = "metadata.json"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that must match between the process that saves a model and the one that loads it."""
    import joblib
    import numpy
    import pandas
    import scipy
    import sklearn

    from mlstages.components import __version__

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
        "mlstages": __version__,
    }


def save_estimator(
    estimator: Any, directory: str | os.PathLike, name: str, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``estimator`` to ``<directory>/<name>.joblib`` and a metadata file beside it.

    Returns the metadata written: the caller's entries plus file name, sha256 and library versions.
    Both files appear whole or not at all.
    """
    import joblib

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    filename = f"{name}.joblib"
    partial = target / f".{filename}.partial"
    try:
        joblib.dump(estimator, partial)
        os.replace(partial, target / filename)
    finally:
        partial.unlink(missing_ok=True)
    written = dict(metadata or {})
    written.update(
        {"file": filename, "sha256": file_sha256(target / filename), "versions": library_versions()}
    )
    meta_partial = target / f".{METADATA_FILE}.partial"
    meta_partial.write_text(json.dumps(written, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(meta_partial, target / METADATA_FILE)
    return written


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / METADATA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputDataError(
            f"{directory} has no {METADATA_FILE}: not an artifact written by mlstages"
        ) from exc


def load_estimator(directory: str | os.PathLike, name: str) -> Any:
    """Load ``<directory>/<name>.joblib`` after checking its sha256 against the metadata file."""
    import joblib

    metadata = read_metadata(directory)
    path = Path(directory) / f"{name}.joblib"
    if not path.exists():
        raise InputDataError(f"{path}: no such file")
    actual = file_sha256(path)
    if metadata.get("sha256") and actual != metadata["sha256"]:
        raise DigestMismatch(
            f"{path} has sha256 {actual}, but {METADATA_FILE} records {metadata['sha256']}: "
            "the file was changed or truncated after it was written"
        )
    return joblib.load(path)
