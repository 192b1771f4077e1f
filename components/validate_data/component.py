"""KFP component for the data validation stage. The logic lives in the modules beside it;
validate_data.py runs them."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("validate_data"), install_kfp_package=False)
def validate_data(
    dataset: Input[Dataset],
    statistics: Output[Artifact],
    schema: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
    label_column: str = "",
    policy: str = "fail",
    max_missing_share: float = 0.5,
    max_duplicate_share: float = 0.05,
    range_tolerance: float = 0.1,
    check_outliers: bool = True,
    max_outlier_share: float = 0.05,
    max_domain_size: int = 100,
    unlabelled_rows: str = "drop",
    column_types: dict = {},
    engine: str = "local",
    input_schema: Input[Artifact] = None,
) -> NamedTuple("Outputs", [("passed", bool), ("anomaly_count", int)]):
    """Computes statistics of a dataset, infers a schema or checks the data against a given one,
    and fails or warns on anomalies: missing or unexpected columns, wrong types, values outside a
    numeric range or a category domain, too many missing values, entirely missing or constant
    columns, duplicate rows, IQR outliers, and a label that is absent, has missing values or has a
    single class.

    The dataset is read a batch at a time, so its size is not limited by the task's memory: counts,
    missing values, minimum, maximum, mean and standard deviation are exact at any size; quantiles,
    histograms, outlier and distinct counts, top values and duplicate rows are exact up to about a
    million values a column (duplicates: tens of millions of rows) and estimates beyond, the
    statistics saying which and within what error. A table too wide for that within a quarter of
    the task's memory allowance keeps fewer values a column exactly (150 columns at 4 GiB: about
    300,000). The checks of a column's guessed type read a seeded sample of 100,000 rows, fewer
    when a tenth of the allowance cannot hold them three times over.

    With policy "fail", any error-severity anomaly fails the task with every error listed in the
    message, and no output is written. With policy "warn", the outputs are written, ``passed`` is
    False and the anomalies are in the report, the summary and the statistics' metadata.

    Args:
        dataset: The data to validate (Parquet, as written by ingest).
        label_column: The label column; empty for unlabeled data, in which case the label column
            of a given schema may be absent.
        policy: "fail" to fail the task on any error, "warn" to report errors and continue.
        max_missing_share: A column with a larger share of missing values is an error.
        max_duplicate_share: A larger share of rows that repeat an earlier row is an error.
        range_tolerance: Numeric values may lie outside the schema's range by this fraction of the
            range (0.1 = 10%).
        check_outliers: Warn about numeric columns with many IQR-rule outliers.
        max_outlier_share: The share of outliers above which check_outliers warns.
        max_domain_size: An inferred schema lists the categories of columns with at most this many
            distinct values; columns with more get no category check.
        unlabelled_rows: drop (rows without a label are a warning: preprocess drops them) or fail
            (an error). A label missing in every row is an error either way.
        column_types: Column name to numeric, categorical, boolean, datetime, text or ignore, as
            preprocess reads it: the data is validated as declared (numbers written as text
            parsed), a declared column gets no doubtful-type warning, and ignore skips the column.
        engine: Where the statistics pass runs: "local" (this task's process), "dask" (a Dask
            cluster started for the task: a LocalCluster of worker processes, or on Kubernetes a
            DaskCluster of the settings file) or the tcp:// address of a running Dask scheduler.
            The statistics are the same on every engine.
        input_schema: A schema to check against (JSON, as written to the schema output of an
            earlier run, possibly edited). Without it a schema is inferred from the data.

    Returns:
        statistics: Per-column statistics as JSON; its metadata holds the counts and anomalies.
        schema: The schema the data was checked against (the given one, or the inferred one), as
            JSON that can be edited and passed back as input_schema.
        report: HTML report: decision, anomalies, column statistics and histograms.
        summary: Markdown summary: decision, anomalies and a per-column table.
        passed: False when any error-severity anomaly was found.
        anomaly_count: The number of anomalies (errors and warnings).
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    import json
    from collections import namedtuple

    from mlstages.components.common.artifact_metadata import within_budget
    from mlstages.components.common.engine import open_engine
    from mlstages.components.validate_data.config import ValidationConfig
    from mlstages.components.validate_data.report import render_html, render_markdown
    from mlstages.components.validate_data.schema import load_schema
    from mlstages.components.validate_data.validate_data import raise_for_anomalies, validate_dataset

    config = ValidationConfig(
        label_column=label_column,
        policy=policy,
        max_missing_share=max_missing_share,
        max_duplicate_share=max_duplicate_share,
        range_tolerance=range_tolerance,
        check_outliers=check_outliers,
        max_outlier_share=max_outlier_share,
        max_domain_size=max_domain_size,
        unlabelled_rows=unlabelled_rows,
        column_types=column_types,
        engine=engine,
    )
    given_schema = load_schema(input_schema.path) if input_schema is not None else None
    with open_engine(config.engine, locations={dataset.path: dataset.uri}) as running:
        result = validate_dataset(dataset.path, config, schema=given_schema, engine=running)
    # Fail before writing anything. KFP does not upload the outputs of a failed task, so a report
    # written now would never reach the UI: the exception text lists every error instead, and
    # policy="warn" gives the full report.
    raise_for_anomalies(result)

    # Render and serialize everything before the first write, so an error leaves no partial outputs.
    documents = {
        statistics.path: json.dumps(result.statistics, indent=2, allow_nan=False),
        schema.path: json.dumps(result.schema, indent=2, allow_nan=False),
        report.path: render_html(result, title="Data validation"),
        summary.path: render_markdown(result),
    }
    for path, text in documents.items():
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    counts = result.summary_metadata()
    anomalies = [a.to_dict() for a in result.anomalies]
    # One anomaly per column at most, but a wide table has many: past the budget, the report has them.
    statistics.metadata.update(within_budget({**counts, "anomalies": anomalies}))
    schema.metadata.update(counts)
    schema.metadata["version"] = result.schema["version"]
    schema.metadata["label"] = result.schema.get("label") or {}

    outputs = namedtuple("Outputs", ["passed", "anomaly_count"])
    return outputs(result.passed, len(result.anomalies))
