"""Building and pushing the stage images with podman or Docker, and the Python image they build on."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstages.components import __version__
from mlstages.components.common import images
from mlstages.tooling.catalog import COMPONENTS_DIR, REPO_ROOT
from mlstages.tooling.container_engine import (
    BASE_DOCKERFILE,
    BASE_STAGE,
    DEBIAN_MIRROR,
    DEBIAN_SUITE,
    DEFAULT_PYTHON_IMAGE,
    IMAGE_SIZE_TARGET_BYTES,
    LOCAL_PYTHON_IMAGE,
    MACHINE_CA_DIR,
    PULL_TIMEOUT_SECONDS,
    ContainerError,
    ImageSpec,
    _engine,
    find_engine,
)


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
