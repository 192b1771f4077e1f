"""The pipeline benchmark's synthetic dataset and its two measured paths: the training pipeline
through kfp.local, and the same logic in one process (each run in a fresh interpreter)."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

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
    from mlstages.components.common.dataset_files import write_dataset
    from mlstages.components.common.datasets import column_types
    from mlstages.components.common.emulator import EmbeddedGCS
    from mlstages.components.common.model_card import ModelCard
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
        classes, model_columns = evaluate_logic.model_inputs(ModelCard.read(model_dir), label_column, task)
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
