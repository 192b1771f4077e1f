"""The lineage a model card records: which data, which code and which settings made the model,
and the champion it was meant to replace.

- data: every source the training rows came from (URI, rows, columns, content hash), as ingest
  (or the monitoring pipeline's training-data assembly) kept them in the dataset files, and the
  train split the model was fitted on;
- code: the suite's version and the image reference of every stage that shaped the model;
- parameters: each stage's settings (preprocess, engineer_features, train), from the metadata the
  fitted artifacts carry;
- parent: the champion when the model was trained (version and URI), or None for a first model.

``mlstages registry show`` and the HTML model card (``model_card_report``) print the same dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# The stages whose code shapes the exported model.
LINEAGE_STAGES = ("ingest", "validate_data", "preprocess", "engineer_features", "train")


def model_lineage(
    train_path: str | os.PathLike,
    features_metadata: Mapping[str, Any],
    train_parameters: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The lineage of a model trained on the split at ``train_path`` with the feature pipeline
    whose metadata is ``features_metadata``."""
    from mlstages.components import __version__
    from mlstages.components.common.dataset_files import read_lineage
    from mlstages.components.common.images import image

    data = read_lineage(train_path)
    upstream = dict(features_metadata.get("upstream") or {})
    parent = None
    if champion:
        parent = {key: champion.get(key) for key in ("version", "model_uri") if champion.get(key)}
    return {
        "data": {"sources": list(data.get("sources") or []), "train_split": dict(data.get("split") or {})},
        "code": {"suite_version": __version__, "images": {stage: image(stage) for stage in LINEAGE_STAGES}},
        "parameters": {
            "preprocess": dict(upstream.get("preprocess") or {}),
            "engineer_features": dict(features_metadata.get("config") or {}),
            "train": dict(train_parameters),
        },
        "parent": parent,
    }


def train_parameters(config: Any) -> dict[str, Any]:
    """A TrainConfig's settings as plain JSON values, for the lineage."""
    import json
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(config), default=str))
