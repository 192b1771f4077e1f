"""The validate_model component run through kfp.local: a first run, then candidates judged against
the champion of a registry in the GCS emulator, infra validation in the real model server, and the
`blessed` output gating a branch with dsl.If.

The candidates are built once, in this process, with the suite's own stages (preprocess ->
engineer_features -> train -> evaluate on the penguins), and enter each pipeline through
dsl.importer, so that every run spends its time in the component under test.
"""

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl, local
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Model
from palmerpenguins import load_penguins
from threadpoolctl import threadpool_limits

from mlstages.components.common import registry, storage
from mlstages.components.common.artifacts import read_metadata
from mlstages.components.common.dataset_files import write_dataset
from mlstages.components.common.datasets import column_types
from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
from mlstages.components.evaluate.evaluate import evaluate
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.train import train
from mlstages.components.validate_model.component import validate_model

# kfp.local warns that the stage's image is not a plain Python image; the subprocess runner uses
# this environment instead, which is what these tests mean to exercise.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")

WEAK = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm")
THRESHOLDS = {"f1_macro": {"min": 0.5, "max_drop": 0.01}, "log_loss": {"max": 1.0}}


@pytest.fixture
def kfp_local(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield tmp_path


def build_candidate(folder: Path, drop_columns: tuple[str, ...]) -> dict[str, str]:
    """What train and evaluate hand to validate_model: the model directory, the test split and the
    evaluation JSON. drop_columns makes a weaker model; the seeded split is the same for all."""
    with threadpool_limits(limits=1):
        prepared = preprocess(
            load_penguins(),
            PreprocessConfig(label_column="species", task="classification", drop_columns=drop_columns),
        )
        features = engineer_features(
            prepared.train, prepared.preprocessor, FeatureConfig("species", "classification")
        )
        trained = train(
            prepared.train,
            features.feature_pipeline,
            TrainConfig(
                "species",
                "classification",
                model_families=("logistic_regression",),
                cv_folds=3,
                search_space={"logistic_regression": {"C": [1.0]}},
            ),
        )
        export_model(trained, folder / "model", column_types(prepared.train[trained.input_columns]))
        result = evaluate(
            trained.model,
            prepared.test,
            "species",
            "classification",
            ("island", "sex"),
            classes=trained.classes,
            input_columns=trained.input_columns,
        )
    write_dataset(prepared.test, folder / "test.parquet")
    (folder / "evaluation.json").write_text(json.dumps(result.to_dict()))
    return {
        "model": str(folder / "model"),
        "test": str(folder / "test.parquet"),
        "evaluation": str(folder / "evaluation.json"),
    }


@pytest.fixture(scope="module")
def candidates(tmp_path_factory) -> dict[str, dict[str, str]]:
    weak = build_candidate(tmp_path_factory.mktemp("weak"), WEAK)
    strong = build_candidate(tmp_path_factory.mktemp("strong"), ())
    # The strong model, but its metadata claims another scikit-learn saved it: the blessing rules
    # pass in-process, and the model server refuses it (KServe's version-skew failure).
    skewed_folder = tmp_path_factory.mktemp("skewed")
    skewed = {key: str(skewed_folder / Path(path).name) for key, path in strong.items()}
    shutil.copytree(strong["model"], skewed["model"])
    shutil.copytree(strong["test"], skewed["test"])  # a dataset is a folder of parts
    shutil.copy(strong["evaluation"], skewed["evaluation"])
    metadata = read_metadata(skewed["model"])
    metadata["versions"]["scikit-learn"] = "1.5.1"
    (Path(skewed["model"]) / "metadata.json").write_text(json.dumps(metadata))
    return {"weak": weak, "strong": strong, "skewed": skewed}


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def deploy_marker(path: str, baseline_uri: str):
    """Stands in for deploy: records that the blessed branch ran."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(baseline_uri or "first run")


@dsl.pipeline
def deploy_when_blessed(blessed: bool, baseline_uri: str, marker: str):
    """The blessed branch as a nested pipeline whose parameter is the bool.

    kfp.local 2.17.0 cannot evaluate dsl.If on a NamedTuple output of a sibling task: it reads the
    channel "validate-model-blessed" as a parent input, finds none, and skips the branch whatever
    the value (a single `-> bool` output works). A condition on a pipeline parameter works both
    there and on a cluster, and a nested pipeline is a DAG, not a pod.
    """
    with dsl.If(blessed == True):  # noqa: E712 -- dsl.If needs a comparison with a constant
        deploy_marker(path=marker, baseline_uri=baseline_uri)


class GateOutputs(NamedTuple):
    blessing: Artifact
    report: HTML
    summary: Markdown
    blessed: bool
    reason: str
    baseline_uri: str


@dsl.pipeline
def gate(
    model_uri: str,
    test_uri: str,
    evaluation_uri: str,
    thresholds: dict,
    slice_columns: list,
    model_registry: str,
    marker: str,
    infra_validation: bool,
) -> GateOutputs:
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
    test = dsl.importer(artifact_uri=test_uri, artifact_class=Dataset, reimport=False)
    evaluation = dsl.importer(artifact_uri=evaluation_uri, artifact_class=Artifact, reimport=False)
    validated = validate_model(
        model=model.output,
        test=test.output,
        evaluation=evaluation.output,
        label_column="species",
        task="classification",
        thresholds=thresholds,
        slice_columns=slice_columns,
        model_registry=model_registry,
        model_name="penguins",
        infra_validation=infra_validation,
    )
    deploy_when_blessed(
        blessed=validated.outputs["blessed"], baseline_uri=validated.outputs["baseline_uri"], marker=marker
    )
    return GateOutputs(
        blessing=validated.outputs["blessing"],
        report=validated.outputs["report"],
        summary=validated.outputs["summary"],
        blessed=validated.outputs["blessed"],
        reason=validated.outputs["reason"],
        baseline_uri=validated.outputs["baseline_uri"],
    )


def run_gate(
    tmp_path: Path,
    candidate: dict[str, str],
    registry_root: str,
    *,
    thresholds: dict = THRESHOLDS,
    infra_validation: bool = False,
):
    marker = tmp_path / "deployed.txt"
    marker.unlink(missing_ok=True)
    run = gate(
        model_uri=candidate["model"],
        test_uri=candidate["test"],
        evaluation_uri=candidate["evaluation"],
        thresholds=thresholds,
        slice_columns=["sex"],
        model_registry=registry_root,
        marker=str(marker),
        infra_validation=infra_validation,
    )
    blessing = json.loads(Path(run.outputs["blessing"].path).read_text())
    return run, blessing, marker


def gate_outputs_written(pipeline_root: Path) -> list[Path]:
    """Files under <root>/<run>/validate-model/: the gate's outputs."""
    return [
        p
        for p in pipeline_root.rglob("*")
        if p.is_file() and p.relative_to(pipeline_root).parts[1] == "validate-model"
    ]


def test_first_run_then_candidates_against_the_champion_gate_dsl_if(kfp_local, gcs_bucket, candidates):
    root = f"{gcs_bucket}/models"

    # 1. First run: no champion, absolute thresholds only; blessed, so the If branch runs.
    run, blessing, marker = run_gate(kfp_local, candidates["weak"], root)
    assert run.outputs["blessed"] is True
    assert blessing["first_run"] is True and blessing["baseline"] is None
    assert "no baseline: first run, change thresholds not applied" in blessing["reasons"]
    assert run.outputs["reason"].startswith("blessed: no baseline: first run")
    assert run.outputs["baseline_uri"] == ""
    assert marker.read_text() == "first run"
    metadata = run.outputs["blessing"].metadata
    assert metadata["blessed"] is True and metadata["decision"] == "blessed" and metadata["first_run"] is True
    assert metadata["checks_failed"] == 0 and metadata["checks_passed"] > 0
    assert Path(run.outputs["summary"].path).read_text().startswith("# Validate model")
    assert "BLESSED" in Path(run.outputs["report"].path).read_text()

    # Deploy would now publish the weak model and make it the champion.
    weak_uri = registry.publish_model(candidates["weak"]["model"], root, "penguins")
    registry.attach_evaluation(weak_uri, b"{}")  # evaluate's part: only evaluated versions are promoted
    registry.set_champion(root, "penguins", weak_uri)

    # 2. A better candidate against that champion: blessed, compared with the champion, and served
    # by the model server (infra validation, the component's default) before the blessing.
    run, blessing, marker = run_gate(kfp_local, candidates["strong"], root, infra_validation=True)
    assert run.outputs["blessed"] is True
    assert blessing["infra_validation"]["passed"] is True
    assert "## Infra validation" in Path(run.outputs["summary"].path).read_text()
    assert run.outputs["baseline_uri"] == weak_uri
    assert blessing["first_run"] is False
    assert blessing["baseline"]["version"] == weak_uri.rsplit("/", 1)[-1]
    drops = [c for c in blessing["checks"] if c["rule"] == "max_drop"]
    # The hashed split puts penguins of unrecorded sex in the test rows too: a slice of its own.
    assert {c["scope"] for c in drops} == {"overall", "sex=female", "sex=male", "sex=(missing)"}
    overall = next(c for c in drops if c["scope"] == "overall")
    assert overall["value"] > overall["baseline"] and all(c["value"] >= c["baseline"] for c in drops)
    assert marker.read_text() == weak_uri
    strong_uri = registry.publish_model(candidates["strong"]["model"], root, "penguins")
    registry.attach_evaluation(strong_uri, b"{}")
    registry.set_champion(root, "penguins", strong_uri)

    # 3. The weak model again, now against the strong champion: not blessed, the branch is skipped.
    run, blessing, marker = run_gate(kfp_local, candidates["weak"], root)
    assert run.outputs["blessed"] is False
    assert run.outputs["baseline_uri"] == strong_uri
    assert not marker.exists()
    assert run.outputs["blessing"].metadata["decision"] == "not blessed"
    assert run.outputs["reason"].startswith("not blessed: f1_macro on the whole test split is ")
    assert "below the baseline's 1 (may drop at most 0.01)" in run.outputs["reason"]
    failed = [c for c in blessing["checks"] if c["status"] == "failed"]
    assert failed and {c["rule"] for c in failed} == {"max_drop"}


def test_no_thresholds_is_not_blessed_and_the_branch_is_skipped(kfp_local, candidates):
    run, blessing, marker = run_gate(kfp_local, candidates["strong"], "", thresholds={})
    assert run.outputs["blessed"] is False
    assert run.outputs["reason"].startswith("not blessed: no thresholds were given")
    assert blessing["checks"] and not marker.exists()


def test_an_unloadable_champion_fails_the_task_and_writes_nothing(kfp_local, candidates, capfd):
    root = kfp_local / "registry"
    missing = root / "penguins" / "20240101T000000Z-0badc0de"
    pointer = {"model_name": "penguins", "version": missing.name, "model_uri": str(missing)}
    storage.write_bytes(registry.champion_uri(str(root), "penguins"), json.dumps(pointer).encode())

    with pytest.raises(RuntimeError, match="Inner task failed"):
        run_gate(kfp_local, candidates["strong"], str(root))

    output = capfd.readouterr()
    # Refused where the pointer is read: a folder without metadata.json is no version.
    assert f"names {missing}, which is not a published version" in output.out + output.err
    assert not (kfp_local / "deployed.txt").exists()
    assert gate_outputs_written(kfp_local / "root") == []


def test_a_candidate_the_model_server_cannot_load_stops_the_pipeline(kfp_local, candidates, capfd):
    with pytest.raises(RuntimeError, match="Inner task failed"):
        run_gate(kfp_local, candidates["skewed"], "", infra_validation=True)

    output = capfd.readouterr()
    logs = output.out + output.err
    assert "InfraValidationFailed" in logs and "saved with scikit-learn 1.5.1" in logs
    assert not (kfp_local / "deployed.txt").exists()
    assert gate_outputs_written(kfp_local / "root") == []


def test_a_bad_threshold_spec_fails_the_task_with_the_metric_named(kfp_local, candidates, capfd):
    with pytest.raises(RuntimeError, match="Inner task failed"):
        run_gate(kfp_local, candidates["strong"], "", thresholds={"log_loss": {"max_drop": 0.1}})
    output = capfd.readouterr()
    assert "parameter thresholds['log_loss']['max_drop'] does not fit log_loss" in output.out + output.err
    assert gate_outputs_written(kfp_local / "root") == []
