"""The model card: the one reader and writer of metadata.json, on local folders and gs://."""

from __future__ import annotations

import json

import pytest

from mlstages.components.common import storage
from mlstages.components.common.model_card import (
    METADATA_FILE,
    InputFeature,
    ModelCard,
    ModelCardError,
    read_metadata,
    write_metadata,
)


def _card(**changes) -> ModelCard:
    values = {
        "task": "classification",
        "label_column": "species",
        "input_features": (InputFeature("bill_length_mm", "numeric"), InputFeature("island", "categorical")),
        "sha256": "ab" * 32,
        "versions": {"scikit-learn": "1.9.1"},
        "classes": ("Adelie", "Gentoo"),
        "family": "logistic_regression",
        "params": {"C": 1.0},
        "cv_score": 0.98,
        "scoring": "f1_macro",
        "cv_folds": 5,
        "search": "grid",
        "train_rows": 240,
        "search_rows": 240,
        "feature_names": ("num__bill_length_mm", "cat__island_Dream"),
    }
    values.update(changes)
    return ModelCard(**values)


def test_a_card_written_and_read_again_is_the_same(tmp_path):
    card = _card(lineage={"data": {"uri": "gs://b/d.csv", "rows": 344}}, extra={"published": "gs://x"})
    card.write(tmp_path)

    again = ModelCard.read(tmp_path)

    assert again == card
    assert again.input_names == ["bill_length_mm", "island"]
    assert again.input_columns == {"bill_length_mm": "numeric", "island": "categorical"}
    assert again.sklearn_version == "1.9.1"


def test_the_file_keeps_the_keys_readers_outside_the_suite_use(tmp_path):
    _card().write(tmp_path)

    data = json.loads((tmp_path / METADATA_FILE).read_text())

    assert data["best_family"] == "logistic_regression"
    assert data["best_params"] == {"C": 1.0}
    assert data["input_features"] == [
        {"name": "bill_length_mm", "type": "numeric"},
        {"name": "island", "type": "categorical"},
    ]
    assert data["input_columns"] == {"bill_length_mm": "numeric", "island": "categorical"}
    assert data["output"]["classes"] == ["Adelie", "Gentoo"]
    assert data["framework"] == "scikit-learn" and data["file"] == "model.joblib"


def test_a_regression_card_has_no_classes(tmp_path):
    card = _card(task="regression", classes=None, label_column="body_mass_g")
    card.write(tmp_path)
    again = ModelCard.read(tmp_path)
    assert again.classes is None and not again.is_classifier
    assert "predict_proba" not in again.output()


def test_older_cards_with_types_only_in_input_columns_still_read(tmp_path):
    data = _card().to_dict()
    data["input_features"] = [{"name": "bill_length_mm"}, {"name": "island"}]
    write_metadata(tmp_path, data)

    assert ModelCard.read(tmp_path).input_columns == {"bill_length_mm": "numeric", "island": "categorical"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "ranking"}, "task is 'ranking'"),
        ({"input_features": []}, "records no input_features"),
        ({"input_features": [{"type": "numeric"}]}, "an entry without a name"),
        ({"input_features": [{"name": "x", "type": "blob"}], "input_columns": {}}, "has type 'blob'"),
        (
            {"input_features": [{"name": "x", "type": "numeric"}, {"name": "x", "type": "numeric"}]},
            "names a column twice",
        ),
        ({"classes": 3}, "classes must be a list"),
    ],
)
def test_a_malformed_card_names_the_file_and_the_key(tmp_path, change, message):
    data = _card().to_dict()
    data.update(change)
    write_metadata(tmp_path, data)

    with pytest.raises(ModelCardError, match=message) as caught:
        ModelCard.read(tmp_path)
    assert f"{tmp_path}/{METADATA_FILE}" in str(caught.value)


def test_a_folder_without_a_card_or_with_broken_json_gets_a_clear_error(tmp_path):
    with pytest.raises(ModelCardError, match="has no metadata.json"):
        read_metadata(tmp_path)
    (tmp_path / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelCardError, match="not readable JSON"):
        read_metadata(tmp_path)
    (tmp_path / METADATA_FILE).write_text("[1, 2]")
    with pytest.raises(ModelCardError, match="not a JSON object"):
        read_metadata(tmp_path)


def test_writing_leaves_no_partial_file(tmp_path):
    write_metadata(tmp_path, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [METADATA_FILE]


@pytest.mark.usefixtures("no_external_network")
def test_a_card_reads_from_gcs(gcs_bucket, tmp_path):
    _card().write(tmp_path / "model")
    uri = f"{gcs_bucket}/models/penguins/v1"
    storage.upload_dir(str(tmp_path / "model"), uri)

    assert ModelCard.read_uri(uri) == _card()
    assert ModelCard.read_uri(str(tmp_path / "model")) == _card()
