"""Fitted scikit-learn objects as artifacts: a directory with the joblib file and a metadata file.

The layout (``<dir>/<name>.joblib`` + ``<dir>/metadata.json`` with its sha256) is the one KServe's
sklearn runtime loads for ``model.joblib``; preprocessing and feature transformers use it too.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

from mlstages.components.common.errors import DigestMismatch, InputDataError
from mlstages.components.common.model_card import METADATA_FILE, read_metadata, write_metadata

__all__ = [
    "METADATA_FILE",
    "dump_joblib",
    "file_sha256",
    "library_versions",
    "load_estimator",
    "read_metadata",
    "save_estimator",
]


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


def dump_joblib(estimator: Any, directory: str | os.PathLike, name: str) -> str:
    """Write ``estimator`` to ``<directory>/<name>.joblib``, whole or not at all; return its sha256."""
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
    return file_sha256(target / filename)


def save_estimator(
    estimator: Any, directory: str | os.PathLike, name: str, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``estimator`` to ``<directory>/<name>.joblib`` and a metadata file beside it.

    Returns the metadata written: the caller's entries plus file name, sha256 and library versions.
    Both files appear whole or not at all.
    """
    sha256 = dump_joblib(estimator, directory, name)
    written = dict(metadata or {})
    written.update({"file": f"{name}.joblib", "sha256": sha256, "versions": library_versions()})
    write_metadata(directory, written)
    return written


def load_estimator(directory: str | os.PathLike, name: str, sha256: str | None = None) -> Any:
    """Load ``<directory>/<name>.joblib`` after checking its sha256: ``sha256`` when given (a second
    file of the folder, recorded elsewhere in its card), else the one the metadata file records."""
    import joblib

    expected = sha256 if sha256 is not None else read_metadata(directory).get("sha256")
    path = Path(directory) / f"{name}.joblib"
    if not path.exists():
        raise InputDataError(f"{path}: no such file")
    actual = file_sha256(path)
    if expected and actual != expected:
        raise DigestMismatch(
            f"{path} has sha256 {actual}, but {METADATA_FILE} records {expected}: "
            "the file was changed or truncated after it was written"
        )
    return joblib.load(path)
