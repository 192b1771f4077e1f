"""Build, push and run the suite's container images with podman or docker.

``python -m mlstages.tooling.containers build`` (``make images``) builds the suite's base image and
one image per stage on top of it, tagged ``REGISTRY/mlstages-<stage>:<version>`` (the names
``components/common/images.py`` compiles into the YAML); ``push`` (``make push``) pushes them;
``e2e`` (``make e2e-containers``) builds them and runs the training pipeline with every task in its
own image through ``kfp.local.DockerRunner``.

With podman, which has no Docker daemon, ``podman_socket`` starts ``podman system service`` on a
socket under the project for the Docker SDK that kfp.local uses, and stops it afterwards. Podman
runs with ``containers/containers.conf``: host networking only (a bridge network would change the
host's forwarding settings), runc and cgroupfs.

When no registry is reachable (these build machines), the public Python base image cannot be
pulled; ``make_python_image`` makes an equivalent one from Debian packages with debootstrap and
imports it, with the machine's own CA certificates so that pip inside the build reaches the package
index through the machine's TLS-inspecting egress.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstages.components import __version__
from mlstages.components.common import images
from mlstages.components.common.errors import MlstagesError
from mlstages.tooling.catalog import COMPONENTS_DIR, REPO_ROOT

ENGINE_ENV = "MLSTAGES_CONTAINER_ENGINE"
CONTAINERS_CONF = REPO_ROOT / "containers" / "containers.conf"
CONSTRAINTS = REPO_ROOT / "containers" / "constraints.txt"
# The extras whose packages run in an image or a local run; the lock pins all of them together so
# that the images, the local environment and every stage resolve the same versions.
LOCKED_EXTRAS = ("serve", "local", "sql", "postgres", "mysql", "containers")
DEFAULT_PYTHON_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
# The image make_python_image builds when DEFAULT_PYTHON_IMAGE cannot be pulled.
LOCAL_PYTHON_IMAGE = "localhost/mlstages-python:3.11-bookworm"
BASE_STAGE = "base"
BASE_DOCKERFILE = COMPONENTS_DIR / "common" / "Dockerfile"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
MACHINE_CA_DIR = Path("/usr/local/share/ca-certificates")
PULL_TIMEOUT_SECONDS = 120
SOCKET_START_TIMEOUT_SECONDS = 30
# The per-image size target; the build report flags images above it.
IMAGE_SIZE_TARGET_BYTES = 600 * 1000 * 1000
# What tests/containers lets an image grow to before it fails. The three images with KServe miss
# the target: KServe's dependencies (grpc, Pillow, uvloop, aiohttp, fastapi, pydantic) add 91 MB,
# stripped, to the base's 556 MB. Their ceiling only stops them from growing further.
IMAGE_SIZE_CEILING_BYTES = {
    "validate_model": 660 * 1000 * 1000,
    "deploy": 660 * 1000 * 1000,
    "serving": 660 * 1000 * 1000,
}


def size_ceiling(stage: str) -> int:
    return IMAGE_SIZE_CEILING_BYTES.get(stage, IMAGE_SIZE_TARGET_BYTES)


# The unprivileged user the images run as (components/common/Dockerfile).
IMAGE_UID = 10001
# Longest path a unix socket address can hold on Linux (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


class ContainerError(MlstagesError):
    """A container engine is missing, or a build, push or run failed."""


@dataclass(frozen=True)
class ImageSpec:
    """One image to build: its stage (``base`` for the suite's base), Dockerfile and tag."""

    stage: str
    dockerfile: Path
    tag: str


def find_engine(name: str | None = None) -> str:
    """The container engine to use: ``name``, MLSTAGES_CONTAINER_ENGINE, else podman if installed,
    else docker if its daemon answers. A docker client without a daemon does not count."""
    wanted = name or os.environ.get(ENGINE_ENV, "")
    candidates = [wanted] if wanted else ["podman", "docker"]
    for engine in candidates:
        if engine not in ("podman", "docker"):
            raise ContainerError(f"{ENGINE_ENV}={engine!r}: the engine must be podman or docker")
        if shutil.which(engine) is None:
            continue
        if engine == "docker":
            check = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if check.returncode != 0:
                continue
        return engine
    raise ContainerError(
        f"no container engine: {' or '.join(candidates)} not found or not running. Install podman "
        "(Debian/Ubuntu: apt-get install podman runc) or start Docker."
    )


def engine_environment(engine: str) -> dict[str, str]:
    """The environment for running ``engine``: the suite's podman settings unless the caller
    chose their own with CONTAINERS_CONF."""
    environment = dict(os.environ)
    if engine == "podman":
        environment.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return environment


def _engine(engine: str, *args: str, check: bool = True, capture: bool = False, **kwargs: Any) -> Any:
    command = [engine, *args]
    result = subprocess.run(
        command,
        env=engine_environment(engine),
        capture_output=capture,
        text=True,
        check=False,
        **kwargs,
    )
    if check and result.returncode != 0:
        detail = f": {result.stderr.strip()[-2000:]}" if capture and result.stderr else ""
        raise ContainerError(f"`{' '.join(command)}` failed with exit code {result.returncode}{detail}")
    return result


def resolve_lock(extras: Sequence[str] = LOCKED_EXTRAS) -> dict[str, str]:
    """Resolve the suite with ``extras`` on the package index (pip's resolver, nothing installed):
    distribution name → version, the suite itself left out."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                f"{REPO_ROOT}[{','.join(extras)}]",
            ],
            check=True,
        )
        resolved = json.loads(report.read_text(encoding="utf-8"))["install"]
    return {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in resolved
        if item["metadata"]["name"].lower() != "mlstages"
    }


def format_lock(pins: dict[str, str]) -> str:
    header = (
        "# Generated by `make lock` (python -m mlstages.tooling.containers lock): every package the\n"
        f"# suite runs with, extras {', '.join(LOCKED_EXTRAS)} included, resolved together. The images\n"
        "# build with it (PIP_CONSTRAINT in the base image) and `make install` installs with it, so the\n"
        "# local environment and every image run the same versions.\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def read_lock(path: Path = CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name or not version:
            raise ContainerError(f"{path}:{number}: expected NAME==VERSION, got {line!r}")
        pins[name.strip().lower()] = version.strip()
    return pins


def stages_with_images() -> list[str]:
    """Every folder under components/ with a Dockerfile, the shared base's folder excepted."""
    return sorted(
        path.parent.name for path in COMPONENTS_DIR.glob("*/Dockerfile") if path.parent.name != "common"
    )


def image_specs(registry: str | None = None) -> list[ImageSpec]:
    """The images in build order: the base first, then every stage."""
    specs = [ImageSpec(BASE_STAGE, BASE_DOCKERFILE, images.image(BASE_STAGE, prefix=registry))]
    specs += [
        ImageSpec(stage, COMPONENTS_DIR / stage / "Dockerfile", images.image(stage, prefix=registry))
        for stage in stages_with_images()
    ]
    return specs


def source_revision() -> str:
    """The git commit the images are built from (with ``-dirty`` for uncommitted changes)."""
    try:
        revision = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return revision or "unknown"


def build_command(
    engine: str, spec: ImageSpec, *, base_tag: str, python_image: str, revision: str
) -> list[str]:
    """The command that builds one image from the repository root."""
    from kfp import __version__ as kfp_version

    build_args = {
        "VERSION": __version__,
        "REVISION": revision,
        "KFP_VERSION": kfp_version,
        "PYTHON_IMAGE": python_image,
        "BASE_IMAGE": base_tag,
    }
    command = [engine, "build", "--network", "host", "--file", str(spec.dockerfile), "--tag", spec.tag]
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    return [*command, str(REPO_ROOT)]


def image_exists(engine: str, ref: str) -> bool:
    if engine == "podman":
        return _engine(engine, "image", "exists", ref, check=False).returncode == 0
    return _engine(engine, "image", "inspect", ref, check=False, capture=True).returncode == 0


def try_pull(engine: str, ref: str, timeout: float = PULL_TIMEOUT_SECONDS) -> bool:
    """Pull ``ref``; False when no registry answers (in time)."""
    try:
        result = _engine(engine, "pull", ref, check=False, capture=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def make_python_image(engine: str, tag: str = LOCAL_PYTHON_IMAGE, *, ca_dir: Path = MACHINE_CA_DIR) -> str:
    """Make a Debian Python 3.11 image with debootstrap and import it as ``tag``.

    Debian's own python3 with venv (the suite's Dockerfile installs into a virtual environment),
    ``python`` on PATH, the machine's CA certificates trusted, and no package caches,
    documentation or locales. Needs root (debootstrap does)."""
    if os.geteuid() != 0:
        raise ContainerError(
            f"no Python base image: {DEFAULT_PYTHON_IMAGE} cannot be pulled and making one with "
            "debootstrap needs root. Run as root, or pass PYTHON_IMAGE=<an image you can pull>."
        )
    if shutil.which("debootstrap") is None:
        raise ContainerError(
            "no Python base image and no debootstrap to make one: apt-get install debootstrap"
        )
    with tempfile.TemporaryDirectory(prefix="mlstages-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        packages = "python3,python3-venv,python-is-python3,ca-certificates"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={packages}",
                DEBIAN_SUITE,
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        certificates = sorted(ca_dir.glob("*.crt")) if ca_dir.is_dir() else []
        for certificate in certificates:
            shutil.copy2(certificate, rootfs / "usr/local/share/ca-certificates" / certificate.name)
        subprocess.run(
            ["chroot", str(rootfs), "update-ca-certificates"], check=True, stdout=subprocess.DEVNULL
        )
        for leftover in (
            "var/cache/apt",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
        ):
            path = rootfs / leftover
            if path.is_dir():
                shutil.rmtree(path)
                path.mkdir(parents=True)
        archive = Path(scratch) / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        changes = [
            'CMD ["python3"]',
            "ENV LANG=C.UTF-8",
            "LABEL org.opencontainers.image.description=Debian bookworm python3 made by mlstages (debootstrap)",
        ]
        command = ["import"]
        for change in changes:
            command += ["--change", change]
        _engine(engine, *command, str(archive), tag, capture=True)
    return tag


def ensure_python_image(engine: str, requested: str | None, progress: Any = print) -> str:
    """The Python image to build on: ``requested`` if given, else the public one if it is here or
    can be pulled, else one made with debootstrap."""
    if requested:
        if not image_exists(engine, requested) and not try_pull(engine, requested):
            raise ContainerError(f"PYTHON_IMAGE {requested}: not present and could not be pulled")
        return requested
    for candidate in (DEFAULT_PYTHON_IMAGE, LOCAL_PYTHON_IMAGE):
        if image_exists(engine, candidate):
            return candidate
    progress(f"Pulling {DEFAULT_PYTHON_IMAGE} ...")
    if try_pull(engine, DEFAULT_PYTHON_IMAGE):
        return DEFAULT_PYTHON_IMAGE
    progress(f"No registry reachable: making {LOCAL_PYTHON_IMAGE} with debootstrap ...")
    started = time.monotonic()
    made = make_python_image(engine)
    progress(f"Made {made} in {time.monotonic() - started:.0f} s.")
    return made


@dataclass
class BuildResult:
    spec: ImageSpec
    seconds: float
    size_bytes: int


def image_size(engine: str, ref: str) -> int:
    """The image's size in bytes, its base layers included."""
    result = _engine(engine, "image", "inspect", "--format", "{{.Size}}", ref, capture=True)
    return int(result.stdout.strip())


def build_images(
    *,
    engine: str | None = None,
    registry: str | None = None,
    python_image: str | None = None,
    stages: Sequence[str] = (),
    progress: Any = print,
) -> list[BuildResult]:
    """Build the base image and every stage's image (or only ``stages``, the base always)."""
    engine = find_engine(engine)
    specs = image_specs(registry)
    unknown = sorted(set(stages) - {s.stage for s in specs})
    if unknown:
        raise ContainerError(
            f"no image for stage(s) {', '.join(unknown)}; images: {', '.join(s.stage for s in specs)}"
        )
    if stages:
        specs = [s for s in specs if s.stage == BASE_STAGE or s.stage in stages]
    python_image = ensure_python_image(engine, python_image, progress)
    revision = source_revision()
    base_tag = specs[0].tag
    results = []
    for spec in specs:
        progress(f"Building {spec.tag} ({spec.dockerfile.relative_to(REPO_ROOT)}) with {engine} ...")
        started = time.monotonic()
        command = build_command(engine, spec, base_tag=base_tag, python_image=python_image, revision=revision)
        _engine(engine, *command[1:])
        results.append(BuildResult(spec, time.monotonic() - started, image_size(engine, spec.tag)))
    return results


def push_images(*, engine: str | None = None, registry: str, progress: Any = print) -> list[str]:
    """Push every image built under ``registry``."""
    engine = find_engine(engine)
    pushed = []
    for spec in image_specs(registry):
        if not image_exists(engine, spec.tag):
            raise ContainerError(f"{spec.tag} is not built: run `make images REGISTRY={registry}` first")
        progress(f"Pushing {spec.tag} ...")
        _engine(engine, "push", spec.tag)
        pushed.append(spec.tag)
    return pushed


def format_sizes(results: Sequence[BuildResult]) -> str:
    """A table of build times and sizes; a stage's own layers are its size less the base's."""
    base = next((r.size_bytes for r in results if r.spec.stage == BASE_STAGE), 0)
    lines = [
        f"{'image':<52} {'build s':>8} {'size MB':>8} {'own MB':>7}",
    ]
    for result in results:
        own = result.size_bytes - base if result.spec.stage != BASE_STAGE else result.size_bytes
        flag = "  OVER 600 MB" if result.size_bytes > IMAGE_SIZE_TARGET_BYTES else ""
        lines.append(
            f"{result.spec.tag:<52} {result.seconds:>8.1f} {result.size_bytes / 1e6:>8.0f} {own / 1e6:>7.0f}{flag}"
        )
    total = sum(r.seconds for r in results)
    lines.append(f"{'all images':<52} {total:>8.1f}")
    return "\n".join(lines)


# --- running tasks in containers -------------------------------------------------------------------


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


def run_e2e(
    *,
    engine: str | None = None,
    workdir: Path,
    python_image: str | None = None,
    pytest_args: Sequence[str] = (),
) -> int:
    """Build every image, then run tests/containers (the training pipeline with every task in its
    own image, compared with a local run) against the engine's Docker API; return pytest's exit
    code. Prints build times and image sizes; leaves no container or service running."""
    engine = find_engine(engine)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = build_images(engine=engine, python_image=python_image)
    build_seconds = time.monotonic() - started
    print(format_sizes(results))
    before = containers_present(engine)
    network_before = host_network_state()
    test_started = time.monotonic()
    with docker_api(engine, workdir) as docker_host:
        environment = dict(os.environ, **{E2E_SWITCH: "1", ENGINE_ENV: engine})
        if docker_host:
            environment["DOCKER_HOST"] = docker_host
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", str(E2E_TESTS), "-p", "no:cacheprovider", *pytest_args],
            cwd=REPO_ROOT,
            env=environment,
            check=False,
        )
    test_seconds = time.monotonic() - test_started
    left = containers_present(engine) - before
    network_after = host_network_state()
    summary = {
        "engine": engine,
        "build_seconds": round(build_seconds, 1),
        "test_seconds": round(test_seconds, 1),
        "pytest_exit_code": tests.returncode,
        "containers_left": sorted(left),
        "host_network_changed": network_after != network_before,
        "images": [
            {"image": r.spec.tag, "build_seconds": round(r.seconds, 1), "size_bytes": r.size_bytes}
            for r in results
        ],
    }
    (workdir / "e2e-containers.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"Built every image in {build_seconds:.0f} s; the container tests took {test_seconds:.0f} s.")
    over = [r.spec.tag for r in results if r.size_bytes > IMAGE_SIZE_TARGET_BYTES]
    if over:
        print(f"Over the 600 MB target: {', '.join(over)}")
    if left:
        print(
            f"error: the run left {len(left)} container(s) behind: {', '.join(sorted(left))}", file=sys.stderr
        )
        return 1
    return tests.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlstages.tooling.containers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--engine", choices=["podman", "docker"], help="default: podman if installed, else docker"
    )
    parser.add_argument("--registry", help=f"image registry prefix (default {images.DEFAULT_REGISTRY})")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the base image and every stage's image")
    build.add_argument("--python-image", help=f"Python image to build on (default {DEFAULT_PYTHON_IMAGE})")
    build.add_argument("--stage", action="append", default=[], help="build only this stage (repeatable)")
    build.add_argument("--json", type=Path, help="also write build times and sizes to this JSON file")
    commands.add_parser("push", help="push every image to --registry")
    e2e = commands.add_parser("e2e", help="build every image and run the training pipeline in them")
    e2e.add_argument("--python-image", help=f"Python image to build on (default {DEFAULT_PYTHON_IMAGE})")
    e2e.add_argument(
        "--workdir", type=Path, default=Path(".mlstages"), help="where the socket and results go"
    )
    e2e.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    commands.add_parser("list", help="print the tag of every image")
    commands.add_parser(
        "lock", help=f"resolve the dependencies again into {CONSTRAINTS.relative_to(REPO_ROOT)}"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            CONSTRAINTS.write_text(format_lock(resolve_lock()), encoding="utf-8")
            print(f"wrote {CONSTRAINTS.relative_to(REPO_ROOT)}")
        elif args.command == "list":
            for spec in image_specs(args.registry):
                print(spec.tag)
        elif args.command == "build":
            results = build_images(
                engine=args.engine, registry=args.registry, python_image=args.python_image, stages=args.stage
            )
            print(format_sizes(results))
            if args.json:
                args.json.write_text(
                    json.dumps(
                        [
                            {"image": r.spec.tag, "seconds": r.seconds, "size_bytes": r.size_bytes}
                            for r in results
                        ],
                        indent=2,
                    )
                )
        elif args.command == "e2e":
            return run_e2e(
                engine=args.engine,
                workdir=args.workdir,
                python_image=args.python_image,
                pytest_args=args.pytest_args,
            )
        elif args.command == "push":
            if not args.registry:
                parser.error("push needs --registry (make push REGISTRY=...)")
            push_images(engine=args.engine, registry=args.registry)
    except ContainerError as exc:
        print(f"mlstages: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
