"""Running pipeline tasks in their images: the podman socket, kfp.local's DockerRunner and the exit-code guard."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstages.tooling.catalog import REPO_ROOT
from mlstages.tooling.container_engine import (
    ENGINE_ENV,
    IMAGE_UID,
    MAX_SOCKET_PATH,
    SOCKET_START_TIMEOUT_SECONDS,
    ContainerError,
    _engine,
    engine_environment,
)


@contextlib.contextmanager
def podman_socket(path: Path) -> Iterator[str]:
    """Serve podman's Docker-compatible API on the unix socket ``path`` while the block runs;
    yield its DOCKER_HOST value. The service is stopped (and the socket removed) afterwards."""
    path = Path(path).resolve()
    if len(str(path)) > MAX_SOCKET_PATH:
        raise ContainerError(f"socket path {path} is longer than {MAX_SOCKET_PATH} characters")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    address = f"unix://{path}"
    log_path = path.with_suffix(".log")
    with open(log_path, "ab") as log:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", address],
            env=engine_environment("podman"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_socket(address, service, log_path)
        yield address
    finally:
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def docker_api(engine: str, workdir: Path) -> Iterator[str]:
    """The Docker API that kfp.local's DockerRunner talks to, for the block's duration: podman's
    service on ``workdir/podman.sock`` (started and stopped here), or Docker's own. Yields the
    DOCKER_HOST value ("" for Docker's default)."""
    if engine == "podman":
        with podman_socket(Path(workdir) / "podman.sock") as address:
            yield address
    else:
        yield os.environ.get("DOCKER_HOST", "")


def _wait_for_socket(address: str, service: subprocess.Popen, log_path: Path) -> None:
    import docker

    deadline = time.monotonic() + SOCKET_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise ContainerError(
                f"podman system service exited with {service.returncode}: "
                f"{log_path.read_text(errors='replace')[-2000:]}"
            )
        with contextlib.suppress(Exception):
            client = docker.DockerClient(base_url=address, timeout=5)
            try:
                if client.ping():
                    return
            finally:
                client.close()
        time.sleep(0.2)
    raise ContainerError(
        f"podman system service did not answer on {address} within {SOCKET_START_TIMEOUT_SECONDS} s"
    )


def run_task_container(
    client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
) -> int:
    """Run one task's container and return its real exit code.

    Stands in for kfp.local's own ``run_docker_container``, which starts containers with
    auto-remove and reads a container that is already gone as a success: podman removes an
    auto-removed container before its exit code can be read, so every failed task would pass.
    Here the container is kept until its exit code is read, then removed. This is kfp's own bug
    (kubeflow/pipelines#13332, fixed the same way by the open pull requests #13402 and #13907);
    drop this runner when the suite's pinned kfp has the fix (a test in tests/containers says when).
    """
    import docker

    if not any(image in (found.tags + found.attrs.get("RepoDigests", [])) for found in client.images.list()):
        raise ContainerError(f"image {image} is not built here: run `make images` first")
    run_args.pop("auto_remove", None)
    container = client.containers.run(
        image=image, command=command, detach=True, stdout=True, stderr=True, volumes=volumes, **run_args
    )
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@dataclass(frozen=True)
class TaskContainer:
    """One task container that ran: its image and exit code."""

    image: str
    exit_code: int


@contextlib.contextmanager
def exit_codes_kept() -> Iterator[list[TaskContainer]]:
    """While the block runs, kfp.local's DockerRunner reads every task's real exit code; yields
    the list of task containers run, filled as they finish."""
    from kfp.local import docker_task_handler

    ran: list[TaskContainer] = []

    def run_and_record(
        client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
    ) -> int:
        exit_code = run_task_container(client, image, command, volumes, **run_args)
        ran.append(TaskContainer(image, exit_code))
        return exit_code

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = run_and_record
    try:
        yield ran
    finally:
        docker_task_handler.run_docker_container = original


# Variables a task needs to reach the object store the run uses, without probing the network for
# Google credentials; the rest of the host's environment stays out of the containers.
FORWARDED_VARIABLES = (
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
    "NO_GCE_CHECK",
    "GCE_METADATA_HOST",
    "GCE_METADATA_ROOT",
    "GCE_METADATA_IP",
)


def task_environment() -> dict[str, str]:
    """The variables passed into every task container: the object store's and any MLSTAGES_*."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in FORWARDED_VARIABLES or (name.startswith("MLSTAGES_") and name != ENGINE_ENV)
    }


def docker_runner(pipeline_root: Path) -> Any:
    """kfp.local's DockerRunner configured for the suite: host networking (the tasks reach the
    embedded object store on 127.0.0.1), the object store's variables, and a task user that can
    write the run's outputs into ``pipeline_root`` (mounted into every task container).

    Run by root (CI), the tasks run as the images' own unprivileged user, which is given the
    pipeline root, so the run exercises the images as a cluster runs them. Run by anyone else,
    the tasks run as that user, so the outputs stay theirs (rootless podman would also need
    ``--userns=keep-id``, which is not tried here).
    """
    from kfp import local

    environment = task_environment()
    options: dict[str, Any] = {}
    pipeline_root = Path(pipeline_root)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(pipeline_root, IMAGE_UID, IMAGE_UID)
    else:
        options["user"] = f"{os.getuid()}:{os.getgid()}"
        environment["HOME"] = "/tmp"
    return local.DockerRunner(network_mode="host", environment=environment, **options)


E2E_TESTS = REPO_ROOT / "tests" / "containers"


E2E_SWITCH = "MLSTAGES_E2E_CONTAINERS"


def host_network_state() -> dict[str, Any]:
    """What a container engine could change on the host's network: its interfaces and whether it
    forwards packets (podman's bridge network adds an interface and turns forwarding on)."""
    forwarding = Path("/proc/sys/net/ipv4/ip_forward")
    interfaces = Path("/sys/class/net")
    return {
        "interfaces": sorted(p.name for p in interfaces.iterdir()) if interfaces.is_dir() else [],
        "ip_forward": forwarding.read_text().strip() if forwarding.exists() else None,
    }


def containers_present(engine: str) -> set[str]:
    result = _engine(engine, "ps", "--all", "--quiet", "--no-trunc", capture=True)
    return set(result.stdout.split())
