"""KFP component that builds retraining data from a window of new data. The logic lives in
training_data.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("training_data"), install_kfp_package=False)
def training_data(
    window: Input[Dataset],
    summary: Output[Markdown],
    data_uri: str,
    label_column: str,
    model_registry: str,
    model_name: str,
    window_policy: str = "append",
    max_windows: int = 3,
    sql_query: str = "",
) -> NamedTuple("Outputs", [("data_uri", str), ("rows", int)]):
    """Builds the data a retraining learns from: the labelled rows of a window of new data, under
    a window policy, published to the registry as an immutable Parquet file for the training
    pipeline to ingest.

    append (the default) adds the window's labelled rows to the original data; sliding trains on
    the newest max_windows labelled windows (earlier ones from the registry's window archive);
    window trains on this window alone. Every labelled window is archived under
    <registry>/<model>/windows/, the assembled data goes to <registry>/<model>/training-data/, and
    the file records each part (role, URI, rows, content hash) for the model card's lineage. A
    window without labels: append retrains on the original data and says so; the others fail.

    Args:
        window: The ingested window of new data (Parquet).
        data_uri: The original training data, read for window_policy=append.
        label_column: The label; rows without it are not learned from.
        model_registry: The registry root (gs://bucket/models or a folder).
        model_name: The model's name in the registry.
        window_policy: append, sliding or window.
        max_windows: How many of the newest labelled windows sliding trains on.
        sql_query: The query that reads data_uri when it is a database URL.

    Returns:
        summary: The policy, each part with its rows, and where the assembled data went.
        data_uri: The assembled training data's URI.
        rows: Its row count.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    import dataclasses
    import datetime as dt
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from mlstages.components.common import storage
    from mlstages.components.common.dataset_files import read_lineage
    from mlstages.components.common.errors import ParameterError
    from mlstages.components.common.registry import check_model_name
    from mlstages.components.ingest.ingest import IngestConfig, display_uri
    from mlstages.components.training_data.streaming import (
        assemble_rows,
        ingest_part,
        labelled_window,
        single_file,
    )
    from mlstages.components.training_data.training_data import (
        APPEND,
        SLIDING,
        TRAINING_DATA_FOLDER,
        WINDOWS_FOLDER,
        TrainingDataConfig,
        choose_parts,
        lineage_parts,
        render_markdown,
        repeated_note,
    )

    config = TrainingDataConfig(
        data_uri=data_uri, label_column=label_column, window_policy=window_policy, max_windows=max_windows
    )
    check_model_name(model_name)
    if not model_registry.strip():
        raise ParameterError("parameter model_registry is empty: windows and training data are kept there")
    prefix = f"{model_registry.rstrip('/')}/{model_name}"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")

    window_sources = read_lineage(window.path).get("sources") or []
    window_uri = window_sources[0]["uri"] if window_sources else window.uri

    # Every part goes through local disk a chunk at a time: none is held whole in memory.
    with tempfile.TemporaryDirectory(prefix="mlstages-training-data-") as scratch_name:
        scratch = Path(scratch_name)
        current = labelled_window(
            Path(window.path),
            label_column,
            scratch / "window",
            window_uri,
            lineage={"sources": window_sources},
        )
        if current.rows:
            archived_uri = f"{prefix}/{WINDOWS_FOLDER}/{stamp}-{current.content_hash[:8]}.parquet"
            storage.upload_file(single_file(current.path), archived_uri, if_absent=True)
            current = dataclasses.replace(current, uri=archived_uri)

        earlier = []
        if config.window_policy == SLIDING and config.max_windows > 1:
            names = sorted(u for u in storage.list_uris(f"{prefix}/{WINDOWS_FOLDER}/") if u != current.uri)
            for index, uri in enumerate(names[-(config.max_windows - 1) :]):
                local = scratch / f"earlier-{index}.parquet"
                storage.download_file(uri, local)
                earlier.append(
                    ingest_part(
                        IngestConfig(source_uri=str(local)),
                        scratch / f"earlier-{index}",
                        "earlier window",
                        uri,
                    )
                )
        base = None
        if config.window_policy == APPEND:
            base = ingest_part(
                IngestConfig(source_uri=data_uri, sql_query=sql_query),
                scratch / "original",
                "original data",
                display_uri(data_uri),
            )

        parts, notes = choose_parts(config, current, base, earlier)
        assembled = assemble_rows(parts, scratch / "assembled", lineage={"sources": lineage_parts(parts)})
        if assembled.repeated:
            notes.append(repeated_note(assembled.repeated))
        target = f"{prefix}/{TRAINING_DATA_FOLDER}/{stamp}-{assembled.content_hash[:8]}.parquet"
        storage.upload_file(assembled.file, target, if_absent=True)

    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(render_markdown(config, parts, assembled.rows, target, notes))
    return namedtuple("Outputs", ["data_uri", "rows"])(target, assembled.rows)
