"""KFP component for the preprocessing stage. The logic lives in preprocess.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("preprocess"), install_kfp_package=False)
def preprocess(
    dataset: Input[Dataset],
    train: Output[Dataset],
    test: Output[Dataset],
    transformer: Output[Model],
    summary: Output[Markdown],
    label_column: str,
    task: str = "auto",
    test_size: float = 0.2,
    seed: int = 42,
    split: str = "stratified",
    time_column: str = "",
    drop_columns: list = [],
    numeric_imputation: str = "median",
    categorical_imputation: str = "most_frequent",
    fill_value_numeric: float = 0.0,
    fill_value_categorical: str = "missing",
    encoding: str = "onehot",
    max_categories: int = 50,
    outliers: str = "iqr",
    outlier_factor: float = 0.0,
    scaling: str = "standard",
    text_columns: list = [],
    add_missing_indicators: bool = True,
    unlabelled_rows: str = "drop",
    column_types: dict = {},
    exclude_id_columns: bool = True,
    max_fit_rows: int = 0,
) -> NamedTuple("Outputs", [("task", str)]):
    """Splits a dataset into train and test rows, then fits a preprocessing
    transformer (imputation, encoding, outlier clipping, scaling, TF-IDF) on the train split only.

    The split comes before anything is fitted, so no statistic of test rows leaks into the model.
    There is no validation split: train selects its model by cross-validation on the train rows.
    Both split datasets hold RAW rows with every column (label included):
    the transformer is applied later, inside the exported model, so the served model takes raw
    rows. Datetime columns are not transformer features (engineer_features' date_parts derives
    from them); columns with no value in the train split are dropped, and the summary says so.

    Args:
        dataset: The raw data, a Parquet dataset (e.g. from ingest).
        label_column: The column to predict.
        task: auto, classification or regression. auto reads a non-numeric or boolean label, or a
            whole-number label with at most 20 distinct values, as classification.
        test_size: Share of the rows for the test split, in (0, 1).
        seed: Seed of the split (each row's split is a hash of its position and the seed: the
            same rows whatever the shards) and of the fitting sample.
        split: stratified (class shares kept in every split to within one row per class, every
            class in each; regression falls back to random), random, or time (ordered by
            time_column: oldest rows train, newest test).
        time_column: The column that orders rows for split=time.
        drop_columns: Columns that are not features (IDs, leaks); they stay in the split datasets.
        numeric_imputation: mean, median, most_frequent or constant (fill_value_numeric).
        categorical_imputation: most_frequent or constant (fill_value_categorical).
        fill_value_numeric: The value for numeric_imputation=constant.
        fill_value_categorical: The value for categorical_imputation=constant.
        encoding: onehot (unknown categories become all zeros) or ordinal (unknown become -1).
        max_categories: Categories kept per column, the rest merged as infrequent; 0 keeps all.
        outliers: none, iqr or zscore clipping of numeric columns, with bounds fitted on train.
        outlier_factor: The IQR or z-score multiple; 0 uses the method's default (1.5 for iqr,
            3 for zscore).
        scaling: standard, minmax, robust or none, for numeric columns.
        text_columns: Columns to TF-IDF (200 terms each); empty TF-IDFs every column detected as
            free text.
        add_missing_indicators: Add a 0/1 feature per column with missing values in train.
        unlabelled_rows: drop (rows whose label is missing are dropped before the split, and the
            summary and metadata say how many) or fail.
        column_types: Column name to numeric, categorical, boolean, datetime, text or ignore,
            overriding the type read from the data, inside the fitted transformer: numeric parses
            numbers written as text ("3,750", "$1,200.50", "12%"; the rest is missing), boolean
            parses true/false, yes/no, 1/0; ignore leaves the column out of the features.
        exclude_id_columns: Leave out of the features every column with a distinct, key-like value
            in each train row (an identifier); the summary names them. A column named in
            column_types is kept.
        max_fit_rows: The transformer is fitted on a seeded sample of this many train rows when
            the train split has more (every row is still split); 0 takes what the task's memory
            allowance affords ($MLSTAGES_MEMORY_MB or the pod's limit, else 4 GiB), at most
            200,000 rows: a transformer's statistics are settled long before.

    Returns:
        train: Raw rows of the train split, in dataset order (a folder of Parquet parts).
        test: Raw rows of the test split, in dataset order (a folder of Parquet parts).
        transformer: The fitted preprocessing transformer (transformer.joblib, a scikit-learn
            ColumnTransformer with pandas output) and metadata.json (input columns and types,
            output feature names, column plan, config, library versions, sha256).
        summary: Rows per split, class balance, and what happened to each column.
        task: The task in use, classification or regression.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    from collections import namedtuple

    from mlstages.components.common.artifact_metadata import within_budget
    from mlstages.components.common.artifacts import save_estimator
    from mlstages.components.common.dataset_files import read_lineage, streamed_source_lineage
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocessor_metadata, render_markdown
    from mlstages.components.preprocess.stream import preprocess_dataset

    config = PreprocessConfig(
        label_column=label_column,
        task=task,
        test_size=test_size,
        seed=seed,
        split=split,
        time_column=time_column,
        drop_columns=tuple(drop_columns or ()),
        numeric_imputation=numeric_imputation,
        categorical_imputation=categorical_imputation,
        fill_value_numeric=fill_value_numeric,
        fill_value_categorical=fill_value_categorical,
        encoding=encoding,
        max_categories=max_categories,
        outliers=outliers,
        outlier_factor=outlier_factor or None,
        scaling=scaling,
        text_columns=tuple(text_columns or ()),
        add_missing_indicators=add_missing_indicators,
        unlabelled_rows=unlabelled_rows,
        column_types=column_types,
        exclude_id_columns=exclude_id_columns,
        max_fit_rows=max_fit_rows,
    )
    # Where the rows came from travels in the split files, for the model card's lineage.
    sources = read_lineage(dataset.path).get("sources") or [
        streamed_source_lineage(dataset.path, dataset.uri)
    ]
    # Everything is checked and fitted before the first output is written; the splits are then
    # streamed to their folders, so the dataset is never held whole.
    result, written_splits = preprocess_dataset(
        dataset.path,
        config,
        {"train": train.path, "test": test.path},
        source=dataset.uri,
        lineage={"sources": sources},
    )

    for name, artifact in (("train", train), ("test", test)):
        metadata = written_splits[name]
        metadata.update(
            {
                "split": name,
                "split_method": result.split_method,
                "label_column": label_column,
                "task": result.task,
            }
        )
        artifact.metadata.update(within_budget(metadata))
    written = save_estimator(
        result.preprocessor, transformer.path, "transformer", preprocessor_metadata(result)
    )
    transformer.metadata.update(
        within_budget(
            {
                "stage": "preprocess",
                "label_column": label_column,
                "task": result.task,
                "input_columns": written["input_columns"],
                "feature_count": len(written["feature_names"]),
                "file": written["file"],
                "sha256": written["sha256"],
                "scikit-learn": written["versions"]["scikit-learn"],
            }
        )
    )
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(render_markdown(result))
    return namedtuple("Outputs", ["task"])(result.task)
