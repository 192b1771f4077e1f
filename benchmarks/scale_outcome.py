"""What a bench_scale run reports from the stages' outputs, the same way for both paths
(scale_paths.py): the rows each stage read and held, and what the run produced."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_SAMPLED = re.compile(r"seeded sample of ([\d,]+) of the ([\d,]+)")


def _summary_sample(stage: dict[str, Any]) -> int | None:
    """The rows a stage fitted on, from its summary's 'seeded sample of N of the M ...' note."""
    summary = (stage.get("artifacts") or {}).get("summary")
    if not summary:
        return None
    try:
        text = Path(summary["path"]).read_text(encoding="utf-8")
    except OSError:
        return None
    found = _SAMPLED.search(text)
    return int(found.group(1).replace(",", "")) if found else None


def stage_rows(phases: dict[str, Any]) -> dict[str, dict[str, dict[str, int | None]]]:
    """Per phase and stage: ``input`` (the rows it reads through) and ``held`` (the rows it holds
    at once to fit on, when it samples), from the stages' outputs."""

    def meta(phase: str, stage: str, artifact: str) -> dict[str, Any]:
        found = phases.get(phase, {}).get("stages", {}).get(stage, {})
        return (found.get("artifacts") or {}).get(artifact, {}).get("metadata") or {}

    training = phases.get("training", {}).get("stages", {})
    rows = meta("training", "ingest", "dataset").get("rows")
    train_rows = meta("training", "preprocess", "train").get("rows")
    test_rows = meta("training", "preprocess", "test").get("rows")
    metrics = meta("training", "train", "metrics")
    result = {
        "training": {
            "ingest": {"input": rows, "held": rows},
            "validate_data": {"input": rows, "held": rows},
            "preprocess": {
                "input": rows,
                "held": _summary_sample(training.get("preprocess", {})) or train_rows,
            },
            "engineer_features": {
                "input": train_rows,
                "held": _summary_sample(training.get("engineer_features", {})) or train_rows,
            },
            "train": {"input": train_rows, "held": _int(metrics.get("train_rows"))},
            "evaluate": {"input": test_rows, "held": None},
            "validate_model": {"input": test_rows, "held": None},
            "deploy": {"input": None, "held": None},
        },
        "inference": {
            "ingest": {"input": meta("inference", "ingest", "dataset").get("rows"), "held": None},
            "fetch_champion": {"input": None, "held": None},
            "batch_predict": {
                "input": meta("inference", "batch_predict", "predictions").get("rows"),
                "held": None,
            },
        },
    }
    result["inference"]["ingest"]["held"] = result["inference"]["ingest"]["input"]
    return result


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def outcome(phases: dict[str, Any]) -> dict[str, Any]:
    """What the run produced, to check that both paths did the same work."""
    stages = phases["training"]["stages"]
    train_meta = stages["train"]["artifacts"]["model"]["metadata"]
    evaluation = json.loads(Path(stages["evaluate"]["artifacts"]["evaluation"]["path"]).read_text())
    gate = stages["validate_model"]["parameters"]
    scored = phases["inference"]["stages"]["batch_predict"]["artifacts"]["predictions"]["metadata"]
    return {
        "best_params": train_meta.get("best_params"),
        "cv_score": train_meta.get("cv_score"),
        "train_rows": train_meta.get("train_rows"),
        "test_metrics": evaluation["metrics"],
        "blessed": gate.get("blessed"),
        "deployed": (stages.get("deploy") or {}).get("parameters", {}).get("deployed"),
        "scored_rows": scored.get("rows"),
        "scored_shards": scored.get("shards"),
    }
