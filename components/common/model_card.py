"""The model card: the one reader and writer of ``metadata.json``.

Every artifact the suite saves as a folder (the model, and the fitted preprocessor and feature
pipeline) holds ``<name>.joblib`` and ``metadata.json``. This module alone reads and writes that
file: ``read_metadata`` / ``write_metadata`` for any such folder, and ``ModelCard`` for the model,
whose card is what train writes and what evaluate, validate_model, deploy, serving and monitoring
read (task, label, classes, input columns and types, the chosen family and its parameters, library
versions, the model file's sha256, and the lineage of the data and code that made it).

The file is plain JSON with sorted keys, so KServe's stock runtime and any other tool can read it;
the card adds types and one set of checks, so no reader keeps its own fallbacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.logical_types import LOGICAL_TYPES

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.joblib"
CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)


class ModelCardError(InputDataError):
    """A ``metadata.json`` is missing, unreadable, or lacks what a model card must hold."""


# --- the file ------------------------------------------------------------------------------------


def write_metadata(directory: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
    """Write ``metadata`` as ``<directory>/metadata.json``, whole or not at all."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f".{METADATA_FILE}.partial"
    try:
        partial.write_text(
            json.dumps(dict(metadata), indent=2, sort_keys=True, default=str), encoding="utf-8"
        )
        os.replace(partial, target / METADATA_FILE)
    finally:
        partial.unlink(missing_ok=True)


def read_metadata(directory: str | os.PathLike, where: str | None = None) -> dict[str, Any]:
    """The JSON object in ``<directory>/metadata.json``; ``where`` names the folder in errors."""
    path = Path(directory) / METADATA_FILE
    where = where or str(directory)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelCardError(
            f"{where} has no {METADATA_FILE}: not an artifact written by mlstages (export the model "
            "with the mlstages train stage)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelCardError(f"{where}: {METADATA_FILE} is not readable JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ModelCardError(f"{where}: {METADATA_FILE} is not a JSON object")
    return metadata


# --- the model card ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFeature:
    """One raw input column of the model: its name and logical type (numeric, categorical, ...)."""

    name: str
    logical_type: str


@dataclass(frozen=True)
class ModelCard:
    """What the suite knows about an exported model, as ``metadata.json`` records it.

    ``family``/``params``/``cv_score`` are written as ``best_family``/``best_params``/``cv_score``;
    ``input_columns`` (name -> type) and ``output`` are derived when written, for readers outside
    the suite. ``lineage`` is where the data and code that made the model are recorded (URIs,
    content hashes, row counts, parameters, parent champion); ``baselines`` is the quality floor
    saved beside the model (its file, sha256, scorer and each baseline's CV score); ``extra`` keeps any other key a
    writer added, so a card read and written again loses nothing.
    """

    task: str
    label_column: str
    input_features: tuple[InputFeature, ...]
    sha256: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)
    classes: tuple[Any, ...] | None = None
    feature_names: tuple[str, ...] = ()
    family: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    cv_score: float | None = None
    scoring: str = ""
    cv_folds: int | None = None
    search: str = ""
    train_rows: int | None = None
    search_rows: int | None = None
    file: str = MODEL_FILE
    framework: str = "scikit-learn"
    format: str = "joblib"
    lineage: Mapping[str, Any] = field(default_factory=dict)
    baselines: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- derived views --------------------------------------------------------------------------

    @property
    def input_columns(self) -> dict[str, str]:
        """Each raw input column's logical type, in the model's input order."""
        return {f.name: f.logical_type for f in self.input_features}

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.input_features]

    @property
    def sklearn_version(self) -> str | None:
        return self.versions.get("scikit-learn") or None

    @property
    def is_classifier(self) -> bool:
        return self.task == CLASSIFICATION

    def output(self) -> dict[str, Any]:
        if self.is_classifier:
            return {
                "predict": f"one class label of {self.label_column!r} per row",
                "predict_proba": "one probability per class per row, in the order of 'classes'",
                "classes": list(self.classes or ()),
            }
        return {"predict": f"one predicted value of {self.label_column!r} per row"}

    # -- JSON -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(
            {
                "framework": self.framework,
                "format": self.format,
                "file": self.file,
                "sha256": self.sha256,
                "versions": dict(self.versions),
                "task": self.task,
                "label_column": self.label_column,
                "classes": list(self.classes) if self.classes is not None else None,
                # A list, because the file's keys are sorted and the order of inputs matters.
                "input_features": [{"name": f.name, "type": f.logical_type} for f in self.input_features],
                "input_columns": self.input_columns,
                "feature_names": list(self.feature_names),
                "output": self.output(),
                "best_family": self.family,
                "best_params": dict(self.params),
                "cv_score": self.cv_score,
                "scoring": self.scoring,
                "cv_folds": self.cv_folds,
                "search": self.search,
                "train_rows": self.train_rows,
                "search_rows": self.search_rows,
            }
        )
        if self.lineage:
            data["lineage"] = dict(self.lineage)
        if self.baselines:
            data["baselines"] = dict(self.baselines)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = METADATA_FILE) -> ModelCard:
        """The card in ``data`` (a parsed ``metadata.json``); ``where`` names the file in errors.

        Raises ModelCardError naming the file and the key when the task, the label column or the
        input features are missing or malformed.
        """
        task = data.get("task")
        if task not in TASKS:
            raise ModelCardError(
                f"{where}: task is {task!r}, expected one of {', '.join(TASKS)}: export the model with "
                "the mlstages train stage"
            )
        classes = data.get("classes")
        if classes is not None and not isinstance(classes, Sequence):
            raise ModelCardError(f"{where}: classes must be a list, got {type(classes).__name__}")
        known = {f.name for f in fields(cls)} | {"best_family", "best_params", "input_columns", "output"}
        return cls(
            task=task,
            label_column=str(data.get("label_column") or ""),
            input_features=parse_input_features(data, where),
            sha256=str(data.get("sha256") or ""),
            versions=dict(data.get("versions") or {}),
            classes=tuple(classes) if classes is not None else None,
            feature_names=tuple(str(n) for n in data.get("feature_names") or ()),
            family=str(data.get("best_family") or ""),
            params=dict(data.get("best_params") or {}),
            cv_score=data.get("cv_score"),
            scoring=str(data.get("scoring") or ""),
            cv_folds=data.get("cv_folds"),
            search=str(data.get("search") or ""),
            train_rows=data.get("train_rows"),
            search_rows=data.get("search_rows"),
            file=str(data.get("file") or MODEL_FILE),
            framework=str(data.get("framework") or "scikit-learn"),
            format=str(data.get("format") or "joblib"),
            lineage=dict(data.get("lineage") or {}),
            baselines=dict(data.get("baselines") or {}),
            extra={k: v for k, v in data.items() if k not in known},
        )

    # -- files ----------------------------------------------------------------------------------

    @classmethod
    def read(cls, directory: str | os.PathLike, where: str | None = None) -> ModelCard:
        """The card of the model folder ``directory``."""
        where = where or str(directory)
        return cls.from_dict(read_metadata(directory, where), f"{where}/{METADATA_FILE}")

    @classmethod
    def read_uri(cls, model_uri: str) -> ModelCard:
        """The card of a model folder given as a path, ``file://`` or ``gs://`` URI."""
        import tempfile

        from mlstages.components.common import storage

        if not storage.is_gcs_uri(model_uri):
            return cls.read(storage.to_local_path(model_uri), model_uri)
        with tempfile.TemporaryDirectory(prefix="mlstages-card-") as scratch:
            storage.download_file(storage.join_uri(model_uri, METADATA_FILE), Path(scratch) / METADATA_FILE)
            return cls.read(scratch, model_uri)

    def write(self, directory: str | os.PathLike) -> None:
        write_metadata(directory, self.to_dict())

    def with_lineage(self, **entries: Any) -> ModelCard:
        """A copy whose lineage also holds ``entries``."""
        from dataclasses import replace

        return replace(self, lineage={**self.lineage, **entries})


def parse_input_features(metadata: Mapping[str, Any], where: str = METADATA_FILE) -> tuple[InputFeature, ...]:
    """The model's input features in order, from ``input_features`` (each feature's type there, or
    in the older ``input_columns`` mapping)."""
    entries = metadata.get("input_features")
    if not isinstance(entries, list) or not entries:
        raise ModelCardError(
            f"{where} records no input_features (the ordered list of the model's raw input columns): "
            "export the model with the mlstages train stage"
        )
    types = metadata.get("input_columns") or {}
    features = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, Mapping) else entry
        if not isinstance(name, str) or not name:
            raise ModelCardError(f"{where}: input_features has an entry without a name: {entry!r}")
        kind = (entry.get("type") if isinstance(entry, Mapping) else None) or types.get(name)
        if kind not in LOGICAL_TYPES:
            raise ModelCardError(
                f"{where}: input feature {name!r} has type {kind!r}; expected one of {', '.join(LOGICAL_TYPES)}"
            )
        features.append(InputFeature(name, kind))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ModelCardError(f"{where}: input_features names a column twice: {names}")
    return tuple(features)
