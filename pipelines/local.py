"""Run a pipeline on this machine through the real KFP local runner, with the embedded object store.

``run_pipeline`` starts fake-gcs-server (unless a real bucket is configured), uploads the built-in
dataset when no data URI is given, runs every task with ``kfp.local.SubprocessRunner`` in this
Python environment, and reads back what each task wrote from the run's folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlstages.pipelines import catalog

DEFAULT_WORKDIR = Path(".mlstages")
LOCAL_BUCKET = "mlstages-local"
BUCKET_ENV = "MLSTAGES_BUCKET"
BUILTIN_DATASET_OBJECT = "datasets/penguins/penguins.csv"


@dataclass
class TaskOutputs:
    name: str
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # output name → {uri, metadata}
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunReport:
    pipeline: str
    run_dir: Path
    tasks: list[TaskOutputs]
    data_uri: str
    elapsed_seconds: float

    def task(self, name: str) -> TaskOutputs:
        for item in self.tasks:
            if item.name == name:
                return item
        raise KeyError(f"no task {name!r} in run {self.run_dir}")


def load_params(path: Path | None, overrides: list[str] = ()) -> dict[str, Any]:
    """Parameters from a YAML file, then ``key=value`` overrides (values parsed as YAML)."""
    from mlstages.components.common.errors import ParameterError

    params: dict[str, Any] = {}
    if path is not None:
        try:
            params = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ParameterError(f"parameter file {path}: no such file") from exc
        except yaml.YAMLError as exc:
            raise ParameterError(f"parameter file {path} is not valid YAML: {exc}") from exc
        if not isinstance(params, dict):
            raise ParameterError(f"parameter file {path} must be a mapping of parameter names to values")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--set {item!r}: expected NAME=VALUE")
        params[key.strip()] = yaml.safe_load(value)
    return params


def check_params(pipeline_name: str, params: dict[str, Any]) -> None:
    """Refuse parameters the pipeline does not declare, before anything runs."""
    from mlstages.components.common.errors import ParameterError

    spec = catalog.pipeline(pipeline_name).component_spec
    declared = set(spec.inputs or {})
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) for pipeline {pipeline_name}: {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(declared))}"
        )
    missing = sorted(n for n, s in spec.inputs.items() if not s.optional and n not in params)
    if missing:
        raise ParameterError(f"pipeline {pipeline_name} needs parameter(s): {', '.join(missing)}")


def _declared(pipeline_name: str) -> set[str]:
    return set(catalog.pipeline(pipeline_name).component_spec.inputs or {})


def builtin_dataset_csv() -> bytes:
    """The Palmer penguins data, shipped inside the palmerpenguins package (no download)."""
    import palmerpenguins

    buffer = io.StringIO()
    palmerpenguins.load_penguins().to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


@contextlib.contextmanager
def object_store(workdir: Path, progress: Callable[[str], None]) -> Iterator[str]:
    """Yield the bucket to use: a real one named by MLSTAGES_BUCKET, or the embedded store's."""
    bucket = os.environ.get(BUCKET_ENV)
    if bucket:
        progress(f"Using bucket gs://{bucket} ({BUCKET_ENV}); credentials from the environment.")
        yield bucket
        return
    from mlstages.components.common.emulator import EmbeddedGCS

    root = workdir / "gcs"
    with EmbeddedGCS(root=root, buckets=[LOCAL_BUCKET]) as store:
        progress(f"Started the embedded object store (fake-gcs-server) at {store.endpoint}, data in {root}")
        yield LOCAL_BUCKET
    progress("Stopped the embedded object store.")


def run_pipeline(
    pipeline_name: str,
    params: dict[str, Any],
    *,
    workdir: Path = DEFAULT_WORKDIR,
    progress: Callable[[str], None] = print,
) -> RunReport:
    """Run a pipeline locally and return what every task produced."""
    import time
    import warnings

    from kfp import local

    # kfp.local warns that each task's custom image is ignored; running the suite's own
    # environment in place of the image is what SubprocessRunner(use_venv=False) is for here.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")

    from mlstages.components.common import storage

    workdir = Path(workdir).resolve()
    params = dict(params)
    check_params(pipeline_name, {k: v for k, v in params.items() if k != "data_uri"} | {"data_uri": ""})
    pipeline_root = workdir / "runs"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with object_store(workdir, progress) as bucket:
        if not params.get("data_uri"):
            data_uri = f"gs://{bucket}/{BUILTIN_DATASET_OBJECT}"
            storage.write_bytes(data_uri, builtin_dataset_csv())
            progress(f"Uploaded the built-in dataset (Palmer penguins) to {data_uri}")
            params["data_uri"] = data_uri
        if "model_registry" in _declared(pipeline_name) and not params.get("model_registry"):
            params["model_registry"] = f"gs://{bucket}/models"
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
        before = {p.name for p in pipeline_root.iterdir()}
        progress(f"Running pipeline {pipeline_name} with kfp.local (SubprocessRunner) ...")
        catalog.pipeline(pipeline_name)(**params)
    run_dirs = sorted(p for p in pipeline_root.iterdir() if p.is_dir() and p.name not in before)
    if not run_dirs:
        raise RuntimeError(f"kfp.local wrote no run folder under {pipeline_root}")
    run_dir = run_dirs[-1]
    return RunReport(
        pipeline=pipeline_name,
        run_dir=run_dir,
        tasks=read_run(run_dir),
        data_uri=params["data_uri"],
        elapsed_seconds=time.monotonic() - started,
    )


def read_run(run_dir: Path) -> list[TaskOutputs]:
    """What each task of a local run wrote, from its executor_output.json, in execution order."""
    tasks = []
    outputs = sorted(run_dir.glob("**/executor_output.json"), key=lambda p: p.stat().st_mtime)
    for path in outputs:
        data = json.loads(path.read_text(encoding="utf-8"))
        task = TaskOutputs(name=path.parent.relative_to(run_dir).as_posix())
        for name, group in (data.get("artifacts") or {}).items():
            for artifact in group.get("artifacts", []):
                task.artifacts[name] = {"uri": artifact.get("uri"), "metadata": artifact.get("metadata", {})}
        task.parameters = dict(data.get("parameterValues") or {})
        tasks.append(task)
    return tasks


# Artifacts whose file a person opens, in the order a report lists them.
_VIEWABLE = ("summary", "report", "search_results")


def format_report(report: RunReport) -> str:
    """The text `mlstages run` prints at the end: where everything is and the metrics."""
    lines = [
        "",
        f"Pipeline {report.pipeline} finished in {report.elapsed_seconds:.1f} s "
        f"({dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}).",
        f"Data: {report.data_uri}",
        f"Run folder: {report.run_dir}",
        "",
        "Artifacts:",
    ]
    for task in report.tasks:
        lines.append(f"  {task.name}")
        for name, artifact in task.artifacts.items():
            marker = "*" if name in _VIEWABLE else " "
            lines.append(f"   {marker} {name:<24} {artifact['uri']}")
        for name, value in task.parameters.items():
            lines.append(f"     {name:<24} = {value}")
    model_uris = [t.parameters["model_uri"] for t in report.tasks if t.parameters.get("model_uri")]
    if model_uris:
        lines += ["", f"Model: {model_uris[-1]}"]
    gate = next((t for t in report.tasks if t.name.endswith("validate-model")), None)
    if gate is not None:
        lines += ["", f"Blessing gate: {gate.parameters.get('reason', '')}"]
    deployed = next((t for t in report.tasks if t.name.endswith("deploy")), None)
    if deployed is not None:
        target = deployed.artifacts.get("inference_service", {}).get("metadata", {}).get("target")
        where = "the local KServe model server" if target == "local" else "KServe"
        state = "passed" if deployed.parameters.get("deployed") else "did NOT pass"
        lines.append(
            f"Deployed to {where} at {deployed.parameters.get('endpoint', '')}: the live endpoint check "
            f"{state}; it is now the champion."
            + (
                " (That server stopped with the task; `make serve` serves the champion again.)"
                if target == "local"
                else ""
            )
        )
    elif gate is not None:
        lines.append("Not deployed: the blessing gate did not bless this model.")
    metrics = {}
    for task in report.tasks:
        if task.name.endswith("evaluate") and "metrics" in task.artifacts:
            metrics = task.artifacts["metrics"]["metadata"]
    if metrics:
        lines += ["", "Test-set metrics (evaluate):"]
        for name, value in metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            lines.append(f"  {name:<24} {shown}")
    lines += ["", "(* = a report to open in a browser or Markdown viewer; the Kubeflow UI shows the same.)"]
    return "\n".join(lines)
