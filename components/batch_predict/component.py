"""KFP component for batch inference. The logic lives in batch_predict.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("batch_predict"), install_kfp_package=False)
def batch_predict(
    dataset: Input[Dataset],
    predictions: Output[Dataset],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    model: Input[Model] = None,
    model_uri: str = "",
    model_registry: str = "",
    model_name: str = "model",
    output_uri: str = "",
    id_column: str = "",
    force: bool = False,
    batch_rows: int = 65536,
    engine: str = "local",
) -> NamedTuple("Outputs", [("rows", int), ("shards", int), ("model_version", str)]):
    """Scores a dataset with a model version, streaming, and writes the predictions as sharded
    Parquet in the model server's prediction-log format.

    The dataset is read batch_rows rows at a time (only the columns the model needs), each batch
    is predicted and written as one shard under output_uri/date=YYYY-MM-DD/, so memory stays flat
    whatever the number of rows. Every row carries the model's input features (or only id_column),
    prediction, proba_<class> for classifiers, request_id (one per batch), row_index, logged_at,
    model_name and model_version: the columns of the server's log, so monitor_drift (through
    ingest of the prefix) and label joins read batch predictions as they read logged requests. The
    model is the fetch_champion output, or the version at model_uri. A version that is not the
    registry's champion (or the one before it) and has no blessing.json saying the gate blessed it
    is refused unless force is true. A missing input column, text where the model takes numbers,
    or an empty dataset fail the task before anything is written; when the model refuses a batch's
    values, the shards already written are removed. Shard names are unique, so run it with caching
    off: a cached run would write nothing.

    Args:
        dataset: The rows to score (Parquet), e.g. ingest's output; extra columns are ignored.
        model: The model directory (model.joblib + metadata.json), e.g. fetch_champion's output;
            leave unset to score with model_uri.
        model_uri: The registry version (gs://.../NAME/VERSION or a folder) to score with when no
            model artifact is given; with one, its registry URI (fetch_champion's Output).
        model_registry: The registry root holding the champion pointer (gs://bucket/models or a
            folder), to recognise the champion.
        model_name: The model's name in the registry, also written in every row.
        output_uri: Where the shards go: a gs:// prefix or a local folder; empty: the predictions
            artifact itself.
        id_column: A column of the dataset to write instead of the model's input features (an
            order or customer id); empty: the input features.
        force: Score with a version the blessing gate did not bless.
        batch_rows: Rows read, predicted and written at a time; one shard per batch.

    Returns:
        engine: Where the parts are scored: "local" (this task's process), "dask" (a Dask cluster
            started for the task: a LocalCluster of worker processes, or on Kubernetes a
            DaskCluster of the settings file; its workers write the shards) or the tcp:// address
            of a running Dask scheduler. The predictions are the same on every engine.
        predictions: The shards (when output_uri is empty), or shards.json listing the shards
            written under output_uri; metadata: rows, shards, output_uri, model_version, blessing.
        summary: Markdown: rows, batches, the model version and why it was accepted, the output,
            the predicted classes' counts.
        metrics: rows, shards, rows_per_second, forced (0/1).
        rows: Rows scored.
        shards: Shards written.
        model_version: The version that scored them (as written in the rows).
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    import json
    import os
    import tempfile
    from collections import namedtuple

    from mlstages.components.batch_predict.batch_predict import (
        BatchPredictConfig,
        open_dataset,
        render_markdown,
        require_blessed,
    )
    from mlstages.components.batch_predict.batch_predict import batch_predict as score
    from mlstages.components.common import registry, storage
    from mlstages.components.common.engine import open_engine
    from mlstages.components.common.errors import ParameterError
    from mlstages.components.serving.log_format import model_version_of
    from mlstages.components.serving.model_dir import load_model_dir

    config = BatchPredictConfig(
        output_uri=output_uri, id_column=id_column, force=force, batch_rows=batch_rows, engine=engine
    )
    parquet = open_dataset(dataset.path)
    with tempfile.TemporaryDirectory(prefix="mlstages-batch-") as scratch:
        if model is not None:
            model_dir = model.path
            # Upstream metadata is not read (on a cluster its numbers come back as doubles): the
            # pipeline passes fetch_champion's Output as model_uri.
            model_uri = model_uri or model.uri
        elif not model_uri.strip():
            raise ParameterError("give a model: the model input (fetch_champion's) or parameter model_uri")
        elif storage.is_gcs_uri(model_uri):
            model_dir = os.path.join(scratch, "model")
            registry.download_version(model_uri, model_dir)
        else:
            model_dir = str(storage.to_local_path(model_uri))
        fitted, card = load_model_dir(model_dir)
        blessing = require_blessed(
            model_dir, model_uri, card, model_registry=model_registry, model_name=model_name, force=force
        )
        with open_engine(config.engine, locations={dataset.path: dataset.uri}) as running:
            # Workers on other pods cannot write into this pod's output folder: they write to its URI.
            target = output_uri.strip() or (
                predictions.uri
                if running.locations and storage.is_gcs_uri(predictions.uri)
                else predictions.path
            )
            result = score(
                parquet,
                fitted,
                card,
                config,
                output_uri=target,
                model_name=model_name,
                model_version=model_version_of(model_uri, card),
                blessing=blessing,
                engine=running,
            )
    if target != predictions.path:
        os.makedirs(predictions.path, exist_ok=True)
        with open(os.path.join(predictions.path, "shards.json"), "w", encoding="utf-8") as handle:
            json.dump({"output_uri": target, "shards": result.shards}, handle, indent=2)
    predictions.metadata.update(
        {
            "rows": result.rows,
            "shards": len(result.shards),
            "output_uri": target,
            "model_uri": model_uri,
            "model_version": result.model_version,
            "blessing": result.blessing,
            "format": "prediction_log",
        }
    )
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(render_markdown(result))
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)

    outputs = namedtuple("Outputs", ["rows", "shards", "model_version"])
    return outputs(result.rows, len(result.shards), result.model_version)
