"""KFP component for the training stage. The logic lives in the modules beside it;
train.py runs them."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def train(
    train: Input[Dataset],
    features: Input[Model],
    model: Output[Model],
    search_results: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    model_card: Output[HTML],
    label_column: str,
    task: str,
    trials: Input[list[Artifact]] = None,
    model_families: list = [],
    search: str = "halving",
    n_iter: int = 10,
    time_budget_seconds: float = 0.0,
    cv_folds: int = 5,
    scoring: str = "",
    search_space: dict = {},
    seed: int = 42,
    max_search_rows: int = 0,
    max_train_rows: int = 0,
    engine: str = "local",
    full_refit: str = "auto",
    model_registry: str = "",
    model_name: str = "model",
) -> NamedTuple("Outputs", [("best_family", str), ("cv_score", float), ("model_uri", str)]):
    """Searches model families with cross-validation and exports the best as one scikit-learn
    Pipeline (fitted feature pipeline + estimator) that predicts from raw rows.

    The fitted feature pipeline transforms the training rows once; each family's candidates are
    scored by k-fold cross-validation (stratified for classification) on that matrix; the candidate
    with the best mean score (ties go to the family listed first) is refit on every training row.
    Two baselines are scored on the same folds whatever the families: a dummy (the most frequent
    class, or the mean) and scikit-learn's HistGradientBoosting with default settings, which is
    also a candidate of the gradient_boosting family, so the chosen model is never worse than it in
    cross-validation. Both are refit and saved beside the model (baselines.joblib), for evaluate's
    test metrics and the blessing gate's quality floor.
    Everything is seeded, so the same inputs give the same model. The model directory holds
    model.joblib and metadata.json (task, label, classes, input columns and types, chosen family
    and parameters, CV score, library versions, sha256): the layout KServe's sklearn runtime loads.

    Args:
        train: The training split (Parquet) with the label column and the raw feature columns.
        features: The fitted feature pipeline (features.joblib + metadata.json) from
            engineer_features; it is not refit.
        label_column: The column to predict.
        task: classification or regression.
        trials: The search's outcomes when it ran across pods (one search_family branch per
            family, collected from a dsl.ParallelFor): then only the baselines are scored here
            and the winner is chosen from the outcomes exactly as from the search in this pod.
            Not given (the default): every family is searched here.
        model_families: Families to search, in order of preference; empty for every family of the
            task. Classification: logistic_regression, random_forest, gradient_boosting; regression:
            linear_regression (Ridge), random_forest, gradient_boosting (histogram-based boosting).
            lightgbm (LightGBM's LGBMClassifier/LGBMRegressor) is searched only when named here.
        search: halving (successive halving: n_iter seeded candidates per family scored on a few
            rows, the best third on three times as many, until the last are scored on all rows;
            tables too small for that score every candidate on every row), random (n_iter seeded
            candidates per family, each on every row) or grid (every candidate of the space).
        n_iter: Candidates per family for halving and random search.
        time_budget_seconds: 0 for no limit; otherwise no family's search starts after this many
            seconds (families run cheapest first; the report names those skipped). The baselines
            and the first family always run.
        cv_folds: Cross-validation folds, at least 2.
        scoring: A scikit-learn scorer name; empty for f1_macro (classification) or
            neg_root_mean_squared_error (regression).
        search_space: Family to {parameter: [values]}, replacing that family's default space,
            for example {"random_forest": {"n_estimators": [200], "max_depth": [null, 8]}}.
        seed: Seeds estimators, folds, random search and the search sample.
        max_search_rows: 0 to search on every row; otherwise the search uses a seeded (stratified)
            sample of this many rows and the winner is refit on all rows, for large datasets.
        max_train_rows: At most this many training rows are held (a seeded sample of the train
            split when it has more) for the search and the final refit; the summary says how many.
            0 sizes it from the task's memory allowance ($MLSTAGES_MEMORY_MB or the pod's limit,
            else 4 GiB).
        engine: local, dask (a Dask cluster started for the task: a LocalCluster, or a DaskCluster
            from the settings file's dask section) or a running scheduler's tcp://host:port. With a
            Dask engine a lightgbm winner can be refit on every training row (full_refit).
        full_refit: auto: when the engine is Dask, the winner is lightgbm and the task holds only a
            sample of the training rows, the winner is refit with the same parameters on every
            row on the cluster (each worker reads and transforms its parts; the model comes back as
            a plain LGBM estimator in the same Pipeline); the log says why when it does not apply.
            always: also when the task holds every row. off: never.
        model_registry: Optional registry root (gs://bucket/prefix or a folder): the model is also
            published there as <model_name>/<UTC time>-<sha256 prefix>/, never overwriting a version.
        model_name: The model's name in the registry (a Kubernetes name: lowercase, digits, '-').

    Returns:
        model: The exported Pipeline (model.joblib) with metadata.json and the training
            reference for drift monitoring (reference.json).
        search_results: Every candidate's cross-validated score, ranked, with the chosen one, and
            the baselines' scores.
        summary: The chosen model, why, the baselines, and the best candidate of each family.
        metrics: cv_<scoring> of the chosen model and of each baseline (baseline_<name>_cv_<scoring>),
            train_rows, search_rows, candidates, search_seconds.
        model_card: The model card as a page: the model, its inputs, the data it was trained on
            (sources with URIs, rows and content hashes; the train split), the code (suite version,
            image references), every stage's parameters and the parent champion.
        best_family: The chosen model family.
        cv_score: Its mean cross-validated score (scikit-learn's sign: higher is better).
        model_uri: Where the model directory is: its registry version when model_registry is set,
            else the model artifact's URI.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    import shutil
    from collections import namedtuple

    from mlstages.components.common.artifacts import file_sha256, read_metadata
    from mlstages.components.common.datasets import column_types
    from mlstages.components.common.memory import release_unused
    from mlstages.components.common.model_card_report import render_card_html
    from mlstages.components.common.progress import report
    from mlstages.components.common.reference import build_reference_from_dataset, save_reference
    from mlstages.components.common.registry import check_model_name, publish_model, read_champion
    from mlstages.components.common.reports import markdown_text
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.export import export_model
    from mlstages.components.train.full_refit import full_data_refit
    from mlstages.components.train.lineage import model_lineage, train_parameters
    from mlstages.components.train.report import render_html, render_markdown
    from mlstages.components.train.train import train_on_matrix
    from mlstages.components.train.training_rows import load_training_rows
    from mlstages.components.train.trials import collect_outcomes

    check_model_name(model_name)
    config = TrainConfig.from_parameters(locals())
    rows = load_training_rows(train.path, features.path, config)
    available, declared = rows.available, rows.declared
    outcomes = None if trials is None else collect_outcomes([t.path for t in trials], config)
    result = train_on_matrix(rows.matrix, rows.feature_pipeline, config, outcomes=outcomes)
    # Types from the feature pipeline's record of its inputs, else from a sample of the rows.
    check_rows = rows.matrix.check_rows
    input_types = column_types(check_rows[result.input_columns])
    input_types.update({c: t for c, t in declared.items() if c in input_types})
    del rows  # the matrix goes before the cluster refit, the reference and the model
    release_unused()  # and what the search's fits freed, which the C heap would keep
    result, refit_note = full_data_refit(
        result, train.path, config, check_rows, available, train_uri=train.uri
    )
    html_report = render_html(result)
    markdown_report = render_markdown(result)
    if outcomes is not None:
        markdown_report += (
            f"\nThe families were searched across pods ({len(outcomes)} search_family tasks); this "
            "task scored the baselines on the same folds and chose among their outcomes.\n"
        )
    markdown_report += refit_note
    if result.train_rows < available:
        markdown_report += (
            f"\nThe model was searched and refit on a seeded sample of {result.train_rows:,} of the "
            f"{available:,} training rows: what the task's memory allows (max_train_rows).\n"
        )

    # The training reference travels with the model, so drift monitoring never rereads the
    # training data; it is taken a batch at a time from the split's files, in bounded memory.
    ordered_types = {c: input_types[c] for c in result.input_columns}
    report("summarising the training split for drift monitoring (the reference)")
    reference = build_reference_from_dataset(
        train.path, result.label_column, ordered_types, seed=seed, what="training split"
    )
    reference_path = save_reference(reference, model.path)
    lineage = model_lineage(
        train.path,
        read_metadata(features.path),
        train_parameters(config),
        read_champion(model_registry, model_name) if model_registry else None,
    )
    written = export_model(
        result,
        model.path,
        input_types,
        extra_metadata={
            "reference": {"file": reference_path.name, "sha256": file_sha256(reference_path)},
            "lineage": lineage,
            **({"refit": result.refit} if result.refit else {}),
        },
    )
    card_html = render_card_html(written, f"Model card: {model_name}")
    model_uri = model.uri
    if model_registry:
        try:
            model_uri = publish_model(model.path, model_registry, model_name)
        except BaseException:
            # A model that could not be published must not look like this task's output.
            shutil.rmtree(model.path, ignore_errors=True)
            raise
        markdown_report += f"\nPublished to the model registry as {markdown_text(model_uri)}\n"
    if result.classes is not None:  # a real launcher refuses null metadata: regression has none
        model.metadata["classes"] = result.classes
    model.metadata.update(
        {
            "framework": "sklearn",
            "task": result.task,
            "label_column": result.label_column,
            "best_family": result.best_family,
            "best_params": result.best_params,
            "cv_score": result.best_score,
            "scoring": result.scoring,
            "train_rows": result.train_rows,
            "sha256": written.sha256,
            "versions": dict(written.versions),
            "model_uri": model_uri,
        }
    )
    with open(search_results.path, "w", encoding="utf-8") as handle:
        handle.write(html_report)
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(markdown_report)
    with open(model_card.path, "w", encoding="utf-8") as handle:
        handle.write(card_html)
    metrics.log_metric(f"cv_{result.scoring}", result.best_score)
    metrics.log_metric("train_rows", result.train_rows)
    metrics.log_metric("train_rows_available", available)
    metrics.log_metric("refit_on_cluster", int(result.refit is not None))
    metrics.log_metric("search_rows", result.search_rows)
    metrics.log_metric("candidates", len(result.search_results))
    metrics.log_metric("search_seconds", round(result.search_seconds, 3))
    for baseline in result.baselines:
        metrics.log_metric(f"baseline_{baseline.name}_cv_{result.scoring}", baseline.mean_cv_score)
    outputs = namedtuple("Outputs", ["best_family", "cv_score", "model_uri"])
    return outputs(result.best_family, result.best_score, model_uri)
