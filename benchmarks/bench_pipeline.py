"""The training pipeline through kfp.local beside the same logic functions in one Python process.

Issue 2's benchmark: on a seeded synthetic dataset (default 1M rows: 20 numeric columns of
different distributions and scales, 5 categorical columns of 4 to 50 levels, 5% missing values
spread over the feature columns, a binary label that depends on some of them), it runs

- ``pipeline``: ``mlstages.tooling.local.run_pipeline("training", ...)``, the path ``make run``
  takes: the embedded object store (fake-gcs-server) starts, and kfp.local's SubprocessRunner runs
  every component in its own Python process, which reads its inputs from the run folder and writes
  its outputs there;
- ``single``: the same logic functions one after another in ONE Python process (ingest,
  validate_data, preprocess, engineer_features, train with its export, evaluate, and the
  validate_model gate that the training pipeline now runs too), configured exactly as the
  components configure them, writing the same outputs (the Parquet datasets, the transformer,
  feature pipeline and model artifacts, the reports, the model published to the embedded store's
  registry) but handing DataFrames and fitted objects to the next stage in memory instead of
  reading them back from disk. When a component's body changes, ``run_single_path`` must follow.

Each path runs in a fresh interpreter (its wall time counts from before its heavy imports to the
end of its work, emulator stop included), repeated ``--repeats`` times, interleaved, and the
median is reported; CPU time (user + system of the whole process tree) is reported beside it,
as it is much less disturbed by other work on the machine. While a path runs, this process
samples the resident memory (RSS from /proc/<pid>/statm) of the path's whole process tree every
50 ms: the tree's summed RSS is the peak memory compared with the dataset's in-memory size
(``DataFrame.memory_usage(deep=True)`` of the data as read from Parquet). Targets (issue 2): pipeline wall time within 1.25x of the single
process; peak memory under 4x the dataset's in-memory size.

Both paths must produce the same model (the same chosen candidate, CV score, test metrics,
blessing decision and files in the model directory): the benchmark checks that and says so in
its results, so the comparison is between equal amounts of work.

Usage:
    .venv/bin/python benchmarks/bench_pipeline.py              # 1M rows, 3 repeats
    .venv/bin/python benchmarks/bench_pipeline.py --quick      # 100k rows, 1 repeat
    .venv/bin/python benchmarks/bench_pipeline.py --rows 300000 --repeats 2

Writes benchmarks/results/pipeline.json and benchmarks/results/pipeline.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

# Heavy libraries (numpy, pandas, scikit-learn, kfp) are imported inside functions: a measured
# path runs this file in a fresh interpreter, and its clock starts before it imports them.

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
FULL_REPEATS = 3
SEED = 20240602
SAMPLE_INTERVAL_SECONDS = 0.05
MISSING_SHARE = 0.05
LABEL_COLUMN = "label"
MODEL_NAME = "synthetic"
# The embedded store's bucket name in tooling/local.py (run_pipeline creates it; the single path
# creates the same one so that both publish the model the same way).
LOCAL_BUCKET = "mlstages-local"

# Targets from issue 2.
MAX_PIPELINE_OVER_SINGLE = 1.25
MAX_PEAK_OVER_DATASET = 4.0

# Categorical columns: name and number of levels (level frequencies are skewed, see make_dataset).
CATEGORICAL_LEVELS = {"region": 4, "channel": 7, "segment": 12, "product": 25, "city": 50}

# The pipeline parameters used by both paths. One model family with three candidates, 3-fold CV
# on a 50k-row stratified sample, then a refit on every training row. Variance selection: mutual
# information on 700k training rows costs minutes (k-nearest-neighbour estimates per feature).
PIPELINE_PARAMS: dict[str, Any] = {
    "label_column": LABEL_COLUMN,
    "task": "auto",
    "validation_policy": "fail",
    "test_size": 0.2,
    "validation_size": 0.1,
    "split": "stratified",
    "seed": 42,
    "scaling": "standard",
    "encoding": "onehot",
    "outliers": "iqr",
    "derived_features": [
        {"name": "balance_per_tenure", "kind": "ratio", "columns": ["num_07", "num_08"]},
        {"name": "log_income", "kind": "log", "columns": ["num_05"]},
    ],
    "selection": "variance",
    "max_features": 0,
    "model_families": ["logistic_regression"],
    "search": "grid",
    "cv_folds": 3,
    "search_space": {"logistic_regression": {"C": [0.1, 1.0, 10.0]}},
    "max_search_rows": 50_000,
    "slice_columns": ["region"],
    "model_name": MODEL_NAME,
}

PATHS = ("pipeline", "single")
PATH_DESCRIPTIONS = {
    "pipeline": "mlstages.tooling.local.run_pipeline('training'): embedded fake-gcs-server + "
    "kfp.local SubprocessRunner, one Python process per task, data between tasks as files",
    "single": "the same logic functions in one Python process (same configs, same outputs written, "
    "embedded fake-gcs-server for the registry), data between stages in memory",
}
STAGES = ("ingest", "validate_data", "preprocess", "engineer_features", "train", "evaluate", "validate_model")
# The training pipeline's defaults for the blessing gate, which PIPELINE_PARAMS leaves alone: no
# thresholds, so nothing is blessed and deploy does not run (the gate still loads the model and
# runs its robustness checks).
GATE_DEFAULTS: dict[str, Any] = {"thresholds": {}, "min_slice_rows": 10, "infra_validation": True}


# --- the synthetic dataset ---------------------------------------------------------------------


def make_dataset(rows: int, seed: int = SEED):
    """A seeded synthetic binary-classification DataFrame (see the module docstring).

    Numeric columns num_00 ... num_19 follow different distributions and scales (normal, lognormal,
    exponential, uniform, gamma, Poisson counts, Student t). The label is a logistic function of
    six numeric columns (two of them non-linearly) and two categorical columns, plus noise, so a
    model can learn it but not perfectly. About 5% of the feature values are missing: every
    feature column gets its own missing share between 2% and 8%.
    """
    import numpy as np
    import pandas as pd

    # The dataset's structure (level frequencies, category effects, missing shares) comes from its
    # own stream, so that it is the same whatever the row count; the rows come from another.
    structure = np.random.default_rng([seed, 0])
    rng = np.random.default_rng([seed, 1])
    numeric = {
        "num_00": rng.normal(0.0, 1.0, rows),
        "num_01": rng.normal(50.0, 10.0, rows),
        "num_02": rng.normal(-200.0, 75.0, rows),
        "num_03": rng.normal(1e5, 2e4, rows),
        "num_04": rng.lognormal(0.0, 0.75, rows),
        "num_05": rng.lognormal(10.5, 0.6, rows),  # income-like
        "num_06": rng.exponential(3.0, rows),
        "num_07": rng.exponential(2_000.0, rows),  # balance-like
        "num_08": rng.integers(1, 120, rows).astype(float),  # tenure in months
        "num_09": rng.uniform(0.0, 1.0, rows),
        "num_10": rng.uniform(-1_000.0, 1_000.0, rows),
        "num_11": rng.gamma(2.0, 2.0, rows),
        "num_12": rng.gamma(9.0, 0.5, rows),
        "num_13": rng.poisson(3.0, rows).astype(float),
        "num_14": rng.poisson(40.0, rows).astype(float),
        "num_15": rng.standard_t(4, rows),
        "num_16": rng.normal(0.0, 1e-3, rows),
        "num_17": rng.beta(2.0, 5.0, rows),
        "num_18": rng.normal(5.0, 2.0, rows) ** 2,
        "num_19": rng.weibull(1.5, rows) * 10.0,
    }
    categorical = {}
    category_effects = {}
    for name, levels in CATEGORICAL_LEVELS.items():
        weights = structure.dirichlet(np.full(levels, 2.0))  # skewed level frequencies
        codes = rng.choice(levels, size=rows, p=weights)
        labels = np.array([f"{name}_{i:02d}" for i in range(levels)], dtype=object)
        categorical[name] = labels[codes]
        category_effects[name] = structure.normal(0.0, 0.8, levels)[codes]

    def standardized(values):
        return (values - values.mean()) / values.std()

    logit = (
        0.9 * standardized(numeric["num_00"])
        - 0.7 * standardized(numeric["num_02"])
        + 0.6 * standardized(np.log(numeric["num_05"]))
        + 0.5 * standardized(numeric["num_07"] / numeric["num_08"])
        + 0.8 * standardized(numeric["num_09"] ** 2)
        - 0.4 * standardized(numeric["num_13"])
        + category_effects["segment"]
        + category_effects["region"]
        + rng.logistic(0.0, 1.0, rows) * 0.5
    )
    label = (rng.uniform(0.0, 1.0, rows) < 1.0 / (1.0 + np.exp(-(logit - 0.4)))).astype(np.int64)

    frame = pd.DataFrame({**numeric, **categorical})
    # Missing values after the label is drawn: the label depends on the true values.
    shares = structure.permutation(np.linspace(0.02, 0.08, frame.shape[1]))
    for column, share in zip(frame.columns, shares, strict=True):
        missing = rng.uniform(0.0, 1.0, rows) < share
        if frame[column].dtype == object:
            frame.loc[missing, column] = None
        else:
            frame.loc[missing, column] = np.nan
    frame[LABEL_COLUMN] = label
    return frame


def write_dataset_file(rows: int, path: Path) -> dict[str, Any]:
    """Write the synthetic dataset as Parquet and describe it as ingest will read it."""
    import pandas as pd

    frame = make_dataset(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    del frame
    # The size that counts is that of the data as the stages hold it: read back from Parquet.
    loaded = pd.read_parquet(path)
    features = loaded.drop(columns=[LABEL_COLUMN])
    return {
        "rows": len(loaded),
        "numeric_columns": int(features.select_dtypes("number").shape[1]),
        "categorical_columns": int(features.select_dtypes(exclude="number").shape[1]),
        "categorical_levels": CATEGORICAL_LEVELS,
        "missing_share_of_feature_values": float(features.isna().to_numpy().mean()),
        "positive_label_share": float(loaded[LABEL_COLUMN].mean()),
        "in_memory_bytes": int(loaded.memory_usage(deep=True).sum()),
        "parquet_bytes": path.stat().st_size,
        "seed": SEED,
    }


# --- the two measured paths (each runs in a fresh interpreter) ----------------------------------


def run_pipeline_path(data_path: Path, workdir: Path) -> dict[str, Any]:
    """The training pipeline through kfp.local, as `mlstages run` runs it."""
    from mlstages.tooling.local import run_pipeline

    params = dict(PIPELINE_PARAMS, data_uri=str(data_path))
    report = run_pipeline("training", params, workdir=workdir)
    evaluate = next(t for t in report.tasks if t.name.endswith("evaluate"))
    train = next(t for t in report.tasks if t.name.endswith("train"))
    gate = next(t for t in report.tasks if t.name.endswith("validate-model"))
    evaluation_path = Path(evaluate.artifacts["evaluation"]["uri"])
    return {
        "run_dir": str(report.run_dir),
        "run_pipeline_seconds": report.elapsed_seconds,
        "outcome": {
            "best_params": train.artifacts["model"]["metadata"]["best_params"],
            "cv_score": train.parameters["cv_score"],
            "test_metrics": json.loads(evaluation_path.read_text(encoding="utf-8"))["metrics"],
            "blessed": gate.parameters["blessed"],
            "model_files": sorted(p.name for p in Path(train.artifacts["model"]["uri"]).iterdir()),
        },
        "tasks": [t.name for t in report.tasks],
    }


def run_single_path(
    data_path: Path,
    workdir: Path,
    stage_seconds: dict[str, float],
    stage_peaks: dict[str, int],
    stage_cpu: dict[str, float],
) -> dict[str, Any]:
    """Every stage's logic, one after another, configured and writing as its component does.

    The code below follows components/<stage>/component.py line by line, with the pipeline's
    parameters and the components' defaults; what differs is only that each stage gets the
    previous stage's DataFrames and fitted objects in memory rather than from files. Each stage's
    seconds go into ``stage_seconds``, its CPU seconds into ``stage_cpu`` and the process's peak
    RSS during the stage into ``stage_peaks``.
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    _reset_peak_rss()

    def lap(stage: str) -> None:
        nonlocal started, cpu_started
        now, cpu_now = time.perf_counter(), time.process_time()
        stage_seconds[stage] = now - started
        stage_cpu[stage] = cpu_now - cpu_started
        stage_peaks[stage] = _vm_hwm_bytes()
        _reset_peak_rss()
        started, cpu_started = now, cpu_now

    import json as json_module
    from collections import namedtuple

    import pandas as pd

    from mlstages.components.common.artifacts import file_sha256, read_metadata, save_estimator
    from mlstages.components.common.datasets import column_types, write_dataset
    from mlstages.components.common.emulator import EmbeddedGCS
    from mlstages.components.common.registry import check_model_name, publish_model
    from mlstages.components.engineer_features import engineer_features as features_logic
    from mlstages.components.evaluate import evaluate as evaluate_logic
    from mlstages.components.evaluate import metrics as evaluation_metrics
    from mlstages.components.evaluate import report as evaluation_report
    from mlstages.components.ingest.ingest import IngestConfig, display_uri, ingest_summary, read_source
    from mlstages.components.preprocess import preprocess as preprocess_logic
    from mlstages.components.train import config as training_config
    from mlstages.components.train import export as training_export
    from mlstages.components.train import report as training_report
    from mlstages.components.train import train as train_logic
    from mlstages.components.validate_data import config as validation_config
    from mlstages.components.validate_data import report as validation_report
    from mlstages.components.validate_data import validate_data as validation_logic
    from mlstages.components.validate_model import report as gate_report
    from mlstages.components.validate_model import thresholds as gate_thresholds
    from mlstages.components.validate_model import validate_model as gate_logic

    try:  # the drift-monitoring reference that train writes beside the model, where the suite has it
        from mlstages.components.common import reference as reference_logic
    except ImportError:
        reference_logic = None

    lap("imports")
    params = PIPELINE_PARAMS
    label_column = params["label_column"]
    out = workdir / "outputs"

    def output(stage: str, name: str) -> Path:
        path = out / stage / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_text(path: Path, text: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    # tooling/local.py's object_store(): the embedded store with its data under the workdir.
    with EmbeddedGCS(root=workdir / "gcs", buckets=[LOCAL_BUCKET]):
        model_registry = f"gs://{LOCAL_BUCKET}/models"
        lap("object_store")

        # ingest (component defaults: source_format auto, utf-8, no snapshot)
        source_uri = str(data_path)
        frame = read_source(IngestConfig(source_uri=source_uri, source_format="auto"))
        dataset_path = output("ingest", "dataset")
        metadata = write_dataset(frame, dataset_path, source=display_uri(source_uri))
        write_text(output("ingest", "summary"), ingest_summary(metadata))
        lap("ingest")

        # validate_data
        config = validation_config.ValidationConfig(
            label_column=label_column,
            policy=params["validation_policy"],
            max_missing_share=0.5,
            max_duplicate_share=0.05,
            range_tolerance=0.1,
            check_outliers=True,
            max_outlier_share=0.05,
            max_domain_size=100,
        )
        result = validation_logic.validate(frame, config, schema=None)
        validation_logic.raise_for_anomalies(result)
        documents = {
            output("validate_data", "statistics"): json_module.dumps(
                result.statistics, indent=2, allow_nan=False
            ),
            output("validate_data", "schema"): json_module.dumps(result.schema, indent=2, allow_nan=False),
            output("validate_data", "report"): validation_report.render_html(result, title="Data validation"),
            output("validate_data", "summary"): validation_report.render_markdown(result),
        }
        for path, text in documents.items():
            write_text(path, text)
        del result, documents
        lap("validate_data")

        # preprocess (component defaults for the parameters the pipeline does not pass)
        config = preprocess_logic.PreprocessConfig(
            label_column=label_column,
            task=params["task"],
            test_size=params["test_size"],
            validation_size=params["validation_size"],
            seed=params["seed"],
            split=params["split"],
            time_column="",
            drop_columns=(),
            numeric_imputation="median",
            categorical_imputation="most_frequent",
            fill_value_numeric=0.0,
            fill_value_categorical="missing",
            encoding=params["encoding"],
            max_categories=20,
            outliers=params["outliers"],
            outlier_factor=None,
            scaling=params["scaling"],
            text_columns=(),
            add_missing_indicators=True,
        )
        prepared = preprocess_logic.preprocess(frame, config)
        del frame
        for name, split in prepared.splits.items():
            write_dataset(split, output("preprocess", name), source=str(dataset_path))
        transformer_dir = output("preprocess", "transformer")
        save_estimator(
            prepared.preprocessor,
            transformer_dir,
            "transformer",
            preprocess_logic.preprocessor_metadata(prepared),
        )
        write_text(output("preprocess", "summary"), preprocess_logic.render_markdown(prepared))
        task = prepared.task
        preprocessor = prepared.preprocessor
        train_df, test_df = prepared.train, prepared.test
        # Downstream tasks read the splits back from Parquet, which keeps no index: give the
        # in-memory frames the same 0..n-1 index (no copy of the data).
        train_df.index = pd.RangeIndex(len(train_df))
        test_df.index = pd.RangeIndex(len(test_df))
        del prepared, split
        lap("preprocess")

        # engineer_features
        config = features_logic.FeatureConfig(
            label_column=label_column,
            task=task,
            derived=tuple(params["derived_features"]),
            selection=params["selection"],
            max_features=params["max_features"],
            variance_threshold=0.0,
            seed=params["seed"],
        )
        features_logic.check_matches_preprocess(config, read_metadata(transformer_dir))
        engineered = features_logic.engineer_features(train_df, preprocessor, config)
        html_report = features_logic.render_html(engineered)
        markdown_summary = features_logic.render_markdown(engineered)
        features_dir = output("engineer_features", "features")
        save_estimator(
            engineered.feature_pipeline,
            features_dir,
            "features",
            features_logic.feature_metadata(engineered, train_df),
        )
        write_text(output("engineer_features", "report"), html_report)
        write_text(output("engineer_features", "summary"), markdown_summary)
        feature_pipeline = engineered.feature_pipeline
        del engineered
        lap("engineer_features")

        # train
        check_model_name(params["model_name"])
        config = training_config.TrainConfig(
            label_column=label_column,
            task=task,
            model_families=tuple(params["model_families"]),
            search=params["search"],
            n_iter=10,
            cv_folds=params["cv_folds"],
            scoring="",
            search_space=params["search_space"],
            seed=params["seed"],
            max_search_rows=params["max_search_rows"],
        )
        declared = read_metadata(features_dir).get("input_columns") or {}
        input_columns = None
        if declared and not hasattr(feature_pipeline, "feature_names_in_"):
            input_columns = [c for c in train_df.columns if c in declared]
        trained = train_logic.train(train_df, feature_pipeline, config, input_columns=input_columns)
        input_types = column_types(train_df[trained.input_columns])
        input_types.update({c: t for c, t in declared.items() if c in input_types})
        html_report = training_report.render_html(trained)
        markdown_report = training_report.render_markdown(trained)
        model_dir = output("train", "model")
        extra_metadata = None
        if reference_logic is not None:
            # The training reference for drift monitoring, written beside the model as the train
            # component writes it.
            ordered_types = {c: input_types[c] for c in trained.input_columns}
            reference_path = reference_logic.save_reference(
                reference_logic.build_reference(
                    train_df, trained.label_column, ordered_types, seed=params["seed"]
                ),
                model_dir,
            )
            extra_metadata = {
                "reference": {"file": reference_path.name, "sha256": file_sha256(reference_path)}
            }
        training_export.export_model(trained, model_dir, input_types, extra_metadata=extra_metadata)
        model_uri = publish_model(model_dir, model_registry, params["model_name"])
        write_text(output("train", "search_results"), html_report)
        write_text(output("train", "summary"), markdown_report)
        metric_values = {
            f"cv_{trained.scoring}": trained.best_score,
            "train_rows": trained.train_rows,
            "search_rows": trained.search_rows,
            "candidates": len(trained.search_results),
        }
        write_text(output("train", "metrics"), json_module.dumps(metric_values))
        model = trained.model
        best = {"best_params": trained.best_params, "cv_score": trained.best_score}
        del trained, train_df
        lap("train")

        # evaluate
        classes, model_columns = evaluate_logic.model_inputs(read_metadata(model_dir), label_column, task)
        evaluation = evaluate_logic.evaluate(
            model,
            test_df,
            label_column,
            task,
            slice_columns=tuple(params["slice_columns"]),
            classes=classes,
            input_columns=model_columns,
        )
        document = json_module.dumps(evaluation.to_dict(), indent=2, allow_nan=False)
        write_text(output("evaluate", "evaluation"), document)
        write_text(output("evaluate", "report"), evaluation_report.render_html(evaluation))
        write_text(output("evaluate", "summary"), evaluation_report.render_markdown(evaluation))
        primary = evaluation_metrics.PRIMARY_METRIC[evaluation.task]
        namedtuple("Outputs", ["primary_metric", "primary_value", "test_rows"])(
            primary, float(evaluation.metrics[primary]), evaluation.rows
        )
        lap("evaluate")

        # validate_model (the blessing gate), with the pipeline's defaults; it loads the model from
        # its directory itself. Not blessed without thresholds, so deploy does not run.
        config = gate_thresholds.BlessingConfig(
            label_column=label_column,
            task=task,
            thresholds=GATE_DEFAULTS["thresholds"],
            slice_columns=tuple(params["slice_columns"]),
            min_slice_rows=GATE_DEFAULTS["min_slice_rows"],
        )
        blessing = gate_logic.validate_model(
            model_dir,
            test_df,
            evaluation,
            config,
            model_registry=model_registry,
            model_name=params["model_name"],
            candidate_uri=model_uri,
            infra_validation=GATE_DEFAULTS["infra_validation"],
        )
        document = json_module.dumps(blessing.to_dict(), indent=2, allow_nan=False)
        write_text(output("validate_model", "blessing"), document)
        write_text(output("validate_model", "report"), gate_report.render_html(blessing))
        write_text(output("validate_model", "summary"), gate_report.render_markdown(blessing))
        lap("validate_model")
    lap("object_store_stop")
    outcome = {
        **best,
        "test_metrics": evaluation.to_dict()["metrics"],
        "blessed": blessing.blessed,
        "model_files": sorted(p.name for p in model_dir.iterdir()),
    }
    return {"outcome": outcome}


def _reset_peak_rss() -> None:
    """Start this process's VmHWM afresh from its current RSS (Linux: clear_refs value 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass  # the per-stage peaks then carry the earlier stages' peak; the total is unaffected


def _vm_hwm_bytes() -> int:
    """This process's peak RSS (VmHWM: reset at exec, unlike ru_maxrss, which carries the
    parent's peak over a fork)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_main(path: str, data_path: Path, workdir: Path, result_file: Path) -> None:
    """Entry point of a measured interpreter: run one path and write its timings as JSON."""
    started = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    stage_peaks: dict[str, int] = {}
    stage_cpu: dict[str, float] = {}
    if path == "pipeline":
        outcome = run_pipeline_path(data_path, workdir)
    else:
        outcome = run_single_path(data_path, workdir, stage_seconds, stage_peaks, stage_cpu)
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "path": path,
        "seconds": seconds,
        "stage_seconds": stage_seconds,
        "stage_peak_rss_bytes": stage_peaks,
        "stage_cpu_seconds": stage_cpu,
        # With per-stage resets, VmHWM is the last stage's peak: the process peak is the largest.
        "self_peak_rss_bytes": max([_vm_hwm_bytes(), *stage_peaks.values()]),
        # The largest peak RSS of any waited-for child (KiB on Linux). A forked child starts with
        # its parent's RSS counted, so this is at least the parent's RSS at the time of the fork.
        "children_max_rss_bytes": children.ru_maxrss * 1024,
        **outcome,
    }
    result_file.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")


# --- measuring a process tree ------------------------------------------------------------------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far: user + system) of every process in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces; fields follow the ')'.
        # fields[0] is field 3 (state): the parent is field 4, utime and stime fields 14 and 15.
        fields = stat[stat.rfind(b")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return table


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def _process_label(pid: int) -> str:
    """A short name for a process of the tree: the kfp task it runs, or its program."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return "?"
    if "--function_to_execute" in argv:
        index = argv.index("--function_to_execute")
        if index + 1 < len(argv):
            program = "python" if "python" in Path(argv[0]).name else Path(argv[0]).name
            return f"task:{argv[index + 1]} ({program})"
    if not argv:
        return "?"
    return Path(argv[0]).name + (f" {argv[1]}" if len(argv) > 1 and argv[1].startswith("-m") else "")


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants until stopped.

    Also keeps, per process, its label, its peak RSS, when it was first and last seen, and its CPU
    seconds at the last sample (so up to one interval of CPU before it exits is missed). Summed
    RSS counts pages shared between processes (libraries, copy-on-write pages) once per process,
    so it slightly overstates the tree's memory.
    """

    def __init__(self, root_pid: int, interval: float = SAMPLE_INTERVAL_SECONDS) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval = interval
        self.peak_bytes = 0
        self.peak_processes: list[dict[str, Any]] = []
        self.samples = 0
        self.processes: dict[int, dict[str, Any]] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def sample(self) -> None:
        now = time.perf_counter()
        children: dict[int, list[int]] = {}
        table = _process_table()
        for pid, (parent, _) in table.items():
            children.setdefault(parent, []).append(pid)
        tree, queue = [], [self.root_pid]
        while queue:
            pid = queue.pop()
            tree.append(pid)
            queue.extend(children.get(pid, ()))
        total = 0
        current = []
        for pid in tree:
            rss = _rss_bytes(pid)
            if rss is None:
                continue
            total += rss
            record = self.processes.get(pid)
            if record is None:
                record = {"label": _process_label(pid), "peak_rss_bytes": 0, "first_seen": now}
                self.processes[pid] = record
            record["peak_rss_bytes"] = max(record["peak_rss_bytes"], rss)
            record["last_seen"] = now
            if pid in table:
                record["cpu_seconds"] = table[pid][1]
            current.append((pid, rss))
        self.samples += 1
        if total > self.peak_bytes:
            self.peak_bytes = total
            self.peak_processes = [
                {"label": self.processes[pid]["label"], "rss_bytes": rss} for pid, rss in current
            ]


# Variables that cap the threads of numpy's BLAS (OpenBLAS, MKL) and of OpenMP.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def measure(path: str, data_path: Path, workdir: Path, blas_threads: int = 1) -> dict[str, Any]:
    """Run one path in a fresh interpreter, sampling its process tree; return its measurements.

    ``blas_threads`` > 0 caps BLAS/OpenMP threads in the path's processes (every kfp.local task
    inherits the environment); 0 leaves the libraries' defaults.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    result_file = workdir / "result.json"
    log_file = workdir / "output.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", path, "--data", str(data_path)]
    command += ["--workdir", str(workdir), "--result-file", str(result_file)]
    environment = {k: v for k, v in os.environ.items() if k != "MLSTAGES_BUCKET"}
    environment["PYTHONUNBUFFERED"] = "1"
    if blas_threads > 0:
        environment.update({name: str(blas_threads) for name in THREAD_VARIABLES})
    load_before = os.getloadavg()[0]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        sampler = TreeSampler(process.pid)
        sampler.start()
        returncode = process.wait()
        sampler.stop()
    process_seconds = time.perf_counter() - started
    # RUSAGE_CHILDREN covers every descendant reaped so far: the path's process, its kfp.local
    # tasks and the object store, all waited for before the path's process exits.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"the {path} path failed (exit code {returncode}); log {log_file}:\n{tail}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["process_seconds"] = process_seconds
    result["cpu_seconds"] = (usage.ru_utime - usage_before.ru_utime) + (
        usage.ru_stime - usage_before.ru_stime
    )
    result["minor_page_faults"] = usage.ru_minflt - usage_before.ru_minflt
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    result["tree_peak_rss_bytes"] = sampler.peak_bytes
    result["tree_at_peak"] = sampler.peak_processes
    result["samples"] = sampler.samples
    result["processes"] = [
        {
            "label": record["label"],
            "peak_rss_bytes": record["peak_rss_bytes"],
            "seen_seconds": record["last_seen"] - record["first_seen"],
            "cpu_seconds": record.get("cpu_seconds"),
            "first_seen_offset": record["first_seen"] - started,
        }
        for record in sorted(sampler.processes.values(), key=lambda r: r["first_seen"])
    ]
    if path == "pipeline":
        result["task_seconds"] = kfp_task_seconds(log_file.read_text(encoding="utf-8", errors="replace"))
    result["log_file"] = str(log_file)
    return result


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KFP_LOG = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d{3}) - INFO - (Executing task|Task) '?([\w-]+)'?(.*)$")


def kfp_task_seconds(log_text: str) -> dict[str, float]:
    """Each task's wall time from kfp.local's log ('Executing task X' to 'Task X finished')."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for line in _ANSI.sub("", log_text).splitlines():
        match = _KFP_LOG.match(line.strip())
        if not match:
            continue
        hours, minutes, secs, kind, task, rest = match.groups()
        stamp = int(hours) * 3600 + int(minutes) * 60 + float(secs)
        if kind == "Executing task":
            started[task] = stamp
        elif "finished with status" in rest and task in started:
            seconds[task] = (stamp - started[task]) % 86400
    return seconds


# --- explaining the pipeline's overhead ----------------------------------------------------------

# What a pipeline task does before its stage's logic runs, and a stage in the single process does
# not: start Python, import kfp's executor, the component and its logic module, then read its
# inputs back from the run folder (unpickling a fitted estimator imports the scikit-learn modules
# it is made of, which the single process imported once, in an earlier stage).
_TASK_PREAMBLE = r"""
import importlib, json, sys, time
started = time.perf_counter()
import kfp.dsl.executor_main  # noqa: F401
stage = sys.argv[1]
importlib.import_module(f"mlstages.components.{stage}.component")
importlib.import_module(f"mlstages.components.{stage}.{stage}")
imported = time.perf_counter()
from mlstages.components.common.artifacts import load_estimator
from mlstages.components.common.datasets import read_dataset
for kind, path, name in json.loads(sys.argv[2]):
    if kind == "dataset":
        read_dataset(path)
    else:
        load_estimator(path, name)
print(json.dumps({"import_seconds": imported - started, "read_seconds": time.perf_counter() - imported}))
"""

# The inputs each task reads: (kind, task folder, output name, joblib name).
_TASK_INPUTS = {
    "ingest": [],
    "validate_data": [("dataset", "ingest", "dataset", "")],
    "preprocess": [("dataset", "ingest", "dataset", "")],
    "engineer_features": [
        ("estimator", "preprocess", "transformer", "transformer"),
        ("dataset", "preprocess", "train", ""),
    ],
    "train": [
        ("dataset", "preprocess", "train", ""),
        ("estimator", "engineer-features", "features", "features"),
    ],
    "evaluate": [("dataset", "preprocess", "test", ""), ("estimator", "train", "model", "model")],
    "validate_model": [("dataset", "preprocess", "test", ""), ("estimator", "train", "model", "model")],
}


def task_preamble_seconds(stage: str, run_dir: Path, environment: dict[str, str]) -> dict[str, float]:
    """Seconds a cold task process of ``stage`` spends before its logic runs, split into the
    interpreter's start, imports, and reading its inputs from the pipeline run in ``run_dir``."""
    inputs = []
    for kind, task, name, joblib_name in _TASK_INPUTS[stage]:
        found = sorted(run_dir.glob(f"**/{task}/{name}"))
        if not found:
            raise RuntimeError(f"no artifact {task}/{name} under {run_dir}")
        inputs.append((kind, str(found[0]), joblib_name))
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _TASK_PREAMBLE, stage, json.dumps(inputs)],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    total = time.perf_counter() - started
    inner = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "interpreter_seconds": total - inner["import_seconds"] - inner["read_seconds"],
        **inner,
        "total_seconds": total,
    }


def profile_overhead(pipeline_run_dir: Path, blas_threads: int) -> dict[str, Any]:
    """Where the pipeline spends time that the single process does not."""
    environment = dict(os.environ)
    if blas_threads > 0:
        environment.update({name: str(blas_threads) for name in THREAD_VARIABLES})
    preamble = {stage: task_preamble_seconds(stage, pipeline_run_dir, environment) for stage in STAGES}
    return {
        "task_preamble_seconds": preamble,
        "task_preamble_total_seconds": sum(p["total_seconds"] for p in preamble.values()),
    }


# --- the run and its report --------------------------------------------------------------------


def code_version() -> dict[str, Any]:
    """The commit measured and the files under components/ and pipelines/ that differ from it
    (read-only git commands; no index refresh is written)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=root, capture_output=True, text=True, check=False
        )
        return result.stdout.rstrip("\n") if result.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "components", "pipelines")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted": sorted(line[3:] for line in changed.splitlines() if line.endswith(".py")),
    }


def _same_outcome(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Differences between two paths' outcomes (the chosen model and its test metrics)."""
    problems = []
    if first["best_params"] != second["best_params"]:
        problems.append(f"best_params {first['best_params']} != {second['best_params']}")
    # The same files in the model directory: a component that starts writing something new (and
    # run_single_path not yet mirroring it) shows up here.
    if first.get("model_files") != second.get("model_files"):
        problems.append(f"model directory files {first.get('model_files')} != {second.get('model_files')}")
    if first["blessed"] != second["blessed"]:
        problems.append(f"blessed {first['blessed']} != {second['blessed']}")
    if abs(first["cv_score"] - second["cv_score"]) > 1e-9:
        problems.append(f"cv_score {first['cv_score']} != {second['cv_score']}")
    for name, value in first["test_metrics"].items():
        other = second["test_metrics"].get(name)
        if (value is None) != (other is None) or (value is not None and abs(value - other) > 1e-9):
            problems.append(f"test metric {name}: {value} != {other}")
    return problems


def run(rows: int, repeats: int, workdir: Path, profile: bool, blas_threads: int = 1) -> dict[str, Any]:
    data_path = workdir / "data" / "synthetic.parquet"
    started = time.perf_counter()
    dataset = write_dataset_file(rows, data_path)
    dataset["generate_seconds"] = time.perf_counter() - started
    code = code_version()
    print(
        f"Dataset: {rows:,} rows, {dataset['parquet_bytes'] / 1e6:.0f} MB Parquet, "
        f"{dataset['in_memory_bytes'] / 1e6:.0f} MB in memory, "
        f"{dataset['missing_share_of_feature_values']:.1%} of feature values missing "
        f"(generated in {dataset['generate_seconds']:.1f} s)",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    last_pipeline_dir = None
    for repeat in range(repeats):
        # Alternate the order so that neither path always runs on a machine the other just warmed.
        order = PATHS if repeat % 2 == 0 else tuple(reversed(PATHS))
        for path in order:
            run_dir = workdir / f"{path}-{repeat + 1}"
            result = measure(path, data_path, run_dir, blas_threads)
            runs[path].append(result)
            print(
                f"  {path:<8} run {repeat + 1}/{repeats}: {result['seconds']:.1f} s, "
                f"tree peak RSS {result['tree_peak_rss_bytes'] / 1e6:.0f} MB "
                f"({result['tree_peak_rss_bytes'] / dataset['in_memory_bytes']:.2f}x the dataset)",
                flush=True,
            )
            if path == "pipeline":
                if last_pipeline_dir is not None:
                    shutil.rmtree(last_pipeline_dir, ignore_errors=True)
                last_pipeline_dir = run_dir
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
    # Equal work: every run of both paths must choose the same model with the same test metrics.
    reference = runs["single"][0]["outcome"]
    differences = sorted(
        {d for path in PATHS for r in runs[path] for d in _same_outcome(reference, r["outcome"])}
    )
    if differences:
        print("WARNING: the runs did not all produce the same model: " + "; ".join(differences), flush=True)

    summary = {path: summarize(runs[path], dataset["in_memory_bytes"]) for path in PATHS}
    wall_ratio = summary["pipeline"]["median_seconds"] / summary["single"]["median_seconds"]
    targets = {
        "pipeline_over_single_wall_time": {
            "value": wall_ratio,
            "target": f"<= {MAX_PIPELINE_OVER_SINGLE}",
            "met": wall_ratio <= MAX_PIPELINE_OVER_SINGLE,
        },
    }
    for path in PATHS:
        ratio = summary[path]["median_tree_peak_over_dataset"]
        targets[f"{path}_peak_memory_over_dataset"] = {
            "value": ratio,
            "target": f"< {MAX_PEAK_OVER_DATASET}",
            "met": ratio < MAX_PEAK_OVER_DATASET,
        }
    overhead = None
    if profile and last_pipeline_dir is not None:
        print("Profiling the pipeline's overhead (task start-up, reads between tasks) ...", flush=True)
        overhead = profile_overhead(last_pipeline_dir, blas_threads)
        overhead["per_stage"] = per_stage_comparison(runs)
    if last_pipeline_dir is not None:
        shutil.rmtree(last_pipeline_dir, ignore_errors=True)
    for path in PATHS:
        for result in runs[path]:
            result.pop("log_file", None)
            result.pop("run_dir", None)
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        },
        "versions": {
            name: package_metadata.version(name)
            for name in ("mlstages", "kfp", "scikit-learn", "pandas", "numpy", "pyarrow", "joblib")
        },
        "code": code,
        "dataset": dataset,
        "parameters": PIPELINE_PARAMS,
        "paths": PATH_DESCRIPTIONS,
        "repeats": repeats,
        "statistic": "median",
        "sample_interval_seconds": SAMPLE_INTERVAL_SECONDS,
        "blas_threads": blas_threads or "library default",
        "summary": summary,
        "pipeline_over_single_wall_time": wall_ratio,
        "pipeline_over_single_cpu_time": summary["pipeline"]["median_cpu_seconds"]
        / summary["single"]["median_cpu_seconds"],
        "targets": targets,
        "same_model": not differences,
        "model_differences": differences,
        "outcome": runs["single"][0]["outcome"],
        "overhead": overhead,
        "runs": runs,
    }


def summarize(runs: list[dict[str, Any]], dataset_bytes: int) -> dict[str, Any]:
    peak = statistics.median(r["tree_peak_rss_bytes"] for r in runs)
    largest_process = statistics.median(max(p["peak_rss_bytes"] for p in r["processes"]) for r in runs)
    return {
        "seconds": [r["seconds"] for r in runs],
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "median_process_seconds": statistics.median(r["process_seconds"] for r in runs),
        "cpu_seconds": [r["cpu_seconds"] for r in runs],
        "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "load_average_1min": [r["load_average_1min"] for r in runs],
        "median_tree_peak_rss_bytes": int(peak),
        "median_tree_peak_over_dataset": peak / dataset_bytes,
        "median_largest_process_peak_rss_bytes": int(largest_process),
        "median_largest_process_peak_over_dataset": largest_process / dataset_bytes,
        "median_self_peak_rss_bytes": int(statistics.median(r["self_peak_rss_bytes"] for r in runs)),
        "median_children_max_rss_bytes": int(statistics.median(r["children_max_rss_bytes"] for r in runs)),
    }


_TASK_OF_STAGE = {stage: stage.replace("_", "-") for stage in STAGES}


def per_stage_comparison(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Median seconds and peak RSS per stage: the single process's stage (its own clock and
    VmHWM) beside the pipeline's task (kfp.local's log, and the sampled RSS of the task process)."""

    def median_or_none(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def task_cpu(run: dict[str, Any], stage: str) -> float | None:
        values = [p["cpu_seconds"] for p in run["processes"] if p["label"].startswith(f"task:{stage} ")]
        values = [v for v in values if v is not None]
        return sum(values) if values else None

    rows = []
    for stage in STAGES:
        task_peaks = [
            max(
                (p["peak_rss_bytes"] for p in r["processes"] if p["label"].startswith(f"task:{stage} ")),
                default=None,
            )
            for r in runs["pipeline"]
        ]
        rows.append(
            {
                "stage": stage,
                "single_seconds": median_or_none([r["stage_seconds"].get(stage) for r in runs["single"]]),
                "pipeline_task_seconds": median_or_none(
                    [r["task_seconds"].get(_TASK_OF_STAGE[stage]) for r in runs["pipeline"]]
                ),
                "single_peak_rss_bytes": median_or_none(
                    [r["stage_peak_rss_bytes"].get(stage) for r in runs["single"]]
                ),
                "pipeline_task_peak_rss_bytes": median_or_none(task_peaks),
                "single_cpu_seconds": median_or_none(
                    [r["stage_cpu_seconds"].get(stage) for r in runs["single"]]
                ),
                "pipeline_task_cpu_seconds": median_or_none([task_cpu(r, stage) for r in runs["pipeline"]]),
            }
        )
    outside = {
        "single": median_or_none(
            [sum(v for k, v in r["stage_seconds"].items() if k not in STAGES) for r in runs["single"]]
        ),
        "pipeline": median_or_none(
            [r["seconds"] - sum(r["task_seconds"].values()) for r in runs["pipeline"]]
        ),
    }
    rows.append(
        {
            "stage": "outside the stages",
            "single_seconds": outside["single"],
            "pipeline_task_seconds": outside["pipeline"],
            "single_peak_rss_bytes": None,
            "pipeline_task_peak_rss_bytes": None,
            "single_cpu_seconds": None,
            "pipeline_task_cpu_seconds": None,
        }
    )
    return rows


def markdown(report: dict[str, Any]) -> str:
    dataset = report["dataset"]
    summary = report["summary"]
    mb = 1e6
    data_mb = dataset["in_memory_bytes"] / mb
    params = report["parameters"]
    lines = [
        "# Training pipeline (kfp.local) versus the same logic in one process",
        "",
        *(
            [
                "**Quick smoke run** (`--quick`): check that the benchmark works; do not quote these figures.",
                "",
            ]
            if report.get("mode") == "quick"
            else []
        ),
        f"Generated {report['generated_at']} on {report['machine']['cpus']} CPUs, "
        f"{report['machine']['memory_bytes'] / 2**30:.0f} GiB, Python {report['machine']['python']}; "
        + ", ".join(f"{name} {version}" for name, version in report["versions"].items())
        + f". Median of {report['repeats']} run(s) of each path, interleaved, each in a fresh interpreter. "
        "These machines are shared and noisy: compare figures from one run of the benchmark. "
        f"BLAS/OpenMP threads per process: {report['blas_threads']} (both paths; see benchmarks/README.md). "
        f"Code: commit {report['code']['commit']}"
        + (
            f" with uncommitted changes to {', '.join(report['code']['uncommitted'])}."
            if report["code"]["uncommitted"]
            else "."
        ),
        "",
        f"Dataset: {dataset['rows']:,} seeded synthetic rows, {dataset['numeric_columns']} numeric and "
        f"{dataset['categorical_columns']} categorical columns "
        f"({', '.join(str(n) for n in dataset['categorical_levels'].values())} levels), "
        f"{dataset['missing_share_of_feature_values']:.1%} of feature values missing, binary label "
        f"({dataset['positive_label_share']:.0%} positive). Parquet {dataset['parquet_bytes'] / mb:.0f} MB; "
        f"in memory (`memory_usage(deep=True)` as read from Parquet) **{data_mb:.0f} MB**.",
        "",
        f"Parameters: {', '.join(params['model_families'])} with "
        f"{json.dumps(params['search_space'][params['model_families'][0]])} ({params['search']} search, "
        f"{params['cv_folds']}-fold CV on a {params['max_search_rows']:,}-row sample, refit on every "
        f"training row); selection {params['selection']}; {len(params['derived_features'])} derived "
        f"features; outliers {params['outliers']}, scaling {params['scaling']}, encoding "
        f"{params['encoding']}; slices by {', '.join(params['slice_columns'])}. "
        + ("Every run of both paths chose the same " if report["same_model"] else "**The runs differ**: ")
        + f"model (C={report['outcome']['best_params'].get('C')}, CV f1_macro "
        f"{report['outcome']['cv_score']:.4f}, test accuracy "
        f"{report['outcome']['test_metrics']['accuracy']:.4f}, ROC-AUC "
        f"{report['outcome']['test_metrics']['roc_auc']:.4f}).",
        "",
        "Paths:",
        "",
    ]
    lines += [f"- `{name}`: {description}" for name, description in report["paths"].items()]
    if report["model_differences"]:
        lines += ["", "Differences between the runs' models: " + "; ".join(report["model_differences"])]
    lines += [
        "",
        "| path | wall seconds (each run) | median s | peak RSS of the process tree (MB) | "
        "/ dataset | largest single process (MB) | / dataset | CPU seconds, user + system (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path in PATHS:
        item = summary[path]
        lines.append(
            f"| `{path}` | {', '.join(f'{s:.1f}' for s in item['seconds'])} | {item['median_seconds']:.1f} | "
            f"{item['median_tree_peak_rss_bytes'] / mb:.0f} | {item['median_tree_peak_over_dataset']:.2f} | "
            f"{item['median_largest_process_peak_rss_bytes'] / mb:.0f} | "
            f"{item['median_largest_process_peak_over_dataset']:.2f} | {item['median_cpu_seconds']:.1f} |"
        )
    loads = [
        f"{load['before']:.1f}-{load['after']:.1f}"
        for path in PATHS
        for load in summary[path]["load_average_1min"]
    ]
    lines += [
        "",
        f"Wall time counts from the path's interpreter start, before its heavy imports. CPU time is that "
        f"of the whole process tree (RUSAGE_CHILDREN); pipeline / single CPU time: "
        f"**{report['pipeline_over_single_cpu_time']:.2f}**. The machine's 1-minute load average around "
        f"the runs (before-after): {', '.join(loads)} on {report['machine']['cpus']} CPUs: other work "
        "shared the cores, so wall times carry that noise; CPU times much less.",
    ]
    lines += ["", "Targets (issue 2):", ""]
    labels = {
        "pipeline_over_single_wall_time": "pipeline / single-process wall time",
        "pipeline_peak_memory_over_dataset": "pipeline peak memory (process tree) / dataset in memory",
        "single_peak_memory_over_dataset": "single-process peak memory (process tree) / dataset in memory",
    }
    for key, target in report["targets"].items():
        lines.append(
            f"- {labels[key]}: **{target['value']:.2f}** (target {target['target']}): "
            f"**{'PASS' if target['met'] else 'MISS'}**"
        )
    pipeline = summary["pipeline"]
    lines += [
        "",
        "Memory is sampled every "
        f"{int(report['sample_interval_seconds'] * 1000)} ms as the summed RSS of the path's process and "
        "all its descendants (the fake-gcs-server and, for the pipeline, the kfp.local driver and the "
        "running task); pages shared between processes count once per process. The largest single "
        "process is the highest RSS any one process of the tree reached. For the pipeline, "
        "`RUSAGE_CHILDREN` of the driver reports "
        f"{pipeline['median_children_max_rss_bytes'] / mb:.0f} MB as the largest child peak (Linux "
        "counts a child's RSS inherited at fork, so that figure is at least the driver's own RSS).",
    ]
    overhead = report.get("overhead")
    if overhead:
        lines += [
            "",
            "## Where the pipeline's time goes",
            "",
            "Medians over the runs, per stage.",
            "",
            "| stage | single process wall (s) | pipeline task wall (s) | difference (s) | single process "
            "CPU (s) | pipeline task CPU (s) | single process peak RSS in the stage (MB) | pipeline task "
            "peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in overhead["per_stage"]:
            single, task = row["single_seconds"], row["pipeline_task_seconds"]
            difference = f"{task - single:+.1f}" if single is not None and task is not None else "n/a"
            lines.append(
                f"| {row['stage']} | {_fmt(single)} | {_fmt(task)} | {difference} | "
                f"{_fmt(row['single_cpu_seconds'])} | {_fmt(row['pipeline_task_cpu_seconds'])} | "
                f"{_fmt(row['single_peak_rss_bytes'], mb, 0)} | {_fmt(row['pipeline_task_peak_rss_bytes'], mb, 0)} |"
            )
        lines += [
            "",
            "A pipeline task's wall time is kfp.local's, from 'Executing task' to 'finished' in its log; "
            "its CPU time is that of the task's processes, sampled (up to 50 ms before exit missed). "
            "Outside the stages: for the single process, its imports and the object store's start and "
            "stop; for the pipeline, everything between its tasks: the driver's imports (kfp, the "
            "pipeline), the object store, kfp.local's compilation and dispatch, reading the run back.",
            "",
            "What a pipeline task does before its stage's logic runs (a cold process, measured after the "
            "runs on the last pipeline run's artifacts), which the single process does not do per stage:",
            "",
            "| task | interpreter start (s) | imports: kfp executor, component, logic (s) | "
            "reading its inputs back (s) | total (s) |",
            "|---|---:|---:|---:|---:|",
        ]
        for stage, item in overhead["task_preamble_seconds"].items():
            lines.append(
                f"| {stage} | {item['interpreter_seconds']:.2f} | {item['import_seconds']:.2f} | "
                f"{item['read_seconds']:.2f} | {item['total_seconds']:.2f} |"
            )
        lines += [
            f"| all tasks | | | | **{overhead['task_preamble_total_seconds']:.1f}** |",
            "",
            "Reading inputs includes the imports that unpickling a fitted estimator triggers "
            "(scikit-learn modules), which the single process pays once.",
        ]
    lines.append("")
    return "\n".join(lines)


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value / scale:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, 1 repeat")
    parser.add_argument(
        "--rows", type=int, default=None, help=f"rows of synthetic data (default {FULL_ROWS:,})"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help=f"runs per path (default {FULL_REPEATS}; 1 with --quick)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-profile", action="store_true", help="skip the overhead breakdown")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="cap BLAS/OpenMP threads in both paths (default 1; 0 leaves the libraries' defaults)",
    )
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    # Internal: run one path in this interpreter (the benchmark starts itself this way).
    parser.add_argument("--measure", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        measure_main(args.measure, args.data, args.workdir, args.result_file)
        return 0
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    repeats = args.repeats or (1 if args.quick else FULL_REPEATS)
    if rows < 1_000:
        parser.error("--rows must be at least 1000")
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.blas_threads < 0:
        parser.error("--blas-threads must be 0 (library default) or more")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlstages-bench-pipeline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(rows, repeats, workdir, profile=not args.no_profile, blas_threads=args.blas_threads)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report["mode"] = "quick" if args.quick else "full"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "pipeline.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    (args.results_dir / "pipeline.md").write_text(text)
    print(text)
    missed = [name for name, target in report["targets"].items() if not target["met"]]
    return 1 if missed and args.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
