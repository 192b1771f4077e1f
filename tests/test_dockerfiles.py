"""The Dockerfiles, the image plan and the dependency lock, checked without a container engine.

Building and running the images is tests/containers (``make e2e-containers``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from mlstages.components import __version__
from mlstages.components.common import images
from mlstages.tooling import (
    catalog,
    container_engine,
    container_images,
    container_lock,
    container_tasks,
)

DOCKERFILES = sorted(catalog.COMPONENTS_DIR.glob("*/Dockerfile"))
STAGE_DOCKERFILES = [path for path in DOCKERFILES if path != container_engine.BASE_DOCKERFILE]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_every_component_and_the_server_have_a_dockerfile():
    stages = {path.parent.name for path in STAGE_DOCKERFILES}
    assert set(catalog.COMPONENTS) | {"serving"} == stages


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_clean(path):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_conventions(path):
    steps = instructions(path)
    keywords = [keyword for keyword, _ in steps]
    # kfp puts the component's command after an ENTRYPOINT under podman: CMD only.
    assert "ENTRYPOINT" not in keywords
    assert keywords[-1] == "CMD"
    users = [argument for keyword, argument in steps if keyword == "USER"]
    # A stage image that does not switch users runs as its base's last user.
    if path == container_engine.BASE_DOCKERFILE or users:
        assert users[-1] == "10001", "the image must end as the numeric non-root user 10001"
    labels = " ".join(argument for keyword, argument in steps if keyword == "LABEL")
    for key in ("title", "version", "revision", "source"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_base_image_is_a_build_argument_defaulting_to_public_python():
    args = [
        argument for keyword, argument in instructions(container_engine.BASE_DOCKERFILE) if keyword == "ARG"
    ]
    assert f"PYTHON_IMAGE={container_engine.DEFAULT_PYTHON_IMAGE}" in args
    assert "KFP_VERSION=" + __import__("kfp").__version__ in args


@pytest.mark.parametrize("path", STAGE_DOCKERFILES, ids=lambda p: p.parent.name)
def test_stage_images_build_on_the_suite_base(path):
    steps = instructions(path)
    assert ("ARG", f"BASE_IMAGE={images.image('base', prefix=images.DEFAULT_REGISTRY)}") in steps
    assert ("FROM", "${BASE_IMAGE}") in steps
    # One way to add packages: the lock's versions, stripped, no build tool left behind.
    runs = [argument for keyword, argument in steps if keyword == "RUN"]
    assert all(run.startswith("mlstages-add-packages ") for run in runs), runs
    assert f'"mlstages-{path.parent.name.replace("_", "-")}"' in " ".join(a for k, a in steps if k == "LABEL")


def test_image_plan_builds_the_base_first_and_tags_by_version():
    specs = container_images.image_specs("registry.example.com/team")
    assert specs[0].stage == container_engine.BASE_STAGE
    assert {spec.stage for spec in specs[1:]} == {path.parent.name for path in STAGE_DOCKERFILES}
    for spec in specs:
        assert spec.tag == f"registry.example.com/team/mlstages-{spec.stage.replace('_', '-')}:{__version__}"
        assert spec.dockerfile.is_file()


def test_every_compiled_component_runs_an_image_the_build_makes():
    built = {spec.tag for spec in container_images.image_specs(images.DEFAULT_REGISTRY)}
    for stage in catalog.COMPONENTS:
        image = catalog.component(stage).component_spec.implementation.container.image
        assert image in built, f"{stage} runs {image}, which `make images` does not build"


def test_build_command_uses_host_networking_and_the_compiling_kfp():
    from kfp import __version__ as kfp_version

    spec = container_images.image_specs()[1]
    command = container_images.build_command(
        "podman", spec, base_tag="b:1", python_image="p:1", revision="abc"
    )
    assert command[:4] == ["podman", "build", "--network", "host"]
    assert f"KFP_VERSION={kfp_version}" in command
    assert "BASE_IMAGE=b:1" in command and "PYTHON_IMAGE=p:1" in command and "REVISION=abc" in command
    assert command[-1] == str(catalog.REPO_ROOT)


def test_no_engine_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(container_engine.ENGINE_ENV, raising=False)
    with pytest.raises(container_engine.ContainerError, match="no container engine.*Install podman"):
        container_engine.find_engine()


def test_a_docker_client_without_a_daemon_is_not_an_engine(monkeypatch, tmp_path):
    client = tmp_path / "docker"
    client.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    client.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(container_engine.ContainerError, match="docker not found or not running"):
        container_engine.find_engine("docker")


def test_unknown_engine_is_refused(monkeypatch):
    monkeypatch.setenv(container_engine.ENGINE_ENV, "rkt")
    with pytest.raises(container_engine.ContainerError, match="MLSTAGES_CONTAINER_ENGINE='rkt'"):
        container_engine.find_engine()


def test_podman_runs_with_the_suites_settings_unless_the_user_has_their_own(monkeypatch):
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    assert container_engine.engine_environment("podman")["CONTAINERS_CONF"] == str(
        container_engine.CONTAINERS_CONF
    )
    monkeypatch.setenv("CONTAINERS_CONF", "/etc/mine.conf")
    assert container_engine.engine_environment("podman")["CONTAINERS_CONF"] == "/etc/mine.conf"
    settings = tomllib.loads(container_engine.CONTAINERS_CONF.read_text(encoding="utf-8"))
    # A bridge network would change the host's forwarding settings: host networking only.
    assert settings["containers"]["netns"] == "host"


def test_the_lock_pins_every_runtime_dependency_within_pyproject():
    project = tomllib.loads((catalog.REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = container_lock.read_lock()
    declared = list(project["dependencies"])
    for extra in container_engine.LOCKED_EXTRAS:
        declared += project["optional-dependencies"][extra]
    for text in declared:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert name in pins, f"{name} is not in {container_engine.CONSTRAINTS.name}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{container_engine.CONSTRAINTS.name} pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )


def test_a_malformed_lock_line_names_file_and_line(tmp_path):
    lock = tmp_path / "constraints.txt"
    lock.write_text("# header\nnumpy==2.0\nscipy>=1\n")
    with pytest.raises(container_engine.ContainerError, match=r"constraints.txt:3: expected NAME==VERSION"):
        container_lock.read_lock(lock)


def test_the_build_context_holds_only_what_the_images_need():
    ignore = (catalog.REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert included == {
        "pyproject.toml",
        "README.md",
        "components",
        "pipelines",
        # The wheel maps mlstages.tooling to tooling/, so the package build needs the folder.
        "tooling",
        "containers/constraints.txt",
    }


def test_task_environment_forwards_the_object_store_and_nothing_else(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443")
    monkeypatch.setenv("MLSTAGES_STORAGE_RETRY_SECONDS", "5")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-containers")
    forwarded = container_tasks.task_environment()
    assert forwarded["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:4443"
    assert forwarded["MLSTAGES_STORAGE_RETRY_SECONDS"] == "5"
    assert "AWS_SECRET_ACCESS_KEY" not in forwarded
