"""Infra validation: the candidate served by the real model server (a subprocess on 127.0.0.1) and
queried over HTTP, compared with the model in this process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import sklearn
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from mlstages.components.common.artifacts import METADATA_FILE, save_estimator
from mlstages.components.common.datasets import column_types
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.serving.infra import InfraValidationFailed, infra_validate, render_markdown
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.train import train

LABEL = "body_mass_g"


@pytest.fixture(scope="module")
def regressor_dir(tmp_path_factory) -> Path:
    """A regression model exported by the suite's own stages (derived ratio feature included)."""
    penguins = load_penguins().dropna(subset=[LABEL])
    with threadpool_limits(limits=1):
        prepared = preprocess(penguins, PreprocessConfig(label_column=LABEL, task="regression", seed=0))
        features = engineer_features(
            prepared.train,
            prepared.preprocessor,
            FeatureConfig(
                label_column=LABEL,
                task="regression",
                derived=(
                    {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]},
                ),
            ),
        )
        result = train(
            prepared.train,
            features.feature_pipeline,
            TrainConfig(
                label_column=LABEL,
                task="regression",
                model_families=("linear_regression",),
                cv_folds=2,
                search_space={"linear_regression": {"alpha": [1.0]}},
            ),
        )
    directory = tmp_path_factory.mktemp("regressor") / "model"
    export_model(result, directory, column_types(prepared.train[result.input_columns]))
    return directory


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """Test rows as validate_model passes them: the label column included, missing values too."""
    return load_penguins().dropna(subset=[LABEL]).sample(n=30, random_state=1).reset_index(drop=True)


def test_a_good_model_passes_every_check(regressor_dir, sample):
    result = infra_validate(str(regressor_dir), sample, name="mass", single_row_requests=5)
    assert result.passed, render_markdown(result)
    result.raise_for_failure()
    names = [check.name for check in result.checks]
    for expected in (
        "model loads in-process",
        "model server starts and reports ready",
        "readiness route",
        "V2 model metadata",
        "V1 batch of 30 row(s) matches the in-process model",
        "V2 batch of 30 row(s) matches the in-process model",
        "V1 single-row requests match the in-process model",
        "V2 single-row requests match the in-process model",
        "a malformed request gets a 4xx and the server keeps answering",
    ):
        assert expected in names
    assert result.rows == 30
    assert result.latencies_ms["v1_single_row"]["requests"] == 5
    assert 0 < result.latencies_ms["v1_single_row"]["p50"] <= result.latencies_ms["v1_single_row"]["max"]
    report = render_markdown(result)
    assert report.startswith("**Infra validation passed.**") and "v2_single_row" in report
    assert json.loads(json.dumps(result.to_dict()))["passed"] is True


def test_a_model_that_does_not_load_fails_with_the_checks_listed(tmp_path, sample):
    broken = tmp_path / "broken"
    broken.mkdir()
    garbage = b"this is not a pickle"
    (broken / "model.joblib").write_bytes(garbage)
    metadata = {
        "sha256": hashlib.sha256(garbage).hexdigest(),
        "versions": {"scikit-learn": sklearn.__version__},
        "task": "classification",
        "label_column": LABEL,
        "input_features": [{"name": "bill_length_mm", "type": "numeric"}],
    }
    (broken / METADATA_FILE).write_text(json.dumps(metadata))
    result = infra_validate(str(broken), sample, name="broken", timeout_seconds=30)
    assert not result.passed
    failed = {check.name: check.detail for check in result.failures}
    assert set(failed) == {"model loads in-process", "model server starts and reports ready"}
    assert f"{broken}/model.joblib does not load" in failed["model loads in-process"]
    # The server's own log says why it exited.
    assert "exited with code 1" in failed["model server starts and reports ready"]
    assert "does not load" in failed["model server starts and reports ready"]
    with pytest.raises(InfraValidationFailed) as raised:
        result.raise_for_failure()
    assert "failed 2 of 2 check(s)" in str(raised.value)
    assert "- model loads in-process:" in str(raised.value)
    assert len(raised.value.failures) == 2
    assert render_markdown(result).startswith("**Infra validation FAILED 2 of 2 check(s).**")


def test_a_model_whose_predictions_cannot_be_produced_fails(tmp_path, sample):
    # It loads (a real, picklable Pipeline whose metadata matches) but its estimator was never
    # fitted, so neither this process nor the server can predict with it.
    features = ["island", "bill_length_mm"]
    encoder = ColumnTransformer(
        [
            ("num", SimpleImputer(), ["bill_length_mm"]),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["island"]),
        ]
    ).fit(sample[features])
    unfitted = Pipeline([("features", encoder), ("model", LogisticRegression())])
    directory = tmp_path / "unfitted"
    save_estimator(
        unfitted,
        directory,
        "model",
        {
            "task": "classification",
            "label_column": LABEL,
            "input_features": [{"name": f, "type": column_types(sample[[f]])[f]} for f in features],
        },
    )
    result = infra_validate(str(directory), sample, name="unfitted", single_row_requests=2)
    failed = {check.name: check.detail for check in result.failures}
    assert "model predicts in-process" in failed and "NotFittedError" in failed["model predicts in-process"]
    with pytest.raises(InfraValidationFailed, match="model predicts in-process"):
        result.raise_for_failure()
    # The server itself came up and answered its routes.
    passed = {check.name for check in result.checks if check.passed}
    assert {"model loads in-process", "model server starts and reports ready", "readiness route"} <= passed


def test_served_predictions_that_differ_from_the_in_process_model_fail(tmp_path, sample):
    # DummyClassifier(strategy="uniform") without a seed draws its predictions from numpy's global
    # random state: the server's process and this one answer differently for the same rows.
    features = ["island", "bill_length_mm"]
    encoder = ColumnTransformer(
        [
            ("num", SimpleImputer(), ["bill_length_mm"]),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["island"]),
        ]
    )
    guesser = Pipeline([("features", encoder), ("model", DummyClassifier(strategy="uniform"))])
    guesser.fit(sample[features], sample["species"])
    directory = tmp_path / "guesser"
    save_estimator(
        guesser,
        directory,
        "model",
        {
            "task": "classification",
            "label_column": "species",
            "input_features": [{"name": f, "type": column_types(sample[[f]])[f]} for f in features],
        },
    )
    result = infra_validate(str(directory), sample, name="guesser", single_row_requests=2)
    failed = {check.name: check.detail for check in result.failures}
    assert "V1 batch of 30 row(s) matches the in-process model" in failed
    assert "V2 batch of 30 row(s) matches the in-process model" in failed
    assert failed["V1 batch of 30 row(s) matches the in-process model"].startswith("row ")
    assert ", in-process " in failed["V1 batch of 30 row(s) matches the in-process model"]
    with pytest.raises(InfraValidationFailed, match="V2 batch of 30 row"):
        result.raise_for_failure()


def test_bad_samples_and_parameters_are_named(regressor_dir, sample):
    with pytest.raises(InputDataError, match="lacks the model's input column\\(s\\) 'island'"):
        infra_validate(str(regressor_dir), sample.drop(columns=["island"]))
    with pytest.raises(ParameterError, match="parameter sample must be a DataFrame with at least one row"):
        infra_validate(str(regressor_dir), sample.head(0))
    with pytest.raises(ParameterError, match="parameter model_name='Candidate_1'"):
        infra_validate(str(regressor_dir), sample, name="Candidate_1")
    with pytest.raises(ParameterError, match="parameter timeout_seconds=0"):
        infra_validate(str(regressor_dir), sample, timeout_seconds=0)
    with pytest.raises(ParameterError, match="parameter max_rows=0"):
        infra_validate(str(regressor_dir), sample, max_rows=0)
