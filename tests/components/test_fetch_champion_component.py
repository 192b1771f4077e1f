"""The fetch_champion component run through kfp.local against a registry folder."""

from pathlib import Path

import pytest
from kfp import dsl

from mlstages.components.common import registry
from mlstages.components.common.artifacts import save_estimator
from mlstages.components.fetch_champion.component import fetch_champion


@dsl.pipeline
def fetch(model_registry: str, model_name: str) -> str:
    return fetch_champion(model_registry=model_registry, model_name=model_name).outputs["Output"]


def _publish(tmp_path: Path, root: str, payload: object, name: str) -> str:
    directory = tmp_path / name
    save_estimator(payload, directory, "model", {"task": "classification"})
    (directory / "reference.json").write_text("{}")
    version = registry.publish_model(directory, root, "penguins")
    registry.attach_evaluation(version, b"{}")  # only an evaluated version may become the champion
    return version


def test_fetch_champion_downloads_the_version_the_pointer_names(kfp_local, tmp_path):
    root = str(tmp_path / "registry")
    first = _publish(tmp_path, root, {"w": 1}, "a")
    second = _publish(tmp_path, root, {"w": 2}, "b")
    registry.set_champion(root, "penguins", second)

    run = fetch(model_registry=root, model_name="penguins")

    assert run.output == second != first
    task_dir = next(Path(kfp_local / "root").glob("*/fetch-champion"))
    files = {p.name for p in task_dir.rglob("*") if p.is_file()}
    assert {"model.joblib", "metadata.json", "reference.json"} <= files


def test_no_champion_fails_the_task_and_says_to_train_first(kfp_local, tmp_path, capfd):
    with pytest.raises(RuntimeError, match="fetch-champion"):
        fetch(model_registry=str(tmp_path / "empty"), model_name="penguins")
    logs = capfd.readouterr().out
    assert "no champion for model_name='penguins'" in logs
    assert "run the training pipeline (and let it deploy) first" in logs


def test_fetching_a_champion_imports_no_data_library(tmp_path):
    # The task only moves files: pandas, pyarrow and scikit-learn were a third of its second of life
    # (the model card's column types came through the dataset module).
    import subprocess
    import sys

    root = str(tmp_path / "registry")
    registry.set_champion(root, "penguins", _publish(tmp_path, root, {"w": 1}, "a"))
    script = (
        "import sys\n"
        "from mlstages.components.common.registry import download_champion\n"
        f"download_champion({root!r}, 'penguins', {str(tmp_path / 'out')!r})\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'sklearn', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "out" / "model.joblib").is_file()
