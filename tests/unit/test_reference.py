"""Unit tests of the training reference: what it keeps, how exactly, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from scipy import stats

from mlstages.components.common import storage
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.reference import (
    MAX_CATEGORIES,
    MAX_DISCRETE_VALUES,
    OTHER,
    REFERENCE_FILE,
    attach_metrics,
    bin_counts_sorted,
    build_reference,
    category_counts,
    category_key,
    float_values,
    load_reference,
    quantile_edges,
    save_reference,
    stratified_sample,
)

PENGUIN_TYPES = {
    "island": "categorical",
    "bill_length_mm": "numeric",
    "bill_depth_mm": "numeric",
    "flipper_length_mm": "numeric",
    "body_mass_g": "numeric",
    "sex": "categorical",
    "year": "numeric",
}


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_penguins()


@pytest.fixture(scope="module")
def penguin_reference(penguins) -> dict:
    return build_reference(penguins, "species", PENGUIN_TYPES)


def test_reference_holds_every_value_of_a_small_numeric_column(penguins, penguin_reference):
    entry = penguin_reference["columns"]["bill_length_mm"]
    values = penguins["bill_length_mm"].dropna().to_numpy()
    assert (entry["rows"], entry["count"], entry["missing"]) == (344, 342, 2)
    # 342 values <= max_sample: the sample is every value, so KS runs on the training data itself.
    assert entry["sample"] == sorted(values.tolist())
    assert entry["summary"]["mean"] == pytest.approx(values.mean())
    assert entry["summary"]["std"] == pytest.approx(values.std(ddof=0))
    assert (entry["summary"]["min"], entry["summary"]["max"]) == (values.min(), values.max())
    assert entry["summary"]["quantiles"]["0.5"] == pytest.approx(np.median(values))
    assert entry["distinct"] == len(np.unique(values))
    assert "value_counts" not in entry  # 164 distinct values: binned by quantile, not by value


def test_quantile_bins_count_every_training_value(penguins, penguin_reference):
    entry = penguin_reference["columns"]["body_mass_g"]
    values = penguins["body_mass_g"].dropna().to_numpy()
    edges = np.asarray(entry["bin_edges"])
    assert len(edges) <= 9 and np.all(np.diff(edges) > 0)
    assert sum(entry["bin_counts"]) == entry["count"] == len(values)
    # Bin k holds edges[k-1] <= x < edges[k]: the same counts as np.histogram on closed outer edges.
    expected, _ = np.histogram(values, bins=[-np.inf, *edges, np.inf])
    assert entry["bin_counts"] == expected.tolist()
    # Deciles: no bin holds much more than a tenth of the values (ties can merge bins).
    assert max(entry["bin_counts"]) <= 0.2 * len(values)


def test_categorical_counts_cover_every_category_and_missing_values(penguins, penguin_reference):
    entry = penguin_reference["columns"]["sex"]
    assert entry["counts"] == {"male": 168, "female": 165}
    assert (entry["missing"], entry["count"], entry["other"]) == (11, 333, 0)
    island = penguin_reference["columns"]["island"]
    assert island["counts"] == penguins["island"].value_counts().to_dict()


def test_numeric_column_with_few_values_keeps_each_value(penguin_reference):
    year = penguin_reference["columns"]["year"]
    assert year["value_counts"] == {"2007": 110, "2008": 114, "2009": 120}
    assert year["distinct"] == 3 <= MAX_DISCRETE_VALUES


def test_label_distribution_metrics_and_json(penguin_reference):
    assert penguin_reference["label_column"] == "species"
    assert penguin_reference["label"]["counts"] == {"Adelie": 152, "Gentoo": 124, "Chinstrap": 68}
    assert penguin_reference["features"] == list(PENGUIN_TYPES)
    assert penguin_reference["rows"] == 344
    assert penguin_reference["metrics"] is None
    json.dumps(penguin_reference, allow_nan=False)  # strict JSON: no NaN or infinity anywhere


def test_stratified_sample_is_seeded_and_follows_the_quantiles():
    rng = np.random.default_rng(0)
    values = np.sort(rng.standard_normal(200_000))
    first = stratified_sample(values, 5000, np.random.default_rng(7))
    again = stratified_sample(values, 5000, np.random.default_rng(7))
    other = stratified_sample(values, 5000, np.random.default_rng(8))
    assert len(first) == 5000 and np.array_equal(first, again) and not np.array_equal(first, other)
    # One value from each of the 5,000 equal-count strata.
    strata = np.searchsorted(values, first, side="left") * 5000 // len(values)
    assert np.array_equal(strata, np.arange(5000))
    # Why stratified: its Wasserstein distance to all the values is far below an iid sample's.
    stratified_error = stats.wasserstein_distance(first, values)
    iid_error = stats.wasserstein_distance(rng.choice(values, 5000, replace=False), values)
    assert stratified_error < 0.002 < iid_error / 3


def test_sample_size_and_bins_are_parameters():
    df = pd.DataFrame({"x": np.arange(10_000, dtype=float)})
    reference = build_reference(df, None, {"x": "numeric"}, max_sample=100, bins=4, seed=1)
    entry = reference["columns"]["x"]
    assert len(entry["sample"]) == 100
    assert entry["bin_edges"] == pytest.approx([2499.75, 4999.5, 7499.25])
    assert entry["bin_counts"] == [2500, 2500, 2500, 2500]
    assert reference["params"] == {"max_sample": 100, "bins": 4, "seed": 1}


def test_quantile_edges_merge_tied_bins_and_never_leave_the_first_empty():
    values = np.sort(np.array([0.0] * 80 + list(range(1, 21)), dtype=float))
    edges = quantile_edges(values, 10)
    assert edges[0] > 0  # the first eight deciles are all 0: no empty bin below 0
    counts = bin_counts_sorted(values, edges)
    assert counts[0] == 80 and counts.sum() == 100 and np.all(counts > 0)


def test_infinities_and_nan_count_as_missing_and_an_all_missing_column_keeps_counts():
    df = pd.DataFrame({"x": [1.0, np.inf, -np.inf, np.nan, 2.0], "empty": [np.nan] * 5})
    reference = build_reference(df, None, {"x": "numeric", "empty": "numeric"})
    assert (reference["columns"]["x"]["count"], reference["columns"]["x"]["missing"]) == (2, 3)
    assert reference["columns"]["empty"] == {
        "type": "numeric",
        "kind": "numeric",
        "rows": 5,
        "count": 0,
        "missing": 5,
    }


def test_categories_beyond_the_limit_are_summed_as_other():
    values = [f"c{i:04d}" for i in range(MAX_CATEGORIES + 5)] + ["c0000"] * 3
    reference = build_reference(pd.DataFrame({"id": values}), None, {"id": "categorical"})
    entry = reference["columns"]["id"]
    assert len(entry["counts"]) == MAX_CATEGORIES and entry["counts"]["c0000"] == 4
    assert entry["other"] == 5 and entry["distinct"] == MAX_CATEGORIES + 5
    assert OTHER not in entry["counts"]


def test_category_keys_agree_across_types():
    assert category_key(1) == category_key(1.0) == category_key(np.int64(1)) == category_key("1") == "1"
    assert (
        category_key(2.5) == "2.5"
        and category_key(True) == "True"
        and category_key(np.bool_(False)) == "False"
    )
    counts, missing = category_counts(pd.Series([1, 1.0, "1", None, "a"], dtype=object))
    assert (counts, missing) == ({"1": 3, "a": 1}, 1)
    categorical = pd.Series(pd.Categorical(["a", "b", None], categories=["a", "b", "unused"]))
    assert category_counts(categorical) == ({"a": 1, "b": 1}, 1)


def test_float_values_converts_number_strings_and_names_the_others():
    values, bad = float_values(pd.Series(["1.5", "2", None]))
    assert bad == [] and np.allclose(values[:2], [1.5, 2.0]) and np.isnan(values[2])
    assert float_values(pd.Series(["1", "x", "y", "z", "w"]))[1] == ["'x'", "'y'", "'z'"]
    assert float_values(pd.Series([True, False]))[0].tolist() == [1.0, 0.0]


def test_booleans_are_categories_and_datetime_and_text_are_kept_untested():
    df = pd.DataFrame(
        {
            "flag": [True, False, True, None],
            "when": pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"]),
            "note": ["a b c", "d e f", None, "g h i"],
        }
    )
    reference = build_reference(df, None, {"flag": "boolean", "when": "datetime", "note": "text"})
    assert reference["columns"]["flag"]["counts"] == {"True": 2, "False": 1}
    assert reference["columns"]["when"] == {
        "type": "datetime",
        "kind": "untested",
        "rows": 4,
        "count": 3,
        "missing": 1,
    }
    assert reference["columns"]["note"]["kind"] == "untested"


def test_metrics_from_a_flat_dict_or_an_evaluation(penguins):
    flat = build_reference(penguins, "species", PENGUIN_TYPES, metrics={"accuracy": 0.97, "roc_auc": None})
    assert flat["metrics"] == {"accuracy": 0.97, "roc_auc": None}
    evaluation = {"task": "classification", "metrics": {"f1_macro": 0.95}, "slices": []}
    attached = attach_metrics(flat, evaluation)
    assert attached["metrics"] == {"f1_macro": 0.95} and attached["task"] == "classification"
    assert flat["metrics"] == {"accuracy": 0.97, "roc_auc": None}  # a copy; the input is unchanged
    with pytest.raises(
        ParameterError, match=r"parameter metrics: 'accuracy' is 'high'; metrics must be numbers"
    ):
        attach_metrics(flat, {"accuracy": "high"})


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_sample": 0}, ParameterError, r"parameter max_sample=0 must be a positive integer"),
        ({"bins": 1}, ParameterError, r"parameter bins=1 must be an integer of at least 2"),
        ({"input_columns": {}}, ParameterError, r"parameter input_columns must map each model input column"),
        (
            {"input_columns": {"island": "string"}},
            ParameterError,
            r"parameter input_columns: 'island': 'string' not a logical type; use one of numeric",
        ),
        (
            {"input_columns": {"colour": "categorical"}},
            InputDataError,
            r"input_columns: column\(s\) 'colour' not in the training data; it has: species, island",
        ),
        (
            {"label_column": "island"},
            ParameterError,
            r"parameter label_column='island' is also one of input_columns",
        ),
        (
            {"label_column": "kind"},
            InputDataError,
            r"label_column 'kind' is not a column of the training data; its columns are: species",
        ),
    ],
)
def test_bad_parameters_are_named(penguins, kwargs, error, message):
    arguments = {"label_column": "species", "input_columns": {"island": "categorical"}} | kwargs
    label = arguments.pop("label_column")
    columns = arguments.pop("input_columns")
    with pytest.raises(error, match=message):
        build_reference(penguins, label, columns, **arguments)


def test_empty_training_data_and_a_numeric_column_of_words_are_refused(penguins):
    with pytest.raises(InputDataError, match="the training data has no rows"):
        build_reference(penguins.iloc[:0], "species", PENGUIN_TYPES)
    with pytest.raises(
        InputDataError,
        match=r"column 'island' is declared numeric but has value\(s\) that are not numbers, such as "
        r"'Torgersen', 'Biscoe', 'Dream'; fix the data or its declared type",
    ):
        build_reference(penguins, "species", {"island": "numeric"})


def test_save_and_load_from_a_directory_a_file_and_a_model_directory(tmp_path, penguin_reference):
    path = save_reference(penguin_reference, tmp_path / "model")
    assert path == tmp_path / "model" / REFERENCE_FILE
    assert not list((tmp_path / "model").glob(".*partial"))
    (tmp_path / "model" / "model.joblib").write_bytes(b"stands in for the model")
    for location in (tmp_path / "model", path, f"file://{tmp_path / 'model'}"):
        assert load_reference(location) == penguin_reference


def test_load_from_gcs(gcs_bucket, tmp_path, penguin_reference):
    save_reference(penguin_reference, tmp_path)
    storage.upload_file(tmp_path / REFERENCE_FILE, f"{gcs_bucket}/models/m/v1/{REFERENCE_FILE}")
    assert load_reference(f"{gcs_bucket}/models/m/v1") == penguin_reference
    assert load_reference(f"{gcs_bucket}/models/m/v1/{REFERENCE_FILE}") == penguin_reference
    with pytest.raises(
        InputDataError, match=r"models/m/v2/reference.json: no such file\. The reference statistics"
    ):
        load_reference(f"{gcs_bucket}/models/m/v2")


def test_load_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(
        InputDataError, match=r"reference.json: no such file\. .* written by train as reference.json"
    ):
        load_reference(tmp_path)
    (tmp_path / REFERENCE_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"reference.json is not valid JSON"):
        load_reference(tmp_path)
    (tmp_path / REFERENCE_FILE).write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(
        InputDataError,
        match=r"is not an mlstages reference \(format 'other', expected 'mlstages.reference/1'\)",
    ):
        load_reference(tmp_path)
