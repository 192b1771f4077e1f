"""kfp.local runs of the engineer_features component, fed from preprocess' outputs.

kfp.local refuses input artifacts for a component called on its own, so the components run inside
a small pipeline: ingest → preprocess → engineer_features.
"""

# No `from __future__ import annotations`: kfp reads the pipelines' annotations as types.
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from kfp import dsl
from kfp.dsl import HTML, Dataset, Markdown, Model

from mlstages.components.common.artifacts import load_estimator, read_metadata
from mlstages.components.common.dataset_files import read_dataset
from mlstages.components.engineer_features.component import engineer_features
from mlstages.components.ingest.component import ingest
from mlstages.components.preprocess.component import preprocess

DERIVED = [
    {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]},
    {"name": "log_mass", "kind": "log", "columns": ["body_mass_g"]},
    {"name": "mass_bin", "kind": "bin", "columns": ["body_mass_g"], "n_bins": 4},
]


class Outputs(NamedTuple):
    test: Dataset
    features: Model
    report: HTML
    summary: Markdown
    feature_count: int


@dsl.pipeline
def penguin_features(path: str, derived_features: list, max_features: int) -> Outputs:
    data = ingest(source_uri=path)
    split = preprocess(dataset=data.outputs["dataset"], label_column="species")
    engineered = engineer_features(
        train=split.outputs["train"],
        transformer=split.outputs["transformer"],
        label_column="species",
        task=split.outputs["task"],
        derived_features=derived_features,
        selection="mutual_info",
        max_features=max_features,
    )
    return Outputs(
        test=split.outputs["test"],
        features=engineered.outputs["features"],
        report=engineered.outputs["report"],
        summary=engineered.outputs["summary"],
        feature_count=engineered.outputs["feature_count"],
    )


def _engineer_features_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "engineer-features" in p.parts]


def test_feature_pipeline_from_preprocess_outputs_takes_raw_rows(kfp_local, penguins_parquet):
    outputs = penguin_features(path=penguins_parquet, derived_features=DERIVED, max_features=8).outputs

    features_dir = Path(outputs["features"].path)
    assert sorted(p.name for p in features_dir.iterdir()) == ["features.joblib", "metadata.json"]
    saved = read_metadata(features_dir)
    # mutual_info keeps 8 of 18 only if cross-validation says the 8 do as well as all 18; the check's
    # scores and decision are saved either way, and the kept count follows the decision.
    check = saved["selection_check"]
    assert check["selected_features"] == 8 and check["all_features"] == 18 and check["folds"] == 3
    assert check["kept"] == (check["with_selection"] >= check["without_selection"])
    kept = 8 if check["kept"] else 18
    assert outputs["feature_count"] == kept
    assert len(saved["feature_names"]) == kept
    assert saved["derived_features"] == ["bill_ratio", "log_mass", "mass_bin"]
    # n_bins arrives as a float through KFP's list parameter and is normalised back to an int.
    assert saved["config"]["derived"][2]["n_bins"] == 4
    assert saved["selection"] == "mutual_info"
    assert outputs["features"].metadata["feature_names"] == saved["feature_names"]

    pipeline = load_estimator(features_dir, "features")
    test = read_dataset(outputs["test"].path).drop(columns="species")
    test.loc[test.index[0], "island"] = "Atlantis"
    test.loc[test.index[1], ["bill_length_mm", "body_mass_g", "sex"]] = [np.nan, np.nan, None]
    out = pipeline.transform(test)
    assert list(out.columns) == saved["feature_names"]
    assert np.isfinite(out.to_numpy(dtype=float)).all()

    report = Path(outputs["report"].path).read_text()
    assert report.startswith("<!DOCTYPE html>")
    for name in saved["candidate_features"]:
        assert f"<td>{name}</td>" in report
    assert report.count(">kept<") == kept
    summary = Path(outputs["summary"].path).read_text()
    assert (
        f"18 candidate features (3 derived), selection mutual_info, max_features 8: {kept} kept." in summary
    )
    assert f"{check['with_selection']:.4g} with the 8 selected features" in summary


def test_unknown_column_in_a_derived_feature_fails_before_writing(kfp_local, penguins_parquet, capsys):
    derived = [DERIVED[0], {"name": "log_mass", "kind": "log", "columns": ["body_mass"]}]
    with pytest.raises(RuntimeError, match="engineer-features"):
        penguin_features(path=penguins_parquet, derived_features=derived, max_features=0)
    logs = capsys.readouterr().out
    assert (
        "ParameterError: derived_features[1] ('log_mass'): column 'body_mass' is not available: "
        "the data has no such column" in logs
    )
    assert _engineer_features_files(kfp_local / "root") == []
