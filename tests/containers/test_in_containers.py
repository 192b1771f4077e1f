"""The container path: every image runs, and the training pipeline with every task inside its own
image (kfp.local's DockerRunner, through podman's Docker-compatible socket or Docker) gives what
the local run gives for the same seed.

These tests need the images built and a Docker API at DOCKER_HOST: `make e2e-containers` builds
the images, starts the socket and runs them (CI does, after the main tests). Anywhere else they
are skipped.
"""

# No `from __future__ import annotations`: KFP reads the types of a component defined here.
import json
import os
import subprocess

import numpy as np
import pytest

from mlstages.components import __version__
from mlstages.components.common import images
from mlstages.tooling import container_engine, container_images, container_tasks, local

pytestmark = pytest.mark.skipif(
    os.environ.get(container_tasks.E2E_SWITCH) != "1",
    reason="needs the built images and a container engine: run `make e2e-containers`",
)

# A smaller search than the default keeps the run quick; the wiring is the same. With this seed
# the model is one of the 69 test rows behind the default gradient boosting: the floor's default
# floor_confidence passes that miss as the test split's noise (the gate says so), as a user's run
# of these settings would.
PARAMS = [
    "cv_folds=3",
    "model_families=[logistic_regression, random_forest]",
    "seed=11",
]
TRAINING_STAGES = {
    "ingest",
    "validate_data",
    "preprocess",
    "engineer_features",
    "train",
    "evaluate",
    "validate_model",
    "deploy",
}


# What a stage's image adds to the base, imported by the image probe.
STAGE_IMPORTS = {
    "ingest": "import sqlalchemy, psycopg, pymysql; ",
    "validate_model": "import kserve, grpc; ",
    "deploy": "import kserve, kserve.models; ",
    "serving": "import kserve, grpc, uvloop, mlstages.components.serving.app; ",
}


def engine() -> str:
    return container_engine.find_engine()


def in_image(image: str, *command: str) -> str:
    """Run ``command`` in a throwaway container of ``image``; its standard output."""
    result = subprocess.run(
        [engine(), "run", "--rm", "--network", "host", image, *command],
        env=container_engine.engine_environment(engine()),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{image} {command}: {result.stderr[-2000:]}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlstages.components.common.emulator import EmbeddedGCS

    with EmbeddedGCS(root=tmp_path_factory.mktemp("gcs"), buckets=[local.LOCAL_BUCKET]):
        yield local.LOCAL_BUCKET


@pytest.fixture(scope="module")
def runs(store, tmp_path_factory):
    """The training pipeline twice on the same data and seed: in containers, then locally."""
    reports = {}
    for where in ("containers", "local"):
        params = local.load_params(
            local.catalog.builtin_params_path("training"),
            [*PARAMS, f"model_registry=gs://{store}/{where}-models"],
        )
        reports[where] = local.run_pipeline(
            "training",
            params,
            workdir=tmp_path_factory.mktemp(where),
            progress=lambda _: None,
            bucket=store,
            containers=where == "containers",
        )
    return reports


@pytest.mark.parametrize("spec", container_images.image_specs(), ids=lambda s: s.stage)
def test_image_runs_the_compiling_kfp_and_the_suite_as_non_root(spec):
    from kfp import __version__ as kfp_version

    # Importing the compiled libraries checks the build's stripping left them loadable.
    probe = (
        "import json, os, shutil, kfp, mlstages.components as suite; "
        "import numpy, scipy.stats, sklearn.ensemble, pandas, pyarrow.parquet, google.cloud.storage; "
        f"{STAGE_IMPORTS.get(spec.stage, '')}"
        "print(json.dumps({'kfp': kfp.__version__, 'suite': suite.__version__, 'uid': os.getuid(), "
        "'compilers': [c for c in ('gcc', 'cc', 'g++', 'make', 'strip') if shutil.which(c)]}))"
    )
    found = json.loads(in_image(spec.tag, "python", "-c", probe))
    assert found == {"kfp": kfp_version, "suite": __version__, "uid": 10001, "compilers": []}


@pytest.mark.parametrize("spec", container_images.image_specs(), ids=lambda s: s.stage)
def test_image_is_labelled_and_within_its_size_ceiling(spec):
    inspected = subprocess.run(
        [engine(), "image", "inspect", spec.tag],
        env=container_engine.engine_environment(engine()),
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(inspected.stdout)[0]
    labels = config.get("Labels") or config["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.title"] == f"mlstages-{spec.stage.replace('_', '-')}"
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert config["Config"].get("Entrypoint") in (None, [])
    ceiling = container_engine.size_ceiling(spec.stage)
    assert config["Size"] < ceiling, (
        f"{spec.tag}: {config['Size'] / 1e6:.0f} MB, ceiling {ceiling / 1e6:.0f} MB"
    )


def test_every_task_ran_in_its_own_stage_image(runs):
    expected = {images.image(stage) for stage in TRAINING_STAGES}
    assert set(runs["containers"].task_images) == expected
    assert runs["local"].task_images == []


def test_container_run_gives_the_local_runs_metrics(runs):
    in_containers = runs["containers"].task("evaluate").artifacts["metrics"]["metadata"]
    here = runs["local"].task("evaluate").artifacts["metrics"]["metadata"]
    assert in_containers.keys() == here.keys()
    for name, value in here.items():
        assert in_containers[name] == pytest.approx(value, abs=1e-9, rel=0), name


def test_container_run_gives_the_local_runs_model(runs):
    from mlstages.components.common.artifacts import load_estimator
    from mlstages.components.common.dataset_files import read_dataset

    test_split = read_dataset(runs["local"].task("preprocess").artifacts["test"]["uri"])
    rows = test_split.drop(columns=["species"])
    models = {
        where: load_estimator(report.task("train").artifacts["model"]["uri"], "model")
        for where, report in runs.items()
    }
    assert list(models["containers"].predict(rows)) == list(models["local"].predict(rows))
    np.testing.assert_allclose(
        models["containers"].predict_proba(rows), models["local"].predict_proba(rows), rtol=0, atol=1e-9
    )


def test_the_gate_and_deploy_ran_in_containers(runs):
    report = runs["containers"]
    assert report.task("validate-model").parameters["blessed"] is True
    assert report.task("deploy").parameters["deployed"] is True


def test_a_failing_task_fails_the_run(tmp_path):
    """podman removes an auto-removed container before kfp reads its exit code; the suite's
    runner keeps it until then, so a task that fails is a failed run."""
    from kfp import dsl
    from kfp import local as kfp_local

    @dsl.component(base_image=images.image("train"), install_kfp_package=False)
    def fails(message: str) -> str:
        raise ValueError(message)

    kfp_local.init(runner=container_tasks.docker_runner(tmp_path), pipeline_root=str(tmp_path))
    with container_tasks.exit_codes_kept() as ran, pytest.raises(RuntimeError, match="FAILURE"):
        fails(message="broken on purpose")
    assert [c.exit_code for c in ran] != [0] and len(ran) == 1


@pytest.mark.skipif(os.environ.get(container_engine.ENGINE_ENV) != "podman", reason="podman's behaviour")
def test_without_the_suites_runner_podman_makes_a_failed_task_read_as_success(tmp_path):
    """Why exit_codes_kept exists: kfp 2.17's own DockerRunner path, under podman, reports a task
    that raised as a success. Should kfp fix this, this test fails and the guard can go."""
    from kfp import dsl
    from kfp import local as kfp_local

    @dsl.component(base_image=images.image("train"), install_kfp_package=False)
    def fails_quietly(message: str):
        raise ValueError(message)

    import docker

    kfp_local.init(runner=container_tasks.docker_runner(tmp_path), pipeline_root=str(tmp_path))
    try:
        fails_quietly(message="read as a success")
    except docker.errors.APIError as exc:
        # The same race, lost the other way: podman removed the container before kfp asked for it.
        # Either way kfp's own path never reports the task's FAILURE.
        assert "no such container" in str(exc)
