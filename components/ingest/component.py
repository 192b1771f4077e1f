"""KFP component for the ingestion stage. The logic lives in ingest.py."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("ingest"), install_kfp_package=False)
def ingest(
    source_uri: str,
    dataset: Output[Dataset],
    summary: Output[Markdown],
    source_format: str = "auto",
    delimiter: str = "",
    encoding: str = "utf-8",
    sql_query: str = "",
    snapshot: str = "",
    max_columns: int = 10000,
    max_cell_length: int = 1048576,
    max_line_length: int = 16777216,
):
    """Reads CSV, TSV, Parquet or JSON Lines from a local path, http(s):// URL, gs:// object or
    prefix of shards, or an SQL query on an SQLAlchemy database URL, into one Parquet dataset.

    The source is read a chunk at a time (Parquet by row group, text files and query results by
    chunks of rows) and written as a folder of Parquet part files, so memory stays at a few
    chunks whatever the source's size; the column types are those a read of the whole source
    would give. The dataset's metadata records the row count, the parts and their bytes, the
    column types, a content hash and the source (with any password removed). Sources that change under the same URI (HTTP, databases, a moving
    gs:// prefix) should run with caching off, or with ``snapshot`` set to a value that changes
    when the data does, such as a date.

    Args:
        source_uri: Path or URI to read: a local path, file://, http(s)://, gs://bucket/object,
            gs://bucket/prefix/ (every object under it, read as shards of one dataset), or a
            database URL such as sqlite:///data.db.
        source_format: csv, tsv, parquet, jsonl, or auto to tell from the file extension.
        delimiter: CSV field separator; empty for the format's default.
        encoding: Text encoding of CSV and JSON Lines files.
        sql_query: Query to run when source_uri is a database URL.
        snapshot: Free text that only changes the cache key, so a new snapshot of a moving source
            is read again while the same snapshot is served from the cache.
        max_columns: A CSV/TSV header with more columns is refused before it is parsed (pandas'
            header parsing grows with the square of the columns).
        max_cell_length: A CSV/TSV value longer than this many characters is refused, naming the
            line.
        max_line_length: A CSV/TSV line longer than this many characters is refused before it is
            read whole.

    Returns:
        dataset: The data as a folder of Parquet part files with a manifest.
        summary: What was read: rows, parts and bytes, columns and their types, source and
            content hash.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    from mlstages.components.common.artifact_metadata import within_budget
    from mlstages.components.ingest.ingest import IngestConfig, ingest_dataset, ingest_summary

    config = IngestConfig(
        source_uri=source_uri,
        source_format=source_format,
        delimiter=delimiter,
        encoding=encoding,
        sql_query=sql_query,
        max_columns=max_columns,
        max_cell_length=max_cell_length,
        max_line_length=max_line_length,
    )
    # The dataset's lineage names the source with its rows and content hash (and, for assembled
    # retraining data, the parts it holds); nothing is left at dataset.path on an error.
    metadata = ingest_dataset(config, dataset.path, snapshot=snapshot)
    # The per-column maps grow with the table; past the budget they stay in the Parquet schema only.
    dataset.metadata.update(within_budget(metadata))
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(ingest_summary(metadata))
