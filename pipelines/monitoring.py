"""The monitoring pipeline: ingest the current window → fetch the champion → monitor_drift →
retrain only when monitor_drift says so: training_data assembles what to learn from under the window
policy (by default the original data plus the window's labelled rows), and the whole training
pipeline, nested, with its blessing gate, trains on it.

On a cluster it runs as a recurring run (``kfp.Client().create_recurring_run`` with the compiled
``monitoring_pipeline.yaml`` and a cron expression): every run reads the window at ``current_uri``
(a moving ``gs://`` prefix or object is fine: ingest never serves it from the cache).
"""

from kfp import dsl

from mlstages.components.fetch_champion.component import fetch_champion
from mlstages.components.ingest.component import ingest
from mlstages.components.monitor_drift.component import monitor_drift
from mlstages.components.training_data.component import training_data
from mlstages.pipelines.training import build_training_pipeline, inputs_of
from mlstages.tooling.platform import PlatformSettings, configure_task

PIPELINE_NAME = "mlstages-monitoring"


def build_monitoring_pipeline(settings: PlatformSettings | None = None):
    """The monitoring pipeline with the platform ``settings`` applied to its tasks and to the
    nested training pipeline's."""
    settings = settings or PlatformSettings()
    training_pipeline = build_training_pipeline(settings)

    # The same workaround as deploy_when_blessed in training.py: kfp.local 2.17 always skips a
    # dsl.If on a task's NamedTuple output, so the condition lives in a nested pipeline that takes
    # the decision as a parameter. A nested pipeline adds no pod on a cluster.
    @dsl.pipeline(name="retrain-when-needed")
    def retrain_when_needed(
        retrain: bool,
        window: dsl.Input[dsl.Dataset],
        window_policy: str,
        max_windows: int,
        data_uri: str,
        label_column: str,
        task: str,
        source_format: str,
        sql_query: str,
        max_columns: int,
        max_cell_length: int,
        max_line_length: int,
        validation_policy: str,
        max_missing_share: float,
        unlabelled_rows: str,
        test_size: float,
        split: str,
        time_column: str,
        drop_columns: list,
        column_types: dict,
        scaling: str,
        encoding: str,
        outliers: str,
        derived_features: list,
        selection: str,
        max_features: int,
        model_families: list,
        search: str,
        n_iter: int,
        time_budget_seconds: float,
        cv_folds: int,
        scoring: str,
        search_space: dict,
        max_search_rows: int,
        max_fit_rows: int,
        max_train_rows: int,
        slice_columns: list,
        seed: int,
        model_registry: str,
        model_name: str,
        thresholds: dict,
        min_slice_rows: int,
        quality_floor: str,
        floor_tolerance: float,
        floor_confidence: float,
        infra_validation: bool,
        cluster: str,
        namespace: str,
        runtime: str,
        protocol_version: str,
        deployment_mode: str,
        min_replicas: int,
        max_replicas: int,
        canary_traffic_percent: int,
        kubeflow_model_registry: str,
        engine: str,
    ):
        arguments = dict(locals())
        with dsl.If(retrain == True, name="retrain"):  # noqa: E712 (a KFP condition, not Python)
            # Retraining learns from the window: the training pipeline ingests the data this
            # task assembles under the window policy, not data_uri again.
            data_task = training_data(**inputs_of(training_data, arguments))
            # It reads the window archive, which grows with every run: never from the cache.
            data_task.set_caching_options(False)
            configure_task(data_task, "training_data", settings)
            training_pipeline(
                **inputs_of(training_pipeline, arguments, exclude=("data_uri", "sql_query")),
                data_uri=data_task.outputs["data_uri"],
                sql_query="",
            )

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest a window of current data, compare it feature by feature with the "
        "champion model's training reference (and, with labels, the champion's performance with its "
        "test-set metrics), and retrain through the full training pipeline, blessing gate included, "
        "when drift or decay calls for it.",
    )
    def monitoring_pipeline(
        current_uri: str,
        data_uri: str,
        label_column: str,
        model_registry: str,
        model_name: str = "model",
        current_format: str = "auto",
        current_query: str = "",
        window_policy: str = "append",
        max_windows: int = 3,
        snapshot: str = "",
        drift_share: float = 0.5,
        feature_thresholds: dict = {},
        method: str = "auto",
        retrain_on: str = "drift_or_decay",
        max_metric_drop: float = 0.05,
        metric_drops: dict = {},
        max_missing_increase: float = 0.1,
        task: str = "auto",
        source_format: str = "auto",
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
    ):
        arguments = dict(locals())
        window_task = ingest(
            source_uri=current_uri,
            source_format=current_format,
            sql_query=current_query,
            snapshot=snapshot,
            max_columns=max_columns,
            max_cell_length=max_cell_length,
            max_line_length=max_line_length,
        )
        # The window moves between runs of a recurring run: never from the cache.
        window_task.set_caching_options(False)
        configure_task(window_task, "ingest", settings)

        champion_task = fetch_champion(model_registry=model_registry, model_name=model_name)
        # The champion pointer moves with every deploy.
        champion_task.set_caching_options(False)
        configure_task(champion_task, "fetch_champion", settings)

        drift_task = monitor_drift(
            current=window_task.outputs["dataset"],
            reference=champion_task.outputs["model"],
            model=champion_task.outputs["model"],
            label_column=label_column,
            drift_share=drift_share,
            feature_thresholds=feature_thresholds,
            method=method,
            retrain_on=retrain_on,
            max_metric_drop=max_metric_drop,
            metric_drops=metric_drops,
            max_missing_increase=max_missing_increase,
            engine=engine,
        )
        # The retrain decision is made afresh for every window, never served from a cluster's cache.
        drift_task.set_caching_options(False)
        configure_task(drift_task, "monitor_drift", settings)

        retrain_when_needed(
            retrain=drift_task.outputs["retrain"],
            window=window_task.outputs["dataset"],
            **inputs_of(retrain_when_needed, arguments, exclude=("retrain", "window")),
        )

    return monitoring_pipeline


monitoring_pipeline = build_monitoring_pipeline()
