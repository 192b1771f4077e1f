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
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mlstages.components.common import images
from mlstages.tooling.catalog import REPO_ROOT
from mlstages.tooling.container_engine import (
    CONSTRAINTS,
    DEFAULT_PYTHON_IMAGE,
    ENGINE_ENV,
    IMAGE_SIZE_TARGET_BYTES,
    ContainerError,
    find_engine,
)
from mlstages.tooling.container_images import build_images, format_sizes, image_specs, push_images
from mlstages.tooling.container_lock import format_lock, resolve_lock
from mlstages.tooling.container_tasks import (
    E2E_SWITCH,
    E2E_TESTS,
    containers_present,
    docker_api,
    host_network_state,
)


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
