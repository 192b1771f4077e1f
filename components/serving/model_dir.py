"""A model folder as the server loads it: model.joblib checked against its card (sha256, scikit-learn
version, input features), read from a path or gs:// through the suite's storage module."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlstages.components.common import storage
from mlstages.components.common.artifacts import file_sha256
from mlstages.components.common.errors import DigestMismatch, MlstagesError, ParameterError, StorageNotFound
from mlstages.components.common.model_card import (
    METADATA_FILE,
    MODEL_FILE,
    ModelCard,
    ModelCardError,
    read_metadata,
)

# Where gs:// models are downloaded before loading (a scratch folder inside it, removed after the
# load); the system's temporary folder when unset.
CACHE_DIR_ENV = "MLSTAGES_MODEL_CACHE"


class ModelLoadError(MlstagesError):
    """The model directory cannot be served: files missing or unreadable, or not a model."""


class LibraryVersionMismatch(ModelLoadError):
    """The model was saved with a different scikit-learn than the one running here."""


def load_model_dir(model_uri: str, *, cache_dir: str | os.PathLike | None = None) -> tuple[Any, ModelCard]:
    """Load ``model.joblib`` and its card ``metadata.json`` from a model directory; return (model, card).

    ``model_uri`` is a local path, a ``file://`` URI or a ``gs://bucket/prefix`` folder. A gs://
    model is downloaded through the suite's storage module into a scratch folder under
    ``cache_dir`` (default: $MLSTAGES_MODEL_CACHE, else the system's temporary folder), which is
    removed once the model is in memory.

    Raises:
        ModelLoadError: the directory, ``model.joblib`` or ``metadata.json`` is missing, the
            metadata lacks what serving needs, or the file does not unpickle into a model.
        DigestMismatch: ``model.joblib``'s sha256 differs from the one in ``metadata.json``.
        LibraryVersionMismatch: the running scikit-learn is not the one the model was saved with.
    """
    if not isinstance(model_uri, str) or not model_uri.strip():
        raise ParameterError("parameter model_uri is empty: give the model directory (gs://..., or a path)")
    if not storage.is_gcs_uri(model_uri):
        return _load_local(storage.to_local_path(model_uri), model_uri)
    root = cache_dir or os.environ.get(CACHE_DIR_ENV) or None
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mlstages-model-", dir=root))
    try:
        metadata_uri = storage.join_uri(model_uri, METADATA_FILE)
        model_file_uri = storage.join_uri(model_uri, MODEL_FILE)
        try:
            storage.download_file(metadata_uri, scratch / METADATA_FILE)
            metadata = _read_metadata(scratch / METADATA_FILE, model_uri)
            # The digest recorded in metadata.json is checked while the bytes arrive.
            storage.download_file(model_file_uri, scratch / MODEL_FILE, sha256=metadata["sha256"])
        except StorageNotFound as exc:
            raise ModelLoadError(
                f"{model_uri} is not a model directory: {exc}. It must hold {MODEL_FILE} and "
                f"{METADATA_FILE} (the train stage's model output or a registry version)"
            ) from exc
        except DigestMismatch as exc:
            raise DigestMismatch(
                f"{model_file_uri}: refusing to serve it: {exc}. The model was changed or truncated "
                "after it was exported; export or publish it again"
            ) from exc
        return _load_local(scratch, model_uri)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_metadata(path: Path, model_uri: str) -> dict[str, Any]:
    try:
        metadata = read_metadata(path.parent, model_uri)
    except ModelCardError as exc:
        raise ModelLoadError(f"{exc}") from exc
    if not metadata.get("sha256"):
        raise ModelLoadError(
            f"{model_uri}: {METADATA_FILE} records no sha256 of {MODEL_FILE}, so the file cannot be "
            "verified; export the model with the mlstages train stage"
        )
    return metadata


def _load_local(directory: Path, model_uri: str) -> tuple[Any, ModelCard]:
    import joblib
    import sklearn

    if not directory.is_dir():
        raise ModelLoadError(f"{model_uri}: no such model directory")
    metadata = _read_metadata(directory / METADATA_FILE, model_uri)
    path = directory / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{model_uri} has no {MODEL_FILE}: serve the directory that holds the exported Pipeline "
            f"({MODEL_FILE} + {METADATA_FILE})"
        )
    actual = file_sha256(path)
    if actual != metadata["sha256"]:
        raise DigestMismatch(
            f"{storage.join_uri(model_uri, MODEL_FILE)} has sha256 {actual}, but {METADATA_FILE} records "
            f"{metadata['sha256']}: refusing to serve it. The model was changed or truncated after it "
            "was exported; export or publish it again"
        )
    recorded = (metadata.get("versions") or {}).get("scikit-learn")
    if recorded != sklearn.__version__:
        raise LibraryVersionMismatch(
            f"{model_uri} was saved with scikit-learn {recorded or '(not recorded)'}, but this server runs "
            f"scikit-learn {sklearn.__version__}: a pickled model is only guaranteed to predict the same "
            "with the version that saved it. Serve it with the image built from the same mlstages "
            "release as the one that trained it, or retrain it with this one"
        )
    try:
        card = ModelCard.from_dict(metadata, f"{model_uri}/{METADATA_FILE}")
    except ModelCardError as exc:
        raise ModelLoadError(str(exc)) from exc
    features = card.input_features
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling runs arbitrary reconstruction code; report any failure
        raise ModelLoadError(
            f"{storage.join_uri(model_uri, MODEL_FILE)} does not load: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(
            f"{storage.join_uri(model_uri, MODEL_FILE)} holds a {type(model).__name__}, which has no "
            "predict method: it is not a model"
        )
    declared = getattr(model, "feature_names_in_", None)
    if declared is not None and [str(c) for c in declared] != [f.name for f in features]:
        raise ModelLoadError(
            f"{model_uri}: {METADATA_FILE} lists input features {[f.name for f in features]}, but the "
            f"model was fitted on {[str(c) for c in declared]}: the two files do not belong together"
        )
    return model, card
