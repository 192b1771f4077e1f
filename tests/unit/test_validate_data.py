"""Unit tests of the data validation logic, on small handmade frames and palmerpenguins."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import palmerpenguins
import pandas as pd
import pytest

from mlstages.components.common.errors import InputDataError, ParameterError, ValidationFailed
from mlstages.components.validate_data.anomalies import Anomaly, check_dataset
from mlstages.components.validate_data.config import (
    MISSING_SHARE_MARGIN,
    OUTLIER_RULE,
    SCHEMA_VERSION,
    ValidationConfig,
)
from mlstages.components.validate_data.report import histogram_svg, render_html, render_markdown
from mlstages.components.validate_data.schema import (
    infer_schema,
    label_kind,
    load_schema,
    save_schema,
    validate_schema,
)
from mlstages.components.validate_data.statistics import compute_statistics
from mlstages.components.validate_data.validate_data import raise_for_anomalies, validate


@pytest.fixture
def frame() -> pd.DataFrame:
    """Ten rows: a numeric feature with one outlier and a gap, a category, text, a date, a flag."""
    return pd.DataFrame(
        {
            "age": [21.0, 35.0, 0.0, 42.0, np.nan, 28.0, 33.0, 39.0, 25.0, 400.0],
            "city": ["Oslo", "Rome", "Oslo", "Lima", "Oslo", None, "Rome", "Oslo", "Lima", "Rome"],
            "note": [
                "the quick brown fox",
                "jumps over the lazy dog",
                "a b c d e",
                "one two three",
                "four five six seven",
                "lorem ipsum dolor sit",
                "amet consectetur adipiscing elit",
                "sed do eiusmod tempor",
                "incididunt ut labore et",
                "dolore magna aliqua ut",
            ],
            "seen": pd.to_datetime(
                [
                    "2024-01-05",
                    "2024-01-01",
                    "2024-02-01",
                    None,
                    "2024-03-01",
                    "2024-01-09",
                    "2024-01-10",
                    "2024-01-11",
                    "2024-01-12",
                    "2024-01-13",
                ]
            ),
            "member": [True, False, True, True, False, True, False, True, True, False],
            "label": ["yes", "no", "yes", "no", "yes", "no", "yes", "no", "yes", "no"],
        }
    )


def kinds(anomalies: list[Anomaly] | tuple[Anomaly, ...]) -> list[str]:
    return [a.kind for a in anomalies]


def only(anomalies, kind: str) -> Anomaly:
    found = [a for a in anomalies if a.kind == kind]
    assert len(found) == 1, f"expected one {kind}, got {anomalies}"
    return found[0]


def check(df: pd.DataFrame, schema: dict | None = None, **config) -> list[Anomaly]:
    """check_dataset with ``config``; the frame's outlier warning is off unless asked for."""
    config.setdefault("check_outliers", False)
    statistics = compute_statistics(df)
    if schema is None:
        label = config.get("label_column") or None
        schema = infer_schema(df, statistics, label if label in df.columns else None)
    return check_dataset(df, schema, statistics, ValidationConfig(**config))


# --- statistics --------------------------------------------------------------------------------


def test_numeric_statistics_match_pandas(frame):
    stats = compute_statistics(frame)["columns"]["age"]
    age = frame["age"]
    assert stats["logical_type"] == "numeric"
    assert stats["dtype"] == "float64"
    assert stats["count"] == age.count() == 9
    assert stats["missing"] == 1
    assert stats["missing_share"] == pytest.approx(0.1)
    assert stats["distinct"] == age.nunique()
    assert stats["min"] == age.min()
    assert stats["max"] == age.max()
    assert stats["mean"] == pytest.approx(age.mean())
    assert stats["std"] == pytest.approx(age.std())
    for key, q in {"p01": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99}.items():
        assert stats["quantiles"][key] == pytest.approx(age.quantile(q))
    assert stats["zeros_share"] == pytest.approx(1 / 9)
    q1, q3 = age.quantile(0.25), age.quantile(0.75)
    upper = q3 + 1.5 * (q3 - q1)
    lower = q1 - 1.5 * (q3 - q1)
    assert stats["outliers"] == int(((age > upper) | (age < lower)).sum()) == 2  # 0 and 400
    assert stats["outlier_bounds"] == {"lower": pytest.approx(lower), "upper": pytest.approx(upper)}
    assert sum(stats["histogram"]["counts"]) == 9
    assert stats["histogram"]["edges"][0] == 0.0
    assert stats["histogram"]["edges"][-1] == 400.0


def test_categorical_boolean_text_and_datetime_statistics(frame):
    columns = compute_statistics(frame)["columns"]
    city = columns["city"]
    assert city["logical_type"] == "categorical"
    assert city["missing"] == 1
    assert city["distinct"] == frame["city"].nunique() == 3
    assert city["top_values"] == [
        {"value": v, "count": int(c)} for v, c in frame["city"].value_counts().items()
    ]
    member = columns["member"]
    assert member["logical_type"] == "boolean"
    assert member["top_values"] == [{"value": "True", "count": 6}, {"value": "False", "count": 4}]
    note = columns["note"]
    assert note["logical_type"] == "text"
    assert note["mean_words"] == pytest.approx(frame["note"].str.split().str.len().mean())
    seen = columns["seen"]
    assert seen["logical_type"] == "datetime"
    assert seen["missing"] == 1
    assert seen["min"] == "2024-01-01T00:00:00"
    assert seen["max"] == "2024-03-01T00:00:00"


def test_top_values_are_capped_at_twenty_and_ties_sorted_by_value():
    values = [f"v{i:02d}" for i in range(30)] + ["v29", "v29"]
    top = compute_statistics(pd.DataFrame({"c": values}))["columns"]["c"]["top_values"]
    assert len(top) == 20
    assert top[0] == {"value": "v29", "count": 3}
    assert [t["value"] for t in top[1:4]] == ["v00", "v01", "v02"]


def test_dataset_level_counts_and_outlier_rule(frame):
    doubled = pd.concat([frame, frame.iloc[[1, 3]]], ignore_index=True)
    stats = compute_statistics(doubled)
    assert stats["dataset"] == {
        "rows": 12,
        "columns": 6,
        "duplicate_rows": int(doubled.duplicated().sum()),
        "duplicate_share": pytest.approx(2 / 12),
    }
    assert "1.5 x IQR" in stats["outlier_rule"] == OUTLIER_RULE


def test_statistics_are_strict_json_without_nan():
    df = pd.DataFrame(
        {
            "empty": [np.nan, np.nan, np.nan],
            "single": [np.nan, 1.0, np.nan],
            "infinite": [np.inf, 1.0, 2.0],
            "flat": [3, 3, 3],
            "listy": [[1], [1], [2]],
        }
    )
    stats = compute_statistics(df)
    json.dumps(stats, allow_nan=False)
    assert stats["columns"]["empty"]["mean"] is None
    assert stats["columns"]["empty"]["histogram"] is None
    assert stats["columns"]["single"]["std"] is None
    assert stats["columns"]["infinite"]["infinite"] == 1
    assert stats["columns"]["infinite"]["max"] == 2.0
    # IQR of a constant column is 0: the rule does not apply.
    assert stats["columns"]["flat"]["outliers"] is None
    assert stats["columns"]["listy"]["distinct"] == 2
    assert stats["dataset"]["duplicate_rows"] == 0


def test_duplicate_column_names_are_rejected():
    df = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    with pytest.raises(InputDataError, match=r"duplicate column names: 'a'"):
        compute_statistics(df)


# --- schema ------------------------------------------------------------------------------------


def test_infer_schema(frame):
    schema = infer_schema(frame, label_column="label")
    assert schema["version"] == SCHEMA_VERSION
    assert schema["label"] == {"column": "label", "kind": "classification"}
    columns = schema["columns"]
    assert list(columns) == list(frame.columns)
    assert columns["age"] == {
        "type": "numeric",
        "may_be_missing": True,
        "max_missing_share": pytest.approx(0.1 + MISSING_SHARE_MARGIN),
        "range": {"min": 0.0, "max": 400.0},
    }
    assert columns["city"]["domain"] == ["Lima", "Oslo", "Rome"]
    assert columns["member"]["domain"] == ["False", "True"]
    assert columns["label"]["may_be_missing"] is False
    assert columns["label"]["max_missing_share"] == pytest.approx(MISSING_SHARE_MARGIN)
    assert "domain" not in columns["note"]
    assert columns["seen"]["type"] == "datetime"
    json.dumps(schema, allow_nan=False)


def test_infer_schema_drops_domain_above_max_domain_size(frame):
    schema = infer_schema(frame, max_domain_size=2)
    assert schema["columns"]["city"]["domain"] is None
    assert schema["columns"]["member"]["domain"] == ["False", "True"]
    assert schema["label"] is None


def test_infer_schema_names_a_label_that_is_not_there(frame):
    with pytest.raises(
        InputDataError, match=r"label_column 'target' is not in the dataset; it has: age, city"
    ):
        infer_schema(frame, label_column="target")


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0, 1, 1, 0], "classification"),
        ([1.5, 2.25, 3.0, 4.0], "regression"),
        (list(range(30)), "regression"),
        (["a", "b", "a", "b"], "classification"),
        ([True, False, True, False], "classification"),
    ],
)
def test_label_kind(values, kind):
    assert label_kind(pd.Series(values)) == kind


def test_data_satisfies_its_own_inferred_schema(frame):
    result = validate(frame, ValidationConfig(label_column="label", check_outliers=False))
    assert result.schema_source == "inferred"
    assert result.anomalies == ()
    assert result.passed


def test_schema_round_trip(tmp_path, frame):
    schema = infer_schema(frame, label_column="label")
    path = tmp_path / "nested" / "schema.json"
    save_schema(schema, path)
    assert load_schema(path) == schema
    assert load_schema(path.parent) == schema  # a directory holding schema.json
    assert not list(path.parent.glob(".*partial"))


def test_load_schema_names_a_missing_file(tmp_path):
    with pytest.raises(InputDataError, match=r"schema file .*nope\.json: no such file"):
        load_schema(tmp_path / "nope.json")


def test_load_schema_names_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text('{"version": 1,\n  "columns": }')
    with pytest.raises(
        InputDataError, match=r"schema file .*schema\.json is not valid JSON: .* line 2 column"
    ):
        load_schema(path)


def _schema_with(change) -> dict:
    schema = {
        "version": 1,
        "label": {"column": "y", "kind": "classification"},
        "columns": {
            "x": {"type": "numeric", "range": {"min": 0, "max": 1}},
            "c": {"type": "categorical", "domain": ["a"]},
            "y": {"type": "categorical"},
        },
    }
    change(schema)
    return schema


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(version=7), r"version must be 1, got 7"),
        (lambda s: s.update(columns={}), r"columns must be a non-empty object"),
        (lambda s: s["columns"]["x"].update(type="number"), r"columns\.x\.type must be one of numeric"),
        (lambda s: s["columns"]["x"].update(rnage={}), r"columns\.x has unknown key\(s\) 'rnage'"),
        (
            lambda s: s["columns"]["x"].update(range={"min": "0", "max": 1}),
            r"columns\.x\.range\.min must be a number or null, got '0'",
        ),
        (lambda s: s["columns"]["x"].update(range={"min": 2, "max": 1}), r"columns\.x\.range has min 2"),
        (lambda s: s["columns"]["x"].update(max_missing_share=1.5), r"columns\.x\.max_missing_share must be"),
        (lambda s: s["columns"]["x"].update(may_be_missing="no"), r"columns\.x\.may_be_missing must be true"),
        (
            lambda s: s["columns"]["c"].update(domain=["a", 1]),
            r"columns\.c\.domain must be null or a list of strings",
        ),
        (lambda s: s["label"].update(column="z"), r"label\.column 'z' is not one of the schema's columns"),
        (lambda s: s["label"].update(kind="ranking"), r"label\.kind must be one of classification"),
    ],
)
def test_load_schema_names_the_file_and_the_faulty_entry(tmp_path, change, message):
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(_schema_with(change)))
    with pytest.raises(InputDataError, match=r"schema file .*edited\.json: " + message):
        load_schema(path)


def test_a_valid_hand_written_schema_loads(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(_schema_with(lambda s: None)))
    assert validate_schema(load_schema(path))["columns"]["x"]["range"] == {"min": 0, "max": 1}


def test_save_schema_refuses_an_invalid_schema(tmp_path):
    with pytest.raises(InputDataError, match=r"version must be 1"):
        save_schema({"columns": {}}, tmp_path / "schema.json")
    assert not (tmp_path / "schema.json").exists()


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "ignore"}, r"parameter policy='ignore' is not one of: 'fail', 'warn'"),
        ({"max_missing_share": 1.5}, r"parameter max_missing_share=1.5 must be a share between 0 and 1"),
        ({"max_duplicate_share": -0.1}, r"parameter max_duplicate_share=-0.1 must be a share"),
        ({"max_outlier_share": "5%"}, r"parameter max_outlier_share='5%' must be a share"),
        ({"range_tolerance": -1.0}, r"parameter range_tolerance=-1.0 must be a number >= 0"),
        ({"range_tolerance": math.inf}, r"parameter range_tolerance=inf must be a number >= 0"),
        ({"check_outliers": "yes"}, r"parameter check_outliers='yes' must be true or false"),
        ({"max_domain_size": 0}, r"parameter max_domain_size=0 must be a whole number >= 1"),
        ({"label_column": None}, r"parameter label_column must be a column name"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        ValidationConfig(**kwargs)


# --- anomalies ---------------------------------------------------------------------------------


def test_missing_and_unexpected_columns(frame):
    schema = infer_schema(frame)
    data = frame.drop(columns=["city"]).assign(extra=1)
    anomalies = check(data, schema)
    missing = only(anomalies, "missing_column")
    assert missing.column == "city"
    assert missing.severity == "error"
    assert (
        "column 'city' is in the schema but not in the dataset; the dataset has: age, note" in missing.message
    )
    unexpected = only(anomalies, "unexpected_column")
    assert (unexpected.column, unexpected.severity) == ("extra", "warning")
    assert "column 'extra' is in the dataset but not in the schema" in unexpected.message
    assert kinds(anomalies) == ["missing_column", "unexpected_column"]  # errors first


def test_wrong_type_names_values_that_are_not_numbers(frame):
    schema = infer_schema(frame)
    data = frame.assign(age=frame["age"].astype(object))
    data.loc[3, "age"] = "n/a"
    data.loc[6, "age"] = "unknown"
    anomaly = only(check(data, schema), "wrong_type")
    assert anomaly.column == "age"
    assert (
        "column 'age' should be numeric (per the schema) but is categorical (dtype object)" in anomaly.message
    )
    assert "2 value(s) are not numbers, e.g. 'n/a', 'unknown' at rows (0-based) 3, 6" in anomaly.message
    assert anomaly.rows == (3, 6)


def test_string_columns_may_switch_between_categorical_and_text(frame):
    schema = infer_schema(frame)
    schema["columns"]["note"]["type"] = "categorical"
    assert "wrong_type" not in kinds(check(frame, schema))


def test_out_of_range_names_count_rows_and_values(frame):
    schema = infer_schema(frame)
    schema["columns"]["age"]["range"] = {"min": 18, "max": 68}
    anomaly = only(check(frame, schema, range_tolerance=0.1), "out_of_range")
    assert anomaly.column == "age"
    assert anomaly.message.startswith("column 'age': 2 value(s) outside the schema range [18, 68]")
    assert "range_tolerance=0.1: [13, 73]" in anomaly.message
    assert "first rows (0-based): 2, 9, values: 0, 400" in anomaly.message
    assert anomaly.rows == (2, 9)


def test_range_tolerance_lets_values_near_the_range_through(frame):
    schema = infer_schema(frame)
    schema["columns"]["age"]["range"] = {"min": 0, "max": 380}
    assert "out_of_range" in kinds(check(frame, schema, range_tolerance=0.0))
    assert "out_of_range" not in kinds(check(frame, schema, range_tolerance=0.1))


def test_one_sided_range(frame):
    schema = infer_schema(frame)
    schema["columns"]["age"]["range"] = {"min": None, "max": 100}
    anomaly = only(check(frame, schema, range_tolerance=0.0), "out_of_range")
    assert anomaly.rows == (9,)


def test_out_of_domain_lists_unseen_categories(frame):
    schema = infer_schema(frame)
    data = frame.copy()
    data.loc[[2, 7], "city"] = "Paris"
    data.loc[8, "city"] = "&<>"
    anomaly = only(check(data, schema), "out_of_domain")
    assert anomaly.column == "city"
    assert "column 'city': 3 value(s) not in the schema's domain: 'Paris' (2), '&<>' (1)" in anomaly.message
    assert "first rows (0-based): 2, 7, 8" in anomaly.message
    assert anomaly.rows == (2, 7, 8)


def test_too_many_missing_over_the_configured_share():
    df = pd.DataFrame({"x": [1.0, None, None, None, 5.0], "y": [1, 2, 3, 4, 5]})
    anomaly = only(check(df, max_missing_share=0.5), "too_many_missing")
    assert anomaly.column == "x"
    assert anomaly.severity == "error"
    assert (
        "column 'x': 60.0% of values are missing (3 of 5, first rows (0-based): 1, 2, 3)" in anomaly.message
    )
    assert "more than max_missing_share=0.5" in anomaly.message
    assert check(df, max_missing_share=0.6) == []


def test_too_many_missing_over_the_schema_share(frame):
    schema = infer_schema(frame)
    data = frame.copy()
    data.loc[[0, 1, 2], "age"] = np.nan  # 40% missing; the schema allows 15%
    anomaly = only(check(data, schema), "too_many_missing")
    assert "more than the schema allows for it (max_missing_share 0.15)" in anomaly.message
    assert anomaly.rows == (0, 1, 2, 4)


def test_missing_values_where_the_schema_saw_none_are_a_warning(frame):
    schema = infer_schema(frame)
    # 1 missing in 30 rows is within the schema's margin, but the schema saw none.
    data = pd.concat([frame] * 3, ignore_index=True)
    data["member"] = data["member"].astype(object)
    data.loc[5, "member"] = None
    anomaly = only(check(data, schema), "unexpected_missing")
    assert anomaly.severity == "warning"
    assert "column 'member'" in anomaly.message and "first rows (0-based): 5" in anomaly.message


def test_all_missing_column_is_an_error_and_only_that():
    df = pd.DataFrame({"x": [1, 2, 3, 4], "gone": [None, None, None, None]})
    anomalies = check(df)
    anomaly = only(anomalies, "all_missing")
    assert anomaly.severity == "error"
    assert anomaly.message.startswith("column 'gone' is entirely missing (all 4 values)")
    assert kinds(anomalies) == ["all_missing"]


def test_duplicate_rows_over_the_share_name_the_rows_they_repeat():
    df = pd.DataFrame({"a": [1, 2, 3, 1, 5, 2, 1], "b": list("xyzxwyx")})
    anomaly = only(check(df, max_duplicate_share=0.05), "duplicate_rows")
    assert anomaly.column is None
    assert anomaly.severity == "error"
    assert anomaly.message.startswith(
        "3 of 7 rows (42.9%) repeat an earlier row, more than max_duplicate_share=0.05"
    )
    assert "row 3 repeats row 0, row 5 repeats row 1, row 6 repeats row 0" in anomaly.message
    assert anomaly.rows == (3, 5, 6)
    assert "duplicate_rows" not in kinds(check(df, max_duplicate_share=0.5))


def test_constant_column_is_a_warning():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "k": ["same", "same", None]})
    anomaly = only(check(df), "constant_column")
    assert (anomaly.column, anomaly.severity) == ("k", "warning")
    assert "column 'k' has the same value ('same') in every non-missing row" in anomaly.message


def test_label_missing_names_the_label_and_the_columns(frame):
    anomaly = only(check(frame, label_column="target"), "label_missing")
    assert anomaly.severity == "error"
    assert anomaly.message == (
        "label column 'target' (parameter label_column) is not in the dataset; it has: "
        "age, city, note, seen, member, label"
    )


def test_label_missing_from_a_given_schema_is_reported_once(frame):
    schema = infer_schema(frame, label_column="label")
    anomalies = check(frame.drop(columns=["label"]), schema, label_column="label")
    assert kinds(anomalies) == ["label_missing"]


def test_unlabeled_data_may_lack_the_schema_label(frame):
    schema = infer_schema(frame, label_column="label")
    assert check(frame.drop(columns=["label"]), schema, check_outliers=False) == []


def test_label_has_missing_lists_rows(frame):
    data = frame.copy()
    data.loc[[1, 6], "label"] = None
    anomalies = check(data, label_column="label")
    anomaly = only(anomalies, "label_has_missing")
    # unlabelled_rows='drop' (the default): a warning, since preprocess drops those rows.
    assert anomaly.message == (
        "label column 'label' is missing in 2 of 10 row(s), first rows (0-based): 1, 6; preprocess "
        "drops them (unlabelled_rows='drop'); fill the label upstream to keep them"
    )
    assert anomaly.severity == "warning" and anomaly.rows == (1, 6)
    assert "too_many_missing" not in kinds(anomalies)
    refused = only(check(data, label_column="label", unlabelled_rows="fail"), "label_has_missing")
    assert refused.severity == "error"
    assert refused.message.endswith(
        "fill the label, or set unlabelled_rows='drop' to train without those rows"
    )


def test_a_label_missing_in_every_row_is_an_error_whatever_the_policy(frame):
    data = frame.assign(label=None)
    for policy in ("drop", "fail"):
        anomaly = only(check(data, label_column="label", unlabelled_rows=policy), "label_has_missing")
        assert anomaly.severity == "error"
        assert "no row has a label: check label_column" in anomaly.message


def test_a_bad_unlabelled_rows_setting_is_named():
    with pytest.raises(
        ParameterError, match="parameter unlabelled_rows='keep' is not one of: 'drop', 'fail'"
    ):
        ValidationConfig(label_column="label", unlabelled_rows="keep")


def test_single_class_label(frame):
    data = frame.assign(label="yes")
    anomalies = check(data, label_column="label")
    anomaly = only(anomalies, "single_class_label")
    assert anomaly.severity == "error"
    assert "classification label column 'label' has only one class ('yes') in 10 row(s)" in anomaly.message
    assert "constant_column" not in kinds(anomalies)


def test_constant_regression_label_is_a_constant_column_not_a_single_class():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, 0.5, 0.5]})
    schema = infer_schema(df, label_column="y")
    schema["label"]["kind"] = "regression"
    anomalies = check(df, schema, label_column="y")
    assert kinds(anomalies) == ["constant_column"]


def test_outliers_over_the_share_are_a_warning(frame):
    anomaly = only(check(frame, check_outliers=True, max_outlier_share=0.1), "outliers")
    assert (anomaly.column, anomaly.severity) == ("age", "warning")
    assert "column 'age': 2 value(s) (22.2%) are outliers by the IQR rule" in anomaly.message
    assert "first rows (0-based): 2, 9" in anomaly.message
    assert "outliers" not in kinds(check(frame, check_outliers=True, max_outlier_share=0.25))
    assert "outliers" not in kinds(check(frame, check_outliers=False))


def test_empty_dataset(frame):
    schema = infer_schema(frame)
    anomalies = check(frame.iloc[0:0], schema)
    assert kinds(anomalies) == ["empty_dataset"]
    assert anomalies[0].message == "the dataset has no rows"


def test_non_text_column_names_are_checked_by_their_text():
    df = pd.DataFrame({0: [1.0, 2.0, 3.0], 1: ["a", "b", "c"]})
    result = validate(df, ValidationConfig())
    assert list(result.schema["columns"]) == ["0", "1"]
    assert result.anomalies == ()


# --- the whole stage and the policy ------------------------------------------------------------


def test_policy_fail_raises_listing_every_error(frame):
    schema = infer_schema(frame, label_column="label")
    data = frame.drop(columns=["city"]).assign(label="yes")
    data.loc[4, "age"] = 1000.0
    result = validate(data, ValidationConfig(label_column="label", policy="fail"), schema=schema)
    assert result.schema_source == "given"
    assert not result.passed
    assert {a.kind for a in result.errors} == {"missing_column", "out_of_range", "single_class_label"}
    with pytest.raises(ValidationFailed) as caught:
        raise_for_anomalies(result)
    message = str(caught.value)
    assert message.startswith("data validation failed with 3 error(s) (policy 'fail'")
    lines = message.splitlines()[1:]
    assert len(lines) == 3
    for anomaly in result.errors:
        assert f"- {anomaly.kind}: {anomaly.message}" in lines
    assert caught.value.anomalies == result.errors


def test_policy_warn_returns_a_failed_result(frame):
    result = validate(frame.assign(label="yes"), ValidationConfig(label_column="label", policy="warn"))
    assert not result.passed
    assert kinds(result.errors) == ["single_class_label"]
    raise_for_anomalies(result)  # does not raise
    assert result.decision.startswith("failed: 1 error(s)")
    assert "policy 'warn': the pipeline continues" in result.decision


def test_warnings_alone_pass(frame):
    result = validate(frame, ValidationConfig(label_column="label", max_outlier_share=0.1))
    assert result.passed
    assert kinds(result.warnings) == ["outliers"]
    raise_for_anomalies(result)
    assert result.decision == "passed with 1 warning(s)"
    assert result.summary_metadata()["warning_count"] == 1


def test_a_given_schema_is_not_changed(frame):
    schema = infer_schema(frame)
    before = copy.deepcopy(schema)
    result = validate(frame.drop(columns=["note"]), ValidationConfig(), schema=schema)
    assert result.schema == before
    assert kinds(result.errors) == ["missing_column"]


def test_penguins_pass_with_policy_fail():
    penguins = palmerpenguins.load_penguins()
    result = validate(penguins, ValidationConfig(label_column="species", policy="fail"))
    raise_for_anomalies(result)
    assert result.passed
    assert result.errors == []
    assert result.statistics["dataset"]["rows"] == len(penguins)
    assert result.statistics["columns"]["sex"]["missing"] == penguins["sex"].isna().sum()
    assert result.schema["label"] == {"column": "species", "kind": "classification"}
    assert result.schema["columns"]["species"]["domain"] == ["Adelie", "Chinstrap", "Gentoo"]


# --- reports -----------------------------------------------------------------------------------


def test_html_and_markdown_escape_column_names_and_values():
    hostile = "<script>alert(1)</script>"
    df = pd.DataFrame({hostile: [1.0, 2.0, 3.0, 4.0], "c": ["&<>", "&<>", "x", "y"]})
    schema = infer_schema(df)
    schema["columns"]["c"]["domain"] = ["x", "y"]
    result = validate(df, ValidationConfig(policy="warn"), schema=schema)
    assert kinds(result.errors) == ["out_of_domain"]
    page = render_html(result, title="Report <b>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&<>" not in page
    assert "&amp;&lt;&gt;" in page
    assert "Report &lt;b&gt;" in page
    assert page.count("<svg") == 1
    assert 'class="bad">error</td>' in page
    markdown = render_markdown(result)
    assert "<script" not in markdown
    assert "&<>" not in markdown
    assert "&lt;script&gt;" in markdown


def test_html_report_sections_and_histogram(frame):
    result = validate(frame, ValidationConfig(label_column="label", max_outlier_share=0.1))
    page = render_html(result)
    for heading in ("Overview", "Anomalies", "Column statistics", "Numeric distributions", "Outlier rule"):
        assert f"<h2>{heading}</h2>" in page
    assert "Decision: passed with 1 warning(s)" in page
    assert 'class="warn">warning</td>' in page
    # One numeric column: one histogram with its 20 bars, no scripts or external resources.
    assert page.count("<svg") == 1
    assert page.count("<rect") == 20
    assert not re.search(r"<script|src=|href=", page)


def test_histogram_svg_scales_bars_and_escapes_its_label():
    svg = histogram_svg([0.0, 1.0, 2.0], [2, 4], label='a"<b>')
    assert 'height="30.00"' in svg and 'height="60.00"' in svg
    assert 'aria-label="histogram of a&quot;&lt;b&gt;"' in svg
    assert "<title>[0, 1]: 2</title>" in svg


def test_markdown_summary(frame):
    result = validate(frame.assign(label="yes"), ValidationConfig(label_column="label", policy="warn"))
    markdown = render_markdown(result)
    assert "**Decision: failed: 1 error(s)" in markdown
    assert "- **error** `single_class_label`: classification label column &#x27;label&#x27;" in markdown
    assert f"| age | numeric | 1 | 10 | 9 | 0 | 400 | {frame['age'].mean():.4g} |" in markdown


def test_doubtful_column_types_are_warnings_with_examples_not_failures():
    from mlstages.components.validate_data.validate_data import raise_for_anomalies as apply_policy
    from mlstages.components.validate_data.validate_data import validate as run_validation

    rows = 40
    df = pd.DataFrame(
        {
            "customer": [f"C{1000 + i}" for i in range(rows)],
            "mass": [f"{3000 + 50 * i:,}" for i in range(rows)],
            "label": ["yes", "no"] * (rows // 2),
        }
    )
    result = run_validation(df, ValidationConfig(label_column="label", policy="fail"))
    found = {a.column: a for a in result.anomalies if a.kind in ("id", "numeric_text")}
    assert found["customer"].kind == "id" and found["customer"].severity == "warning"
    assert found["mass"].kind == "numeric_text" and "'3,000'" in found["mass"].message
    apply_policy(result)  # warnings never fail the policy
