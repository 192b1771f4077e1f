"""The training pipeline: ingest → validate_data → preprocess → engineer_features → train →
evaluate → validate_model (the blessing gate) → deploy, only when blessed."""

from typing import Any, NamedTuple

from kfp import dsl

from mlstages.components.deploy.component import deploy
from mlstages.components.engineer_features.component import engineer_features
from mlstages.components.evaluate.component import evaluate
from mlstages.components.ingest.component import ingest
from mlstages.components.plan_trials.component import plan_trials
from mlstages.components.preprocess.component import preprocess
from mlstages.components.search_family.component import search_family
from mlstages.components.train.component import train
from mlstages.components.validate_data.component import validate_data
from mlstages.components.validate_model.component import validate_model
from mlstages.tooling.platform import PlatformSettings, configure_task

PIPELINE_NAME = "mlstages-training"


class TrainingOutputs(NamedTuple):
    model: dsl.Model
    model_uri: str


def inputs_of(pipeline: Any, arguments: dict[str, Any], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``arguments`` that ``pipeline`` (a component or pipeline) declares as inputs: how a
    pipeline forwards its own parameters, by name, to a nested one. KFP needs every signature
    spelled out, but not every call."""
    declared = set(pipeline.component_spec.inputs or {})
    return {name: value for name, value in arguments.items() if name in declared and name not in exclude}


def build_training_pipeline(settings: PlatformSettings | None = None):
    """The training pipeline with the platform ``settings`` (resources, secrets, caching) applied
    to its tasks; without settings it carries no cluster-specific configuration. With
    ``settings.trials.across_pods`` the search runs as one task per model family
    (``search_trials``) and train chooses among their outcomes."""
    settings = settings or PlatformSettings()

    def search_trials(train_split: Any, features: Any, task: Any, search_arguments: dict[str, Any]) -> Any:
        """plan_trials, then one search_family task per family in a ParallelFor: their outcomes,
        collected for train."""
        plan_task = plan_trials(
            task=task, **inputs_of(plan_trials, search_arguments, exclude=("task", "train", "features"))
        )
        configure_task(plan_task, "plan_trials", settings)
        # It reads the clock (the time budget's origin): a cached plan would start the budget at
        # an old run's time. After the settings, which may turn caching on for every task.
        plan_task.set_caching_options(False)
        with dsl.ParallelFor(
            plan_task.output, parallelism=settings.trials.parallelism, name="trials"
        ) as item:
            branch = search_family(
                train=train_split,
                features=features,
                # From the item, not preprocess' output: kfp.local 2.17 would pass the item instead.
                task=item.learning_task,
                family=item.family,
                trials_started=item.trials_started,
                **inputs_of(search_family, search_arguments, exclude=("task", "train", "features")),
            )
            configure_task(branch, "search_family", settings)
        return dsl.Collected(branch.outputs["outcome"])

    # The condition lives in a nested pipeline that takes the decision as a parameter: kfp.local
    # 2.17 resolves a dsl.If on a NamedTuple output of a task as a pipeline input and always
    # skips the branch. A nested pipeline adds no pod on a cluster.
    @dsl.pipeline(name="deploy-when-blessed")
    def deploy_when_blessed(
        blessed: bool,
        model: dsl.Input[dsl.Model],
        test: dsl.Input[dsl.Dataset],
        model_uri: str,
        model_name: str,
        model_registry: str,
        namespace: str,
        runtime: str,
        protocol_version: str,
        deployment_mode: str,
        min_replicas: int,
        max_replicas: int,
        canary_traffic_percent: int,
        cluster: str,
        kubeflow_model_registry: str,
    ):
        arguments = dict(locals())
        with dsl.If(blessed == True, name="blessed"):  # noqa: E712 (a KFP condition, not Python)
            # The run id is a placeholder of the deploy task itself: KFP resolves it only there.
            deploy_task = deploy(
                **inputs_of(deploy, arguments), source_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER
            )
            # Deploying changes the world (a cluster, the champion pointer): never from the cache.
            deploy_task.set_caching_options(False)
            configure_task(deploy_task, "deploy", settings)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest, validate, preprocess, engineer features, train with hyperparameter search "
        "and evaluate a scikit-learn model; exports one Pipeline that takes raw rows, blesses it "
        "against thresholds and the current champion, and deploys it to KServe only when blessed.",
    )
    def training_pipeline(
        data_uri: str,
        label_column: str,
        task: str = "auto",
        source_format: str = "auto",
        snapshot: str = "",
        sql_query: str = "",
        max_columns: int = 10000,
        max_cell_length: int = 1048576,
        max_line_length: int = 16777216,
        validation_policy: str = "fail",
        max_missing_share: float = 0.5,
        unlabelled_rows: str = "drop",
        test_size: float = 0.2,
        split: str = "stratified",
        time_column: str = "",
        drop_columns: list = [],
        column_types: dict = {},
        scaling: str = "standard",
        encoding: str = "onehot",
        outliers: str = "iqr",
        derived_features: list = [],
        selection: str = "none",
        max_features: int = 0,
        model_families: list = [],
        search: str = "halving",
        n_iter: int = 10,
        time_budget_seconds: float = 0.0,
        cv_folds: int = 5,
        scoring: str = "",
        search_space: dict = {},
        max_search_rows: int = 0,
        max_fit_rows: int = 0,
        max_train_rows: int = 0,
        slice_columns: list = [],
        seed: int = 42,
        model_registry: str = "",
        model_name: str = "model",
        thresholds: dict = {},
        min_slice_rows: int = 10,
        quality_floor: str = "default_gradient_boosting",
        floor_tolerance: float = 0.01,
        floor_confidence: float = 0.95,
        infra_validation: bool = True,
        cluster: str = "none",
        namespace: str = "default",
        runtime: str = "mlstages-sklearn",
        protocol_version: str = "v2",
        deployment_mode: str = "RawDeployment",
        min_replicas: int = 1,
        max_replicas: int = 1,
        canary_traffic_percent: int = -1,
        kubeflow_model_registry: str = "",
        engine: str = "local",
        full_refit: str = "auto",
    ) -> TrainingOutputs:
        arguments = dict(locals())
        ingest_task = ingest(
            source_uri=data_uri,
            source_format=source_format,
            sql_query=sql_query,
            snapshot=snapshot,
            max_columns=max_columns,
            max_cell_length=max_cell_length,
            max_line_length=max_line_length,
        )
        # Moving sources (HTTP, databases, a gs:// prefix) must not be served from the cache unless a
        # snapshot value says the data is the same; the caller turns caching on with a snapshot.
        ingest_task.set_caching_options(False)
        configure_task(ingest_task, "ingest", settings)

        validate_task = validate_data(
            dataset=ingest_task.outputs["dataset"],
            label_column=label_column,
            policy=validation_policy,
            max_missing_share=max_missing_share,
            unlabelled_rows=unlabelled_rows,
            column_types=column_types,
            engine=engine,
        )
        configure_task(validate_task, "validate_data", settings)

        preprocess_task = preprocess(
            dataset=ingest_task.outputs["dataset"],
            label_column=label_column,
            task=task,
            test_size=test_size,
            seed=seed,
            split=split,
            time_column=time_column,
            drop_columns=drop_columns,
            column_types=column_types,
            scaling=scaling,
            encoding=encoding,
            outliers=outliers,
            unlabelled_rows=unlabelled_rows,
            max_fit_rows=max_fit_rows,
        ).after(validate_task)
        configure_task(preprocess_task, "preprocess", settings)

        features_task = engineer_features(
            train=preprocess_task.outputs["train"],
            transformer=preprocess_task.outputs["transformer"],
            label_column=label_column,
            task=preprocess_task.outputs["task"],
            derived_features=derived_features,
            selection=selection,
            max_features=max_features,
            seed=seed,
            max_fit_rows=max_fit_rows,
        )
        configure_task(features_task, "engineer_features", settings)

        search_arguments = {
            "label_column": label_column,
            "model_families": model_families,
            "search": search,
            "n_iter": n_iter,
            "time_budget_seconds": time_budget_seconds,
            "cv_folds": cv_folds,
            "scoring": scoring,
            "search_space": search_space,
            "seed": seed,
            "max_search_rows": max_search_rows,
            "max_train_rows": max_train_rows,
        }
        trials = {}
        if settings.trials.across_pods:
            trials["trials"] = search_trials(
                preprocess_task.outputs["train"],
                features_task.outputs["features"],
                preprocess_task.outputs["task"],
                search_arguments,
            )
        train_task = train(
            train=preprocess_task.outputs["train"],
            features=features_task.outputs["features"],
            task=preprocess_task.outputs["task"],
            model_registry=model_registry,
            model_name=model_name,
            engine=engine,
            full_refit=full_refit,
            **search_arguments,
            **trials,
        )
        configure_task(train_task, "train", settings)

        evaluate_task = evaluate(
            test=preprocess_task.outputs["test"],
            model=train_task.outputs["model"],
            label_column=label_column,
            task=preprocess_task.outputs["task"],
            slice_columns=slice_columns,
            model_uri=train_task.outputs["model_uri"],
            engine=engine,
        )
        configure_task(evaluate_task, "evaluate", settings)

        gate_task = validate_model(
            model=train_task.outputs["model"],
            test=preprocess_task.outputs["test"],
            evaluation=evaluate_task.outputs["evaluation"],
            label_column=label_column,
            task=preprocess_task.outputs["task"],
            thresholds=thresholds,
            slice_columns=slice_columns,
            min_slice_rows=min_slice_rows,
            quality_floor=quality_floor,
            floor_tolerance=floor_tolerance,
            floor_confidence=floor_confidence,
            model_registry=model_registry,
            model_name=model_name,
            candidate_uri=train_task.outputs["model_uri"],
            infra_validation=infra_validation,
        )
        # The gate reads the champion from the registry, which a deploy may have moved since.
        gate_task.set_caching_options(False)
        configure_task(gate_task, "validate_model", settings)

        deploy_when_blessed(
            blessed=gate_task.outputs["blessed"],
            model=train_task.outputs["model"],
            test=preprocess_task.outputs["test"],
            model_uri=train_task.outputs["model_uri"],
            **inputs_of(deploy_when_blessed, arguments, exclude=("blessed", "model", "test", "model_uri")),
        )
        return TrainingOutputs(model=train_task.outputs["model"], model_uri=train_task.outputs["model_uri"])

    return training_pipeline


training_pipeline = build_training_pipeline()
