"""`mlstages registry show`: a version's model card in the terminal, lineage included (issue 14
item 3), the same sections as train's HTML model card."""

from __future__ import annotations

import json

import pytest
from serving_helpers import export_penguins_model

from mlstages.components.common import registry
from mlstages.components.common.model_card import ModelCard
from mlstages.components.common.model_card_report import render_card_html
from mlstages.tooling import cli

LINEAGE = {
    "data": {
        "sources": [
            {
                "uri": "gs://bucket/penguins.csv",
                "rows": 344,
                "columns": 8,
                "content_hash": "ab" * 32,
                "parts": [
                    {"uri": "gs://bucket/models/penguins/windows/w.parquet", "rows": 120, "role": "window"}
                ],
            }
        ],
        "train_split": {"name": "train", "rows": 275, "method": "stratified", "seed": 0},
    },
    "code": {"suite_version": "0.1.0", "images": {"train": "ghcr.io/mlstages/mlstages-train:0.1.0"}},
    "parameters": {"train": {"cv_folds": 2, "search": "halving"}},
    "parent": {"version": "20260101T000000Z-0123abcd", "model_uri": "gs://bucket/models/penguins/x"},
}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp("show")
    model = export_penguins_model(folder / "model", "species", "classification", "logistic_regression", {})
    ModelCard.read(model).with_lineage(**LINEAGE).write(model)
    root = str(folder / "registry")
    uri = registry.publish_model(model, root, "penguins")
    registry.attach_evaluation(uri, json.dumps({"metrics": {"accuracy": 0.97, "f1_macro": 0.96}}).encode())
    registry.set_champion(root, "penguins", uri)
    return root, uri


def _show(capsys, root: str, version: str) -> tuple[int, str]:
    code = cli.main(["registry", "show", "--model", "penguins", "--registry", root, version])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_show_prints_the_card_with_its_lineage_and_test_metrics(published, capsys):
    root, uri = published
    version = uri.rsplit("/", 1)[-1]
    code, out = _show(capsys, root, version)
    assert code == 0, out
    for expected in (
        f"Model card: penguins {version}",
        "gs://bucket/penguins.csv",
        "ab" * 32,
        "part: window",
        "ghcr.io/mlstages/mlstages-train:0.1.0",
        "Parameters: train",
        "20260101T000000Z-0123abcd",
        "Test-set metrics (evaluate)",
        "0.97",
    ):
        assert expected in out, expected
    # 'champion' and the version's URI name the same card.
    assert _show(capsys, root, "champion")[1] == out
    assert _show(capsys, root, uri)[1] == out


def test_the_html_card_holds_the_same_facts(published):
    from mlstages.components.common import storage

    _, uri = published
    card = ModelCard.from_dict(json.loads(storage.read_bytes(f"{uri}/metadata.json")), uri)
    html = render_card_html(card, "Model card")
    assert "gs://bucket/penguins.csv" in html and "part: window" in html and "Parent champion" in html


def test_an_unknown_version_is_one_line_naming_the_list_command(published, capsys):
    root, _ = published
    code, out = _show(capsys, root, "20990101T000000Z-00000000")
    assert code == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "is not a published version of 'penguins'" in lines[0]
    assert "mlstages registry list --model penguins" in lines[0]
