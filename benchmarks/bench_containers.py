"""The training pipeline with every task in its own image, beside the same pipeline run locally.

Both runs go through the real kfp.local runner on the same embedded object store, data and
parameters (`make run`'s): DockerRunner on the container engine's Docker API (podman's socket,
started here) for one, SubprocessRunner in this environment for the other, alternating so that a
change in the machine's load falls on both. What the containers add is each task's container
start-up, the images' first import of the libraries (no shared page cache with this process) and
the run folder's bind mount.

Needs the images (`make images`) and podman or Docker; without them it says so and writes nothing.

Usage:
    .venv/bin/python benchmarks/bench_containers.py            # 3 runs each
    .venv/bin/python benchmarks/bench_containers.py --quick    # 1 run each

Writes benchmarks/results/containers.json and benchmarks/results/containers.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mlstages.components.common.emulator import EmbeddedGCS
from mlstages.tooling import container_engine, container_images, container_tasks, local

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODES = ("containers", "local")


def missing_images(engine: str) -> list[str]:
    return [
        spec.tag
        for spec in container_images.image_specs()
        if not container_images.image_exists(engine, spec.tag)
    ]


def run(repeats: int, workdir: Path, engine: str) -> dict:
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    with (
        EmbeddedGCS(root=workdir / "gcs", buckets=[local.LOCAL_BUCKET]),
        container_tasks.docker_api(engine, workdir) as docker_host,
    ):
        if docker_host:
            os.environ["DOCKER_HOST"] = docker_host
        for attempt in range(repeats):
            for mode in MODES:
                params = local.load_params(
                    local.catalog.builtin_params_path("training"),
                    [f"model_registry=gs://{local.LOCAL_BUCKET}/{mode}-{attempt}"],
                )
                started = time.monotonic()
                local.run_pipeline(
                    "training",
                    params,
                    workdir=workdir / f"{mode}-{attempt}",
                    progress=lambda _: None,
                    bucket=local.LOCAL_BUCKET,
                    containers=mode == "containers",
                )
                seconds[mode].append(time.monotonic() - started)
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    return {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
            "engine": engine,
        },
        "repeats": repeats,
        "seconds": seconds,
        "median_seconds": medians,
        "ratio_containers_over_local": medians["containers"] / medians["local"],
    }


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        "# The training pipeline in containers versus locally",
        "",
        f"Generated {report['generated']} on {machine['cpus']} CPUs, Python {machine['python']}, "
        f"{machine['engine']}; load average at the end {machine['load_average_at_end'][0]:.2f}. "
        f"`make run`'s parameters and data, the same embedded object store; {report['repeats']} run(s) "
        "of each, alternating.",
        "",
        "| runner | median s | every run (s) |",
        "|---|---:|---|",
    ]
    for mode in MODES:
        runs = ", ".join(f"{value:.1f}" for value in report["seconds"][mode])
        runner = "DockerRunner, every task in its image" if mode == "containers" else "SubprocessRunner"
        lines.append(f"| {runner} | {report['median_seconds'][mode]:.1f} | {runs} |")
    lines += ["", f"Containers / local: **{report['ratio_containers_over_local']:.2f}x**.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        engine = container_engine.find_engine()
    except container_engine.ContainerError as exc:
        print(f"bench_containers: skipped, {exc}")
        return 0
    missing = missing_images(engine)
    if missing:
        print(f"bench_containers: skipped, images not built ({', '.join(missing)}): run `make images`")
        return 0
    with tempfile.TemporaryDirectory(prefix="mlstages-bench-containers-") as scratch:
        report = run(1 if args.quick else 3, Path(scratch), engine)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "containers.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results_dir / "containers.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
