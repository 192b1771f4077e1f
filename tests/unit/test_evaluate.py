"""Unit tests of the evaluation logic: metrics against scikit-learn, slices, errors, reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from feature_helpers import fit_features
from sklearn import metrics as skm
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.evaluate.evaluate import EvaluationResult, evaluate, evaluate_baselines, model_inputs
from mlstages.components.evaluate.metrics import MAX_ROC_POINTS, classification_metrics, regression_metrics
from mlstages.components.evaluate.report import render_html, render_markdown
from mlstages.components.evaluate.slices import MISSING_SLICE, OTHER_SLICE


def raw_pipeline(df: pd.DataFrame, label: str, estimator) -> Pipeline:
    """An exported-model look-alike: feature pipeline + estimator, fitted on raw rows."""
    features = fit_features(df, label)
    return Pipeline([("features", features), ("model", estimator)]).fit(df.drop(columns=[label]), df[label])


def classification_data(n_classes: int, rows: int = 300, seed: int = 0) -> pd.DataFrame:
    X, y = make_classification(
        n_samples=rows,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        class_sep=0.8,
        flip_y=0.1,
        random_state=seed,
    )
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    rng = np.random.default_rng(seed)
    df["region"] = rng.choice(["north", "south", "east"], size=rows)
    df["label"] = np.array(["cat", "dog", "emu"])[y]
    return df


@pytest.fixture(scope="module")
def binary():
    df = classification_data(2)
    train, test = df.iloc[:200], df.iloc[200:].reset_index(drop=True)
    return raw_pipeline(train, "label", LogisticRegression()), test


@pytest.fixture(scope="module")
def multiclass():
    df = classification_data(3)
    train, test = df.iloc[:200], df.iloc[200:].reset_index(drop=True)
    return raw_pipeline(train, "label", LogisticRegression()), test


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=200, n_features=3, noise=10.0, random_state=0)
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(target=y)
    df["size"] = np.random.default_rng(0).uniform(0, 100, size=200)
    train, test = df.iloc[:120], df.iloc[120:].reset_index(drop=True)
    return raw_pipeline(train, "target", Ridge()), test


# --- classification metrics --------------------------------------------------------------------


def test_binary_metrics_equal_scikit_learn_on_the_same_predictions(binary):
    model, test = binary
    result = evaluate(model, test, "label", "classification")
    raw = test.drop(columns=["label"])
    y, pred, proba = test["label"], model.predict(raw), model.predict_proba(raw)

    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y, pred, average="macro"),
        "f1_macro": skm.f1_score(y, pred, average="macro"),
        "precision_weighted": skm.precision_score(y, pred, average="weighted", zero_division=0),
        "recall_weighted": skm.recall_score(y, pred, average="weighted"),
        "f1_weighted": skm.f1_score(y, pred, average="weighted"),
        "precision": skm.precision_score(y, pred, pos_label="dog"),
        "recall": skm.recall_score(y, pred, pos_label="dog"),
        "f1": skm.f1_score(y, pred, pos_label="dog"),
        "roc_auc": skm.roc_auc_score(y == "dog", proba[:, 1]),
        "log_loss": skm.log_loss(y, proba, labels=["cat", "dog"]),
    }
    assert set(result.metrics) == set(expected)
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value), name
    assert 0.5 < result.metrics["roc_auc"] < 1.0  # a real, imperfect model: the check means something
    assert result.classes == ["cat", "dog"]
    assert result.rows == len(test)


def test_binary_confusion_matrix_and_roc_curve_equal_scikit_learn(binary):
    model, test = binary
    result = evaluate(model, test, "label", "classification")
    raw = test.drop(columns=["label"])
    pred, proba = model.predict(raw), model.predict_proba(raw)

    assert result.confusion_matrix == {
        "labels": ["cat", "dog"],
        "matrix": skm.confusion_matrix(test["label"], pred, labels=["cat", "dog"]).tolist(),
    }
    fpr, tpr, thresholds = skm.roc_curve(test["label"] == "dog", proba[:, 1])
    curve = result.roc_curve
    assert (curve["kind"], curve["positive_class"]) == ("binary", "dog")
    assert len(fpr) <= MAX_ROC_POINTS  # 100 rows: no downsampling, the whole curve
    np.testing.assert_allclose(curve["fpr"], fpr)
    np.testing.assert_allclose(curve["tpr"], tpr)
    np.testing.assert_allclose(curve["thresholds"][1:], thresholds[1:])
    assert np.isfinite(curve["thresholds"][0]) and curve["thresholds"][0] > max(proba[:, 1])


def test_multiclass_roc_auc_and_log_loss_equal_scikit_learn(multiclass):
    model, test = multiclass
    result = evaluate(model, test, "label", "classification")
    proba = model.predict_proba(test.drop(columns=["label"]))

    assert result.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(test["label"], proba, multi_class="ovr", average="macro", labels=model.classes_)
    )
    assert result.metrics["log_loss"] == pytest.approx(
        skm.log_loss(test["label"], proba, labels=model.classes_)
    )
    assert "precision" not in result.metrics  # positive-class metrics are for two classes only
    assert len(result.confusion_matrix["matrix"]) == 3


def test_multiclass_roc_curve_is_micro_averaged_one_vs_rest(multiclass):
    model, test = multiclass
    result = evaluate(model, test, "label", "classification")
    proba = model.predict_proba(test.drop(columns=["label"]))
    onehot = (test["label"].to_numpy()[:, None] == model.classes_[None, :]).ravel()
    fpr, tpr, _ = skm.roc_curve(onehot, proba.ravel())

    assert result.roc_curve["kind"] == "micro-average one-vs-rest"
    keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS)).astype(int))
    kept = slice(None) if len(fpr) <= MAX_ROC_POINTS else keep
    np.testing.assert_allclose(result.roc_curve["fpr"], fpr[kept])
    np.testing.assert_allclose(result.roc_curve["tpr"], tpr[kept])


def test_roc_curve_is_downsampled_keeping_its_ends():
    df = classification_data(2, rows=1500, seed=3)
    model = raw_pipeline(df.iloc[:500], "label", LogisticRegression())
    result = evaluate(model, df.iloc[500:], "label", "classification")
    curve = result.roc_curve

    assert len(curve["fpr"]) <= MAX_ROC_POINTS
    assert (curve["fpr"][0], curve["tpr"][0]) == (0.0, 0.0)
    assert (curve["fpr"][-1], curve["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(curve["fpr"]) >= 0) and np.all(np.diff(curve["tpr"]) >= 0)
    assert np.all(np.diff(curve["thresholds"]) <= 0)


def test_integer_labels_match_the_models_classes_even_as_floats():
    df = classification_data(2).assign(label=lambda d: (d["label"] == "dog").astype(int))
    model = raw_pipeline(df.iloc[:200], "label", LogisticRegression())
    test = df.iloc[200:].reset_index(drop=True)
    as_float = test.assign(label=test["label"].astype(float))  # as read back from some sources

    result = evaluate(model, as_float, "label", "classification", classes=[0, 1])
    direct = evaluate(model, test, "label", "classification")
    assert result.metrics == direct.metrics
    assert result.confusion_matrix["labels"] == [0, 1]


def test_classification_metrics_function_matches_scikit_learn_on_labels():
    y_true = ["a", "b", "b", "c", "a", "c"]
    y_pred = ["a", "b", "c", "c", "b", "c"]
    metrics = classification_metrics(y_true, y_pred, None, ["a", "b", "c"])
    assert metrics["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert metrics["roc_auc"] is None and metrics["log_loss"] is None


# --- regression metrics ------------------------------------------------------------------------


def test_regression_metrics_equal_scikit_learn(regression):
    model, test = regression
    result = evaluate(model, test, "target", "regression")
    y, pred = test["target"], model.predict(test.drop(columns=["target"]))

    assert result.metrics == pytest.approx(
        {
            "mse": skm.mean_squared_error(y, pred),
            "rmse": skm.root_mean_squared_error(y, pred),
            "mae": skm.mean_absolute_error(y, pred),
            "r2": skm.r2_score(y, pred),
            "median_absolute_error": skm.median_absolute_error(y, pred),
        }
    )
    assert result.confusion_matrix is None and result.roc_curve is None and result.classes is None


def test_r2_is_undefined_on_one_row_or_a_constant_label():
    assert regression_metrics(np.array([3.0]), np.array([2.0]))["r2"] is None
    assert regression_metrics(np.array([3.0, 3.0]), np.array([2.0, 4.0]))["r2"] is None
    assert regression_metrics(np.array([1.0, 3.0]), np.array([1.0, 3.0]))["r2"] == 1.0


# --- slices ------------------------------------------------------------------------------------


def test_slice_metrics_equal_the_metrics_of_each_slices_rows(binary):
    model, test = binary
    result = evaluate(model, test, "label", "classification", slice_columns=["region"])

    assert [s.value for s in result.slices] == ["east", "north", "south"]
    assert sum(s.rows for s in result.slices) == len(test)
    for s in result.slices:
        part = test[test["region"] == s.value]
        pred = model.predict(part.drop(columns=["label"]))
        assert s.column == "region" and s.rows == len(part)
        assert s.metrics["accuracy"] == pytest.approx(skm.accuracy_score(part["label"], pred))
        assert s.metrics["f1_macro"] == pytest.approx(skm.f1_score(part["label"], pred, average="macro"))
    assert result.slice_notes["region"] == "3 distinct value(s), one slice each"


def test_missing_values_form_their_own_slice(binary):
    model, test = binary
    with_gaps = test.copy()
    with_gaps.loc[[0, 5, 9], "region"] = None
    result = evaluate(model, with_gaps, "label", "classification", slice_columns=["region"])

    missing = [s for s in result.slices if s.value == MISSING_SLICE]
    assert len(missing) == 1 and missing[0].rows == 3
    assert result.slices[-1].value == MISSING_SLICE
    assert "3 missing value(s) form the '(missing)' slice" in result.slice_notes["region"]


def test_single_class_slice_has_no_roc_auc_and_says_n_a(binary):
    model, test = binary
    # One region holds only cats: ROC-AUC (and recall of the positive class) are undefined there.
    one_class = test.assign(region=np.where(test["label"] == "cat", test["region"], "zoo"))
    one_class.loc[one_class["label"] == "cat", "region"] = "cats-only"
    result = evaluate(model, one_class, "label", "classification", slice_columns=["region"])

    cats = next(s for s in result.slices if s.value == "cats-only")
    assert cats.metrics["roc_auc"] is None
    assert cats.metrics["recall"] is None
    assert cats.metrics["accuracy"] is not None
    assert "| cats-only |" in render_markdown(result)
    row = render_markdown(result).split("| cats-only |")[1].split("\n")[0]
    assert "n/a" in row
    assert "n/a" in render_html(result)


def test_multiclass_slice_missing_a_class_averages_roc_auc_over_the_classes_present(multiclass):
    model, test = multiclass
    part = test[test["label"] != "emu"].reset_index(drop=True)
    result = evaluate(model, part.assign(group="all"), "label", "classification", slice_columns=["group"])
    proba = model.predict_proba(part.drop(columns=["label"]))
    expected = np.mean(
        [skm.roc_auc_score(part["label"] == c, proba[:, i]) for i, c in enumerate(["cat", "dog"])]
    )
    assert result.slices[0].metrics["roc_auc"] == pytest.approx(expected)


def test_numeric_slice_column_with_many_values_is_cut_into_quantile_bins(regression):
    model, test = regression
    result = evaluate(model, test, "target", "regression", slice_columns=["size"])

    assert len(result.slices) == 4
    assert sum(s.rows for s in result.slices) == len(test)
    assert all(s.value.startswith("(") and s.value.endswith("]") for s in result.slices)
    lower_edges = [float(s.value[1:].split(",")[0]) for s in result.slices]
    assert lower_edges == sorted(lower_edges)
    assert "cut into 4 quantile bins" in result.slice_notes["size"]


def test_numeric_slice_column_with_few_values_keeps_one_slice_per_value(regression):
    model, test = regression
    coded = test.assign(tier=np.arange(len(test)) % 3 + 1.0)
    result = evaluate(model, coded, "target", "regression", slice_columns=["tier"])
    assert [s.value for s in result.slices] == ["1", "2", "3"]


def test_categorical_slice_column_with_very_many_values_groups_the_rare_ones(regression):
    model, test = regression
    ids = test.assign(customer=[f"c{i:03d}" for i in range(len(test))])
    result = evaluate(model, ids, "target", "regression", slice_columns=["customer"])
    assert len(result.slices) == 51
    assert result.slices[-1].value == OTHER_SLICE
    assert "the 50 most frequent are slices" in result.slice_notes["customer"]


# --- bad input ---------------------------------------------------------------------------------


def test_missing_label_column_is_named(binary):
    model, test = binary
    with pytest.raises(InputDataError, match="label_column 'species' is not a column of the test split"):
        evaluate(model, test, "species", "classification")


def test_missing_slice_column_is_named(binary):
    model, test = binary
    with pytest.raises(InputDataError, match=r"slice_columns: column\(s\) 'country' not in the test split"):
        evaluate(model, test, "label", "classification", slice_columns=["region", "country"])


def test_slice_columns_as_a_string_is_refused(binary):
    model, test = binary
    with pytest.raises(ParameterError, match="slice_columns must be a list of column names, got 'region'"):
        evaluate(model, test, "label", "classification", slice_columns="region")


def test_labels_the_model_never_saw_are_named(binary):
    model, test = binary
    surprising = test.copy()
    surprising.loc[[1, 2], "label"] = ["yak", "emu"]
    with pytest.raises(InputDataError) as error:
        evaluate(model, surprising, "label", "classification")
    assert "has value(s) 'emu', 'yak' in the test data that the model never saw" in str(error.value)
    assert "its classes: 'cat', 'dog'" in str(error.value)


def test_empty_test_split_is_refused(binary):
    model, test = binary
    with pytest.raises(InputDataError, match="the test split has no rows"):
        evaluate(model, test.iloc[:0], "label", "classification")


def test_missing_labels_in_the_test_split_are_located(binary):
    model, test = binary
    gaps = test.copy()
    gaps.loc[4, "label"] = None
    with pytest.raises(InputDataError, match=r"1 missing value\(s\), first at row\(s\) 4"):
        evaluate(model, gaps, "label", "classification")


def test_test_split_without_a_model_input_column_is_named(binary):
    model, test = binary
    with pytest.raises(InputDataError, match=r"lacks the model's input column\(s\) 'region'"):
        evaluate(model, test.drop(columns=["region"]), "label", "classification")


def test_bad_task_is_named(binary):
    model, test = binary
    with pytest.raises(ParameterError, match="parameter task='ranking' is not one of"):
        evaluate(model, test, "label", "ranking")


def test_regression_on_text_labels_is_refused(binary):
    model, test = binary
    with pytest.raises(InputDataError, match="task='regression' needs numbers"):
        evaluate(model, test, "label", "regression")


def test_model_metadata_must_agree_with_the_task_and_label():
    metadata = {
        "task": "classification",
        "label_column": "species",
        "classes": ["a", "b"],
        "input_features": [{"name": "x", "type": "numeric"}, {"name": "island", "type": "categorical"}],
    }
    metadata = ModelCard.from_dict(metadata)
    assert model_inputs(metadata, "species", "classification") == (["a", "b"], ["x", "island"])
    with pytest.raises(
        ParameterError, match="task='regression', but the model was trained for 'classification'"
    ):
        model_inputs(metadata, "species", "regression")
    with pytest.raises(ParameterError, match="label_column='sex', but the model predicts 'species'"):
        model_inputs(metadata, "sex", "classification")


# --- serialization and reports -----------------------------------------------------------------


def test_to_dict_is_json_and_from_dict_reads_it_back(binary):
    model, test = binary
    gaps = test.copy()
    gaps.loc[0, "region"] = None
    result = evaluate(model, gaps, "label", "classification", slice_columns=["region"])
    document = json.loads(json.dumps(result.to_dict(), allow_nan=False))

    assert set(document) >= {"task", "metrics", "slices", "confusion_matrix", "roc_curve"}
    assert document["slices"][0] == {
        "column": "region",
        "value": "east",
        "rows": result.slices[0].rows,
        "metrics": result.slices[0].metrics,
    }
    assert set(document["confusion_matrix"]) == {"labels", "matrix"}
    assert EvaluationResult.from_dict(document) == result


def test_from_dict_names_what_is_missing():
    with pytest.raises(InputDataError, match="not an evaluation written by mlstages evaluate.*'metrics'"):
        EvaluationResult.from_dict({"task": "classification"})


def test_html_report_escapes_slice_values_and_draws_the_roc_curve_inline(binary):
    model, test = binary
    hostile = test.assign(region=np.where(np.arange(len(test)) % 2, "<b>x</b>", "plain"))
    page = render_html(evaluate(model, hostile, "label", "classification", slice_columns=["region"]))

    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<svg" in page and "<polyline" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "Confusion matrix" in page and "<th>actual / predicted</th>" in page


def test_markdown_summary_lists_metrics_slices_and_confusion_matrix(binary):
    model, test = binary
    result = evaluate(model, test, "label", "classification", slice_columns=["region"])
    text = render_markdown(result)

    assert text.startswith("# Evaluate")
    assert f"on {len(test)} test rows: f1_macro = {result.metrics['f1_macro']:.4g}" in text
    assert "| accuracy |" in text and "| region | north |" in text
    assert "| actual / predicted | cat | dog |" in text


def test_baselines_are_evaluated_like_the_model_and_kept_in_the_json_and_reports():
    from sklearn.datasets import load_wine
    from sklearn.dummy import DummyClassifier

    df = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    train_rows, test_rows = df.iloc[::2], df.iloc[1::2]
    X, y = train_rows.drop(columns="cultivar"), train_rows["cultivar"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    dummy = make_pipeline(StandardScaler(), DummyClassifier(strategy="prior")).fit(X, y)

    result = evaluate(model, test_rows, "cultivar", "classification")
    baselines = evaluate_baselines({"dummy": dummy}, test_rows, "cultivar", "classification")
    assert baselines["dummy"] == evaluate(dummy, test_rows, "cultivar", "classification").metrics
    assert baselines["dummy"]["accuracy"] < 0.5 < result.metrics["accuracy"]

    with_floor = EvaluationResult(**{**result.__dict__, "baselines": baselines})
    assert EvaluationResult.from_dict(json.loads(json.dumps(with_floor.to_dict()))) == with_floor
    assert EvaluationResult.from_dict(result.to_dict()).baselines == {}  # older evaluations have none
    assert "| metric | value | baseline: dummy |" in render_markdown(with_floor)
    assert "baseline: dummy" in render_html(with_floor)


def test_slice_labels_are_one_byte_categories_made_once_per_value():
    from mlstages.components.evaluate.slices import slice_values

    series = pd.Series([1, 1.0, "a", None, "b", 1, "a"], dtype=object, name="mixed")
    labels, note = slice_values(series)
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert labels.cat.codes.dtype == np.int8
    assert labels.astype(str).tolist() == ["1", "1", "a", MISSING_SLICE, "b", "1", "a"]
    assert note.startswith("3 distinct value(s)") and "1 missing value(s)" in note
    binned, note = slice_values(pd.Series(np.arange(100.0)))
    assert "quantile bins" in note and binned.cat.categories.size == 4


def test_streamed_evaluation_with_text_held_as_categories_equals_the_in_memory_one(multiclass, tmp_path):
    from mlstages.components.common.dataset_files import write_dataset
    from mlstages.components.evaluate.evaluate import evaluate_dataset

    model, test = multiclass
    test = test.reset_index(drop=True).copy()
    # A slice value and missing values only some batches see: their categories differ.
    test.loc[:40, "region"] = "west"
    test.loc[60:65, "region"] = None
    write_dataset(test, tmp_path / "test", part_rows=70)
    inputs = ["a", "b", "c", "d", "region"]
    streamed = evaluate_dataset(
        model,
        {},
        str(tmp_path / "test"),
        "label",
        "classification",
        ("region",),
        input_columns=inputs,
        batch_rows=32,
    )
    whole = evaluate(model, test, "label", "classification", ("region",), input_columns=inputs)
    assert streamed.to_dict() == whole.to_dict()
    assert {s.value for s in streamed.slices} == {"east", "north", "south", "west", MISSING_SLICE}
