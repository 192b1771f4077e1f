"""The monitor_drift component run through kfp.local: a model directory with its reference beside
model.joblib (as train writes it), and windows of current data built from the penguins."""

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model, Output

from mlstages.components.monitor_drift.component import monitor_drift


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def penguins_model_and_window(
    window: str,
    model: Output[Model],
    reference: Output[Artifact],
    current: Output[Dataset],
):
    """Stands in for train + evaluate + a window of new data.

    model: a species classifier (model.joblib + metadata.json) with reference.json beside it, the
    test-set metrics included; reference: the same reference.json alone in a directory; current:
    the test split as it is ("same"), shifted and without 'sex' ("shifted"), or with no rows ("empty").
    """
    from palmerpenguins import load_penguins
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlstages.components.common.artifacts import save_estimator
    from mlstages.components.common.dataset_files import write_dataset
    from mlstages.components.common.reference import build_reference, save_reference
    from mlstages.components.evaluate.evaluate import evaluate

    penguins = load_penguins().drop(columns=["year"])
    train_df, test_df = train_test_split(
        penguins, test_size=0.3, stratify=penguins["species"], random_state=0
    )
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    categorical = ["island", "sex"]
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                categorical,
            ),
        ]
    )
    inputs = categorical[:1] + numeric + categorical[1:]
    pipeline = Pipeline([("features", features), ("model", LogisticRegression(max_iter=1000))])
    pipeline.fit(train_df[inputs], train_df["species"])
    input_types = {c: "numeric" if c in numeric else "categorical" for c in inputs}
    save_estimator(
        pipeline,
        model.path,
        "model",
        {
            "task": "classification",
            "label_column": "species",
            "classes": sorted(penguins["species"].unique()),
            "input_features": [{"name": c, "type": input_types[c]} for c in inputs],
            "input_columns": input_types,
        },
    )
    evaluation = evaluate(pipeline, test_df, "species", "classification", input_columns=inputs)
    stats = build_reference(train_df, "species", input_types, metrics=evaluation.to_dict())
    save_reference(stats, model.path)
    save_reference(stats, reference.path)

    if window == "shifted":
        test_df = test_df.drop(columns=["sex"])
        test_df["bill_length_mm"] = test_df["bill_length_mm"] + 8
        test_df["flipper_length_mm"] = test_df["flipper_length_mm"] * 1.2
        test_df["island"] = "Biscoe"
    elif window == "empty":
        test_df = test_df.iloc[:0]
    current.metadata.update(write_dataset(test_df, current.path))


class MonitorOutputs(NamedTuple):
    drift_report: HTML
    summary: Markdown
    metrics: Metrics
    result: Artifact
    retrain: bool
    reasons: str
    drift_share: float


@dsl.pipeline
def monitor_with_model(window: str, max_metric_drop: float) -> MonitorOutputs:
    prepared = penguins_model_and_window(window=window)
    monitored = monitor_drift(
        current=prepared.outputs["current"],
        reference=prepared.outputs["model"],
        model=prepared.outputs["model"],
        max_metric_drop=max_metric_drop,
    )
    return MonitorOutputs(
        drift_report=monitored.outputs["drift_report"],
        summary=monitored.outputs["summary"],
        metrics=monitored.outputs["metrics"],
        result=monitored.outputs["result"],
        retrain=monitored.outputs["retrain"],
        reasons=monitored.outputs["reasons"],
        drift_share=monitored.outputs["drift_share"],
    )


class DecisionOutputs(NamedTuple):
    result: Artifact
    retrain: bool
    reasons: str
    drift_share: float


@dsl.pipeline
def monitor_without_model(window: str, feature_thresholds: dict) -> DecisionOutputs:
    prepared = penguins_model_and_window(window=window)
    monitored = monitor_drift(
        current=prepared.outputs["current"],
        reference=prepared.outputs["reference"],
        label_column="species",
        feature_thresholds=feature_thresholds,
    )
    return DecisionOutputs(
        result=monitored.outputs["result"],
        retrain=monitored.outputs["retrain"],
        reasons=monitored.outputs["reasons"],
        drift_share=monitored.outputs["drift_share"],
    )


def test_a_window_like_the_training_data_needs_no_retraining(kfp_local):
    run = monitor_with_model(window="same", max_metric_drop=0.05)
    # The split is stratified by species, not by sex: the Z-test finds the test split's share of
    # males off (p = 0.017), one drifted feature of six, well below drift_share.
    assert (run.outputs["retrain"], run.outputs["reasons"]) == (False, "")
    assert run.outputs["drift_share"] == pytest.approx(1 / 6)
    result = json.loads(Path(run.outputs["result"].path).read_text())
    assert [f["column"] for f in result["features"]] == [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
    ]
    assert (
        result["performance"]["computed"] and result["performance"]["comparisons"][0]["metric"] == "f1_macro"
    )
    assert result["performance"]["comparisons"][0]["drop"] == pytest.approx(0.0, abs=1e-12)
    metrics = run.outputs["metrics"].metadata
    assert (metrics["drifted_features"], metrics["features_checked"], metrics["retrain"]) == (1, 6, 0)
    assert 0 < metrics["current_f1_macro"] <= 1 and metrics["labelled_rows"] == 104
    report = Path(run.outputs["drift_report"].path).read_text()
    assert report.count("<svg") == 7 and "No retraining needed." in report  # 6 features and the label
    assert Path(run.outputs["summary"].path).read_text().startswith("# Monitor drift")


def test_a_shifted_window_with_a_missing_column_triggers_retraining(kfp_local):
    run = monitor_with_model(window="shifted", max_metric_drop=0.05)
    assert run.outputs["retrain"] is True
    assert run.outputs["reasons"].startswith("dataset drift: 4 of 6 features drifted (share 0.67 >= 0.5): ")
    assert run.outputs["drift_share"] == pytest.approx(4 / 6)
    result = json.loads(Path(run.outputs["result"].path).read_text())
    sex = next(f for f in result["features"] if f["column"] == "sex")
    assert (sex["status"], sex["drifted"]) == ("column missing", True)
    # Without 'sex' the model cannot score the rows: reported, not a failed task.
    assert result["performance"]["computed"] is False
    assert "the test data lacks the model's input column(s) 'sex'" in result["performance"]["message"]


def test_without_a_model_and_with_a_reference_artifact(kfp_local):
    run = monitor_without_model(window="shifted", feature_thresholds={"body_mass_g": {"method": "psi"}})
    result = json.loads(Path(run.outputs["result"].path).read_text())
    assert result["performance"] is None and run.outputs["retrain"] is True
    assert next(f for f in result["features"] if f["column"] == "body_mass_g")["method"] == "psi"
    assert result["label"]["column"] == "species"


def test_an_empty_window_fails_before_writing(kfp_local, capfd):
    with pytest.raises(RuntimeError, match="Inner task failed"):
        monitor_with_model(window="empty", max_metric_drop=0.05)
    output = capfd.readouterr()
    assert (
        "the current window has no rows: there is nothing to compare with the reference"
        in output.out + output.err
    )
    root = kfp_local / "root"
    # <root>/<run>/<task>/<output>: the window was written, the failed monitor task wrote nothing.
    assert list(root.rglob("reference.json"))
    assert not [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[1] == "monitor-drift"]


@dsl.pipeline
def monitor_on_engine(window: str, engine: str) -> DecisionOutputs:
    prepared = penguins_model_and_window(window=window)
    monitored = monitor_drift(
        current=prepared.outputs["current"],
        reference=prepared.outputs["model"],
        model=prepared.outputs["model"],
        engine=engine,
    )
    return DecisionOutputs(
        result=monitored.outputs["result"],
        retrain=monitored.outputs["retrain"],
        reasons=monitored.outputs["reasons"],
        drift_share=monitored.outputs["drift_share"],
    )


def test_engine_dask_decides_as_the_local_engine(kfp_local, monkeypatch, capfd):
    pytest.importorskip("distributed")
    monkeypatch.setenv("MLSTAGES_DASK_WORKERS", "2")
    local = monitor_on_engine(window="shifted", engine="local")
    spread = monitor_on_engine(window="shifted", engine="dask")
    output = capfd.readouterr().out  # the tasks' output, as kfp.local passes it on
    assert "engine dask: scheduler tcp://" in output and "engine dask: LocalCluster stopped" in output
    assert (spread.outputs["retrain"], spread.outputs["reasons"]) == (
        local.outputs["retrain"],
        local.outputs["reasons"],
    )
    assert json.loads(Path(spread.outputs["result"].path).read_text()) == json.loads(
        Path(local.outputs["result"].path).read_text()
    )
