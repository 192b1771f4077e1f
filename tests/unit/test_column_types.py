"""column_types (a user's word on a column's type) and the identifier columns left out of the
features, through preprocess and validate_data, on the Palmer penguins table as users export it:
masses written with thousands separators, a yes/no column, a sample id."""

import numpy as np
import pandas as pd
import pytest

from mlstages.components.common.column_checks import ID_COLUMN, NUMERIC_TEXT, apply_column_types
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.estimators.functions import parse_booleans, parse_numbers
from mlstages.components.preprocess.config import PATH_EXCLUDED, PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess, preprocessor_metadata, render_markdown
from mlstages.components.validate_data.config import ValidationConfig
from mlstages.components.validate_data.validate_data import validate


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    df = load_penguins().dropna(subset=["species"]).reset_index(drop=True)
    # As a spreadsheet exports them: "3,750" text, "yes"/"no", and a sample id per row.
    df["body_mass_g"] = df["body_mass_g"].map(lambda v: None if pd.isna(v) else f"{int(v):,}")
    df.loc[7, "body_mass_g"] = "n/a"
    df["sampled_2009"] = np.where(df["year"] == 2009, "Yes", "no")
    df.insert(0, "sample_id", [f"PAL-{i:04d}" for i in range(len(df))])
    return df


def _plan(result) -> dict[str, tuple[str, str]]:
    return {p.column: (p.path, p.treatment) for p in result.column_plan}


def test_parse_numbers_reads_numbers_as_people_write_them():
    frame = pd.DataFrame(
        {"v": ["3,750", "$1,200.50", "12%", " 7 ", "-2.5e3", "1 234", "n/a", "1,5", None, 4]}
    )
    parsed = parse_numbers(frame)["v"].tolist()
    assert parsed[:6] == [3750.0, 1200.5, 12.0, 7.0, -2500.0, 1234.0]
    # A decimal comma is not silently read as thousands: no number at all.
    assert all(np.isnan(v) for v in parsed[6:9])
    assert parsed[9] == 4.0


def test_parse_booleans_reads_the_usual_words():
    frame = pd.DataFrame({"v": ["yes", "No", "TRUE", "f", "1", 0, True, "maybe", None]})
    parsed = parse_booleans(frame)["v"].tolist()
    assert parsed[:7] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert np.isnan(parsed[7]) and np.isnan(parsed[8])


def test_declared_types_are_applied_inside_the_fitted_transformer(penguins):
    config = PreprocessConfig(
        "species", column_types={"body_mass_g": "numeric", "sampled_2009": "boolean", "year": "categorical"}
    )
    result = preprocess(penguins, config)
    plan = _plan(result)
    assert plan["body_mass_g"][0] == "numeric"
    assert "parsed as numbers from text" in plan["body_mass_g"][1]
    assert plan["sampled_2009"][0] == "boolean"
    assert plan["year"][0] == "categorical"
    assert {"num_text__body_mass_g", "bool_text__sampled_2009", "cat__year_2009"} <= set(result.feature_names)
    # Served rows are raw: the transformer parses "4,250" itself, and a value that does not parse
    # is imputed like a missing one.
    rows = result.test.head(3).copy()
    rows["body_mass_g"] = ["4,250", "$4,250", "heavy"]
    out = result.preprocessor.transform(rows)
    assert out["num_text__body_mass_g"].iloc[0] == out["num_text__body_mass_g"].iloc[1]
    median = np.median(parse_numbers(result.train[["body_mass_g"]])["body_mass_g"].dropna())
    imputed = (
        result.preprocessor.named_transformers_["num_text"]
        .named_steps["scale"]
        .transform(pd.DataFrame({"body_mass_g": [median]}))
    )
    assert out["num_text__body_mass_g"].iloc[2] == pytest.approx(float(np.ravel(imputed)[0]))
    assert preprocessor_metadata(result)["config"]["column_types"]["body_mass_g"] == "numeric"


def test_undeclared_the_masses_are_categories_and_the_id_is_left_out(penguins):
    result = preprocess(penguins, PreprocessConfig("species"))
    plan = _plan(result)
    assert plan["body_mass_g"][0] == "categorical"
    assert plan["sample_id"][0] == PATH_EXCLUDED and "identifier" in plan["sample_id"][1]
    assert "sample_id" not in result.input_columns
    assert result.id_columns == ("sample_id",)
    assert preprocessor_metadata(result)["id_columns"] == ["sample_id"]
    assert "column_types={'sample_id': 'categorical'}" in " ".join(result.notes)
    assert "sample_id" in render_markdown(result)


def test_an_id_is_kept_when_declared_or_when_exclusion_is_off(penguins):
    declared = preprocess(penguins, PreprocessConfig("species", column_types={"sample_id": "categorical"}))
    assert "sample_id" in declared.input_columns and declared.id_columns == ()
    kept = preprocess(penguins, PreprocessConfig("species", exclude_id_columns=False))
    assert "sample_id" in kept.input_columns


def test_a_row_number_is_an_identifier_but_a_unique_measurement_is_not():
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame(
        {
            "row": np.arange(1000, 1000 + n),
            "amount": rng.permutation(np.arange(n) * 97 + 13),  # unique, but spread out: a measurement
            "ratio": rng.random(n),  # unique floats: a measurement
            "y": rng.choice(["a", "b"], n),
        }
    )
    result = preprocess(df, PreprocessConfig("y"))
    assert result.id_columns == ("row",)
    assert {"amount", "ratio"} <= set(result.input_columns)


def test_ignore_leaves_a_column_out_of_features_and_of_validation(penguins):
    result = preprocess(penguins, PreprocessConfig("species", column_types={"island": "ignore"}))
    assert "island" not in result.input_columns
    assert _plan(result)["island"] == (PATH_EXCLUDED, "excluded: column_types says ignore")
    validated = validate(penguins, ValidationConfig("species", column_types={"island": "ignore"}))
    assert "island" not in validated.schema["columns"]


def test_validate_data_reads_declared_columns_as_preprocess_does(penguins):
    undeclared = validate(penguins, ValidationConfig("species"))
    kinds = {(a.column, a.kind) for a in undeclared.anomalies}
    assert ("body_mass_g", NUMERIC_TEXT) in kinds and ("sample_id", ID_COLUMN) in kinds
    declared = validate(
        penguins,
        ValidationConfig("species", column_types={"body_mass_g": "numeric", "sample_id": "categorical"}),
    )
    assert not {a.column for a in declared.anomalies} & {"body_mass_g", "sample_id"}
    assert declared.schema["columns"]["body_mass_g"]["type"] == "numeric"
    # "n/a" and the two missing masses are missing once parsed.
    assert declared.statistics["columns"]["body_mass_g"]["missing"] == 3


def test_a_declared_type_the_values_do_not_fit_is_named(penguins):
    with pytest.raises(InputDataError, match=r"column 'island' is declared 'numeric'.*'Torgersen'"):
        preprocess(penguins, PreprocessConfig("species", column_types={"island": "numeric"}))
    with pytest.raises(InputDataError, match=r"column 'sex' is declared 'boolean'.*'male'"):
        apply_column_types(penguins, {"sex": "boolean"})


@pytest.mark.parametrize(
    ("column_types", "message"),
    [
        ({"Island": "categorical"}, r"names column\(s\) 'Island' that the data does not have"),
        ({"island": "number"}, r"column_types\['island'\]='number' is not one of"),
        ({"species": "categorical"}, "names the label column 'species'"),
    ],
)
def test_bad_column_types_are_named(penguins, column_types, message):
    with pytest.raises(ParameterError, match=message):
        preprocess(penguins, PreprocessConfig("species", column_types=column_types))
    with pytest.raises(ParameterError, match=message):
        validate(penguins, ValidationConfig("species", column_types=column_types))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"drop_columns": ("island",), "column_types": {"island": "ignore"}},
            "both drop_columns and column_types",
        ),
        ({"text_columns": ("island",), "column_types": {"island": "numeric"}}, "in text_columns but"),
        ({"split": "time", "time_column": "year", "column_types": {"year": "ignore"}}, "says to ignore it"),
        ({"exclude_id_columns": "yes"}, "exclude_id_columns='yes' must be true or false"),
    ],
)
def test_conflicting_settings_are_named(overrides, message):
    with pytest.raises(ParameterError, match=message):
        PreprocessConfig("species", **overrides)
