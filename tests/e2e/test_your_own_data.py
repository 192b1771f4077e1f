"""`mlstages run training --data FILE --set label_column=L`, nothing else, on tables the suite has
never seen: public tables that ship inside scikit-learn (no download)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from kfp_launcher_rules import assert_cluster_safe

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_external_network")]


def _table(name: str):
    from sklearn import datasets

    loader = {"diabetes": datasets.load_diabetes, "breast_cancer": datasets.load_breast_cancer}[name]
    return loader(as_frame=True).frame


def _run_training(tmp_path, data, *settings: str) -> subprocess.CompletedProcess:
    """`mlstages run training --data DATA --set S ...` in a fresh workdir, as a user runs it."""
    command = [sys.executable, "-m", "mlstages.tooling.cli", "run", "training"]
    command += ["--workdir", str(tmp_path / "work"), "--data", str(data)]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def _run_folder(done: subprocess.CompletedProcess) -> Path:
    return Path(re.search(r"^Run folder: (.+)$", done.stdout, re.MULTILINE).group(1).strip())


@pytest.mark.parametrize(
    ("table", "file_name", "task", "family_names"),
    [
        (
            "diabetes",
            "Diabetes Progression.csv",
            "regression",
            ("linear_regression", "random_forest", "gradient_boosting"),
        ),
        (
            "breast_cancer",
            "tumours.parquet",
            "classification",
            ("logistic_regression", "random_forest", "gradient_boosting"),
        ),
    ],
)
def test_your_own_table_trains_with_nothing_but_the_label(tmp_path, table, file_name, task, family_names):
    frame = _table(table)
    path = tmp_path / file_name
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)

    done = _run_training(tmp_path, path, "label_column=target", "cv_folds=3")

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The model is named after the file, in the task the label implies, searched over that task's families.
    expected_name = "diabetes-progression" if table == "diabetes" else "tumours"
    assert f"/models/{expected_name}/" in out
    assert f"task                     = {task}" in out
    assert any(family in out for family in family_names)
    assert "Test-set metrics (evaluate):" in out
    # No penguin in sight: the defaults name no column of the built-in dataset.
    assert "bill_" not in out and "penguins" not in out.replace(str(tmp_path), "")
    assert_cluster_safe(_run_folder(done))


def test_rows_without_a_label_are_dropped_and_counted_not_a_dead_end(tmp_path):
    # palmerpenguins' 'sex' is missing in 11 of 344 rows: a real table with unlabelled rows. As a
    # spreadsheet exports it, with masses as "3,750" text (declared numeric) and a sample id.
    import palmerpenguins

    path = tmp_path / "colony.csv"
    table = palmerpenguins.load_penguins()
    table["body_mass_g"] = table["body_mass_g"].map(lambda v: "" if v != v else f"{int(v):,}")
    table.insert(0, "sample_id", [f"PAL-{i:04d}" for i in range(len(table))])
    table.to_csv(path, index=False)
    done = _run_training(
        tmp_path,
        path,
        "label_column=sex",
        "cv_folds=3",
        'model_families=["logistic_regression"]',
        "column_types={body_mass_g: numeric}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_folder = _run_folder(done)
    summary = next(run_folder.rglob("preprocess/summary")).read_text()
    assert "11 row(s) with no &#x27;sex&#x27; label were dropped before the split" in summary
    assert "parsed as numbers from text" in summary
    assert "sample_id | categorical | excluded | 0 | excluded: an identifier" in summary
    validation = next(run_folder.rglob("validate-data/summary")).read_text()
    assert "missing in 11 of 344 row(s)" in validation and "unlabelled_rows=" in validation
    assert_cluster_safe(run_folder)
