"""The custom estimators: one package with stable import paths, scikit-learn's conventions, and the
fast transform held to the fitted preprocessor by a property-based differential test."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from palmerpenguins import load_penguins

from mlstages.components.common import estimators
from mlstages.components.common.estimators import derived, outliers, selection, text
from mlstages.components.common.estimators.fast_transform import compile_preprocessor
from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.train import train

# Modules a saved model may refer to besides the suite's estimators package.
ALLOWED_ROOTS = (
    "sklearn",
    "numpy",
    "pandas",
    "scipy",
    "joblib",
    "builtins",
    "copyreg",
    "collections",
    "_codecs",
)
ESTIMATORS = estimators.__name__


def _pickled_globals(path: Path) -> set[str]:
    """Every module.name that loading the pickle resolves, recorded by joblib's own unpickler."""
    import joblib.numpy_pickle

    seen: set[str] = set()

    class Recording(joblib.numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str):
            seen.add(f"{module}.{name}")
            return super().find_class(module, name)

    with open(path, "rb") as handle:
        Recording(str(path), handle, ensure_native_byte_order=True).load()
    return seen


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory) -> Path:
    """A model exported the way the pipeline exports one, with every custom step in it: outlier
    clipping, derived features, selection."""
    penguins = load_penguins()
    prepared = preprocess(penguins, PreprocessConfig(label_column="species"))
    features = engineer_features(
        prepared.train,
        prepared.preprocessor,
        FeatureConfig(
            label_column="species",
            task="classification",
            derived=(
                {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]},
            ),
            selection="mutual_info",
            max_features=8,
        ),
    )
    config = TrainConfig(
        label_column="species",
        task="classification",
        model_families=("logistic_regression",),
        cv_folds=2,
        search_space={"logistic_regression": {"C": [1.0]}},
    )
    result = train(prepared.train, features.feature_pipeline, config)
    types = {c: "categorical" if penguins[c].dtype == object else "numeric" for c in result.input_columns}
    directory = tmp_path_factory.mktemp("model")
    export_model(result, directory, types)
    # joblib keeps large numpy arrays outside the pickle stream only with mmap; a plain dump is one stream.
    return directory / "model.joblib"


def test_every_class_a_saved_model_needs_lives_in_the_estimators_package_or_a_library(exported_model):
    names = _pickled_globals(exported_model)
    ours = {n for n in names if n.startswith("mlstages.")}
    assert ours, "the model should hold the suite's own steps"
    outside = sorted(n for n in ours if not n.startswith(ESTIMATORS + "."))
    assert not outside, f"saved models refer to suite code outside {ESTIMATORS}: {outside}"
    foreign = sorted(n for n in names - ours if n.split(".")[0] not in ALLOWED_ROOTS)
    assert not foreign, f"saved models refer to unexpected modules: {foreign}"


@pytest.mark.parametrize(
    "estimator_class",
    [
        outliers.OutlierClipper,
        text.TfidfColumn,
        derived.DerivedFeatures,
        selection.CandidateFeatures,
        selection.SelectedColumns,
    ],
)
def test_estimators_follow_scikit_learns_conventions(estimator_class):
    from sklearn.base import clone

    # Parameters are stored in __init__ as given (clone and get_params rely on it).
    parameters = inspect.signature(estimator_class.__init__).parameters
    names = [n for n in parameters if n != "self"]
    assert set(estimator_class._parameter_constraints) >= set(names), estimator_class
    try:
        instance = estimator_class()
    except TypeError:  # a required parameter (SelectedColumns' columns)
        instance = estimator_class(["a"])
    assert set(instance.get_params(deep=False)) == set(names)
    clone(instance)
    # Nothing fitted before fit: fitted attributes end in "_" and appear only then.
    assert not [a for a in vars(instance) if a.endswith("_") and not a.startswith("_")]


# --- the fast transform against the fitted preprocessor, on random frames ------------------------

_PENGUINS = load_penguins()
_PREPARED = preprocess(_PENGUINS, PreprocessConfig(label_column="species"))
_PLAN = compile_preprocessor(_PREPARED.preprocessor)
_COLUMNS = list(_PLAN.input_columns)
_NUMERIC = [c for c in _COLUMNS if pd.api.types.is_numeric_dtype(_PENGUINS[c])]
_CATEGORICAL = [c for c in _COLUMNS if c not in _NUMERIC]

_numbers = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.integers(min_value=-(10**9), max_value=10**9),
)
_categories = st.one_of(
    st.none(),
    st.sampled_from(sorted({str(v) for c in _CATEGORICAL for v in _PENGUINS[c].dropna()})),
    st.text(max_size=8),  # mostly unseen
)


@st.composite
def _frames(draw) -> pd.DataFrame:
    rows = draw(st.integers(min_value=1, max_value=6))
    data = {c: draw(st.lists(_numbers, min_size=rows, max_size=rows)) for c in _NUMERIC}
    data |= {c: draw(st.lists(_categories, min_size=rows, max_size=rows)) for c in _CATEGORICAL}
    frame = pd.DataFrame(data)
    for c in _NUMERIC:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in _CATEGORICAL:
        frame[c] = frame[c].astype(object)
    return frame[_COLUMNS]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames())
def test_the_fast_transform_gives_the_fitted_preprocessors_numbers(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown categories, on purpose
        expected = np.asarray(_PREPARED.preprocessor.transform(frame), dtype=np.float64)
    got = _PLAN.transform(frame)
    np.testing.assert_array_equal(got, expected)
