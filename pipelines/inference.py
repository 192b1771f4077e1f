"""The batch inference pipeline: ingest new data → the champion (fetch_champion) or a given
version → batch_predict, which streams the rows through the model and writes the predictions as
prediction-log shards (the model server's format, so monitoring reads both)."""

from kfp import dsl

from mlstages.components.batch_predict.component import batch_predict
from mlstages.components.fetch_champion.component import fetch_champion
from mlstages.components.ingest.component import ingest
from mlstages.tooling.platform import PlatformSettings, configure_task

PIPELINE_NAME = "mlstages-inference"


def build_inference_pipeline(settings: PlatformSettings | None = None):
    """The inference pipeline with the platform ``settings`` applied to its tasks."""
    settings = settings or PlatformSettings()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest new data and score it with the registry's champion (or a given, blessed "
        "version) in bounded memory; writes sharded Parquet in the model server's prediction-log "
        "format: the inputs or an id, the prediction, class probabilities, the model version and a "
        "request id.",
    )
    def inference_pipeline(
        data_uri: str,
        model_registry: str = "",
        model_name: str = "model",
        model_uri: str = "",
        output_uri: str = "",
        id_column: str = "",
        force: bool = False,
        batch_rows: int = 65536,
        source_format: str = "auto",
        sql_query: str = "",
        snapshot: str = "",
        max_columns: int = 10000,
        max_cell_length: int = 1048576,
        max_line_length: int = 16777216,
        engine: str = "local",
    ):
        ingest_task = ingest(
            source_uri=data_uri,
            source_format=source_format,
            sql_query=sql_query,
            snapshot=snapshot,
            max_columns=max_columns,
            max_cell_length=max_cell_length,
            max_line_length=max_line_length,
        )
        # New data arrives under the same URI: never from the cache unless a snapshot says so.
        ingest_task.set_caching_options(False)
        configure_task(ingest_task, "ingest", settings)

        def score(**model: object) -> None:
            """batch_predict with the model of one branch; everything else is the pipeline's."""
            scoring = batch_predict(
                dataset=ingest_task.outputs["dataset"],
                model_registry=model_registry,
                model_name=model_name,
                output_uri=output_uri,
                id_column=id_column,
                force=force,
                batch_rows=batch_rows,
                engine=engine,
                **model,
            )
            # Every run writes new shards (their names are unique): a cached run would write none.
            scoring.set_caching_options(False)
            configure_task(scoring, "batch_predict", settings)

        # A condition on a pipeline parameter (not on a task's output) is evaluated by kfp.local
        # as on a cluster. Only one branch runs.
        with dsl.If(model_uri == "", name="champion"):
            champion_task = fetch_champion(model_registry=model_registry, model_name=model_name)
            # The champion pointer moves with every deploy.
            champion_task.set_caching_options(False)
            configure_task(champion_task, "fetch_champion", settings)
            score(model=champion_task.outputs["model"], model_uri=champion_task.outputs["Output"])
        with dsl.Else(name="given-version"):
            score(model_uri=model_uri)

    return inference_pipeline


inference_pipeline = build_inference_pipeline()
