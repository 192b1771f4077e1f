"""The engines side by side (issue 16): each streaming stage on the local engine (the task's own
process) and on a Dask LocalCluster of 1 and 2 worker processes, on the synthetic 25-column table.

Stages measured, each as the component runs it:

- ``statistics``: validate_data's ``validate_dataset`` (the statistics pass per part, the schema,
  the anomaly checks);
- ``scoring``: batch_predict's ``batch_predict`` with a logistic-regression Pipeline trained the
  suite's way on a 20,000-row sample, writing prediction-log shards to a local folder.

Every (stage, engine) runs in a fresh interpreter whose process tree is sampled from /proc
(``process_tree.TreeSampler``): the peak RSS of the task's process and of each worker process. A
LocalCluster runs its scheduler and its nannies (which start and watch the workers) inside the
process that starts it, so the task's figure includes them; the benchmark checks that. Wall time is the stage's own call;
starting and stopping the cluster is reported apart. The Dask runs' outputs are checked against
the local run's (statistics equal, the same predicted-class counts).

Parallelism is per dataset part: the table is written in parts of ``--part-rows`` rows (ingest
writes parts of 1M rows; the default here, 250,000, gives 1M rows four parts).

    MLSTAGES_CPUS=1 .venv/bin/python benchmarks/bench_engines.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline_paths import RESULTS_DIR
from process_tree import TreeSampler
from synthetic_data import LABEL_COLUMN, SEED, chunks

STAGES = ("statistics", "scoring")
MODEL_SAMPLE_ROWS = 20_000


def data_folder(work: Path, rows: int, part_rows: int) -> Path:
    from mlstages.components.common.dataset_files import write_batches

    folder = work / f"synthetic-{rows}-rows-parts{part_rows}-seed{SEED}"
    if not (folder / "_dataset.json").is_file():
        started = time.monotonic()
        write_batches(chunks(rows, SEED), folder, source="bench_engines synthetic", part_rows=part_rows)
        print(f"wrote {folder} in {time.monotonic() - started:.0f} s", flush=True)
    return folder


def train_model(data: Path, directory: Path) -> Path:
    """A logistic regression on a seeded sample, exported as train exports it."""
    if (directory / "model.joblib").is_file():
        return directory
    from threadpoolctl import threadpool_limits

    from mlstages.components.common.dataset_positions import sample_rows
    from mlstages.components.common.datasets import column_types
    from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.export import export_model
    from mlstages.components.train.train import train

    sample = sample_rows(data, MODEL_SAMPLE_ROWS, SEED).reset_index(drop=True)
    with threadpool_limits(limits=1):
        prepared = preprocess(sample, PreprocessConfig(label_column=LABEL_COLUMN, task="classification"))
        features = engineer_features(
            prepared.train,
            prepared.preprocessor,
            FeatureConfig(label_column=LABEL_COLUMN, task="classification"),
        )
        result = train(
            prepared.train,
            features.feature_pipeline,
            TrainConfig(
                label_column=LABEL_COLUMN,
                task="classification",
                model_families=("logistic_regression",),
                cv_folds=2,
                search_space={"logistic_regression": {"C": [1.0]}},
            ),
        )
    export_model(result, directory, column_types(prepared.train[result.input_columns]))
    return directory


def run_stage(stage: str, engine: str, workers: int, data: Path, model: Path, out: Path) -> dict[str, Any]:
    """In the measured interpreter: the stage on the engine; its timings, outputs and the pids of
    the cluster's processes."""
    from mlstages.components.common.threads import limit_threads

    limit_threads()
    from mlstages.components.common.engine import open_engine

    result: dict[str, Any] = {"task_pid": os.getpid()}
    started = time.monotonic()
    with open_engine(engine, workers=workers or None, say=lambda line: None) as running:
        result["start_seconds"] = time.monotonic() - started
        if running.distributed:
            result["worker_pids"] = sorted(running.client.run(os.getpid).values())
            # A LocalCluster's nannies are objects in this process: the workers' parent is the task.
            result["worker_parents"] = sorted(set(running.client.run(os.getppid).values()))
        began = time.monotonic()
        if stage == "statistics":
            from mlstages.components.validate_data.config import ValidationConfig
            from mlstages.components.validate_data.validate_data import validate_dataset

            validated = validate_dataset(data, ValidationConfig(policy="warn"), engine=running)
            result["seconds"] = time.monotonic() - began
            result["rows"] = validated.statistics["dataset"]["rows"]
            (out / "statistics.json").write_text(json.dumps(validated.statistics, sort_keys=True))
        else:
            from mlstages.components.batch_predict import batch_predict as bp
            from mlstages.components.serving.model_dir import load_model_dir

            fitted, card = load_model_dir(str(model))
            scored = bp.batch_predict(
                bp.open_dataset(data),
                fitted,
                card,
                bp.BatchPredictConfig(),
                output_uri=str(out / "shards"),
                model_name="bench",
                model_version="v1",
                blessing=bp.FORCED,
                engine=running,
            )
            result["seconds"] = time.monotonic() - began
            result["rows"] = scored.rows
            result["prediction_counts"] = scored.prediction_counts
        stopping = time.monotonic()
    result["stop_seconds"] = time.monotonic() - stopping
    return result


def measure(stage: str, engine: str, workers: int, data: Path, model: Path, work: Path) -> dict[str, Any]:
    """One (stage, engine) in a fresh interpreter, its process tree sampled."""
    out = work / "runs" / f"{stage}-{engine}-{workers}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    command = [
        sys.executable,
        __file__,
        "--measure",
        stage,
        engine,
        str(workers),
        str(data),
        str(model),
        str(out),
    ]
    started = time.monotonic()
    with open(out / "output.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(process.pid, interval=0.1)
        sampler.start()
        code = process.wait()
        sampler.stop()
    if code != 0:
        raise RuntimeError(f"{stage} on {engine} failed: {(out / 'output.log').read_text()[-3000:]}")
    result = json.loads((out / "result.json").read_text())
    result["process_seconds"] = time.monotonic() - started

    def peak(pid: int) -> int:
        return sampler.processes.get(pid, {}).get("peak_rss_bytes", 0)

    result["peak_rss_mib"] = {
        "task": peak(result["task_pid"]) / 2**20,
        "workers": [peak(p) / 2**20 for p in result.get("worker_pids", [])],
    }
    result["tree_peak_rss_mib"] = sampler.peak_bytes / 2**20
    result["load_average"] = max(sampler.loads) if sampler.loads else None
    return result


def same_document(a: Any, b: Any) -> bool:
    """Equal statistics documents, numbers to 1e-9 relative: moments merged in another order
    differ in their last bits."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_document(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same_document, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return a == b


def markdown(report: dict[str, Any]) -> str:
    rows = report["rows"]
    lines = [
        "# The engines side by side (issue 16)",
        "",
        f"{rows:,} rows x 25 columns of the synthetic table (`benchmarks/synthetic_data.py`), in parts of "
        f"{report['part_rows']:,} rows ({report['parts']} parts). {report['machine']}. "
        "**Taken on a shared machine** (2 cores, another developer running tests and benchmarks): the "
        "load average during each run is shown; treat the times as indicative.",
        "",
        "Wall time is the stage's call alone; cluster start and stop are apart. Peak RSS per process: "
        "the task (it also holds the LocalCluster's scheduler and nannies: the workers' parent is the task's "
        "process), each worker. The tree adds the multiprocessing helper processes.",
        "",
        "| stage | engine | wall s | rows/s | rows/s per worker | start + stop s | task MiB | workers MiB | tree MiB | load | same as local |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report["runs"]:
        workers = run["workers"] or 1
        rate = rows / run["seconds"]
        peaks = run["peak_rss_mib"]
        lines.append(
            f"| {run['stage']} | {run['label']} | {run['seconds']:.1f} | {rate:,.0f} | {rate / workers:,.0f} | "
            f"{run['start_seconds'] + run['stop_seconds']:.1f} | {peaks['task']:.0f} | "
            f"{', '.join(f'{v:.0f}' for v in peaks['workers']) or '-'} | "
            f"{run['tree_peak_rss_mib']:.0f} | "
            f"{run['load_average']:.1f} | {run['same']} |"
        )
    lines += [
        "",
        "Same as local: the statistics document equal to the local engine's, numbers to 1e-9 relative "
        "(moments merged in another order differ in their last bits); for scoring, the same "
        "predicted-class counts.",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--rerender":  # the "same" column again, from a report and its runs
        report_path, work = Path(argv[1]), Path(argv[2])
        report = json.loads(report_path.read_text(encoding="utf-8"))
        local_output = json.loads((work / "runs" / "statistics-local-0" / "statistics.json").read_text())
        for run in report["runs"]:
            if run["stage"] == "statistics" and run["engine"] == "dask":
                out = work / "runs" / f"statistics-dask-{run['workers']}" / "statistics.json"
                run["same"] = "yes" if same_document(json.loads(out.read_text()), local_output) else "NO"
        report_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
        report_path.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
        return 0
    if argv and argv[0] == "--measure":
        stage, engine, workers, data, model, out = argv[1:7]
        result = run_stage(stage, engine, int(workers), Path(data), Path(model), Path(out))
        (Path(out) / "result.json").write_text(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--part-rows", type=int, default=250_000)
    parser.add_argument("--workers", default="1,2", help="LocalCluster sizes to measure")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlstages-bench-engines")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    os.environ.setdefault("MLSTAGES_CPUS", "1")
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    data = data_folder(args.work, args.rows, args.part_rows)
    model = train_model(data, args.work / "model")
    from mlstages.components.common.dataset_files import part_files

    runs = []
    for stage in args.stages.split(","):
        local: dict[str, Any] | None = None
        for workers in [0, *(int(w) for w in args.workers.split(","))]:
            engine = "local" if workers == 0 else "dask"
            print(f"{stage} on {engine} ({workers or 'no'} workers) ...", flush=True)
            run = measure(stage, engine, workers, data, model, args.work)
            run.update(
                stage=stage,
                engine=engine,
                workers=workers,
                label=f"dask, {workers} worker(s)" if workers else "local",
            )
            out = args.work / "runs" / f"{stage}-{engine}-{workers}"
            if stage == "statistics":
                run["output"] = json.loads((out / "statistics.json").read_text())
            if run.get("worker_parents") not in (None, [run["task_pid"]]):
                raise RuntimeError(f"the workers' parents {run['worker_parents']} are not the task's process")
            if local is None:
                local, run["same"] = run, "-"
            elif stage == "statistics":
                run["same"] = "yes" if same_document(run["output"], local["output"]) else "NO"
            else:
                run["same"] = "yes" if run["prediction_counts"] == local["prediction_counts"] else "NO"
            print(f"  {run['seconds']:.1f} s, same: {run['same']}", flush=True)
            runs.append(run)
    for run in runs:
        run.pop("output", None)
    report = {
        "rows": args.rows,
        "part_rows": args.part_rows,
        "parts": len(part_files(data)),
        "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
        "command": "MLSTAGES_CPUS=1 .venv/bin/python benchmarks/bench_engines.py " + " ".join(argv),
        "runs": runs,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = f"engines-{args.rows // 1_000_000}M"
    (args.results_dir / f"{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (args.results_dir / f"{name}.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
