"""KFP component for the feature-engineering stage. The logic lives in engineer_features.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("engineer_features"), install_kfp_package=False)
def engineer_features(
    train: Input[Dataset],
    transformer: Input[Model],
    features: Output[Model],
    report: Output[HTML],
    summary: Output[Markdown],
    label_column: str,
    task: str,
    derived_features: list = [],
    selection: str = "none",
    max_features: int = 0,
    variance_threshold: float = 0.0,
    seed: int = 42,
    max_fit_rows: int = 0,
) -> NamedTuple("Outputs", [("feature_count", int)]):
    """Adds derived features (ratios, logs, date parts, bins, interactions) to preprocess'
    transformer and selects features, all fitted on the train split only.

    The output is one fitted scikit-learn Pipeline that takes RAW rows and yields the selected
    features: the preprocess transformer (frozen, never refitted) side by side with the derived
    features (computed from raw values, imputed with the train median, scaled like the numeric
    columns), followed by the selection. The train stage puts its estimator after it, so the
    exported model takes raw rows.

    Args:
        train: The train split (raw rows) written by preprocess.
        transformer: The fitted transformer written by the same preprocess run.
        label_column: The label column (as given to preprocess).
        task: classification or regression (preprocess' task output).
        derived_features: Derived features, a list of dicts such as
            {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]}.
            Kinds: ratio (2 numeric columns), log (1 numeric column, log1p of the value minus the
            train minimum), date_parts (1 datetime or date-text column; optional "parts" from
            year, month, day, dayofweek, hour), bin (1 numeric column; optional "n_bins", default
            5, quantile bins), interaction (2+ numeric columns multiplied; "pairwise": true for
            every pair).
        selection: none, variance, mutual_info, chi2 (classification only) or l1.
        max_features: Keep at most this many features that pass the selection, best first;
            0 keeps all that pass.
        variance_threshold: Features with train variance at or below it are dropped by the
            variance selection.
        seed: Seed of mutual information's estimator and the L1 models, and of the fitting sample.
        max_fit_rows: The derived features and the selection are fitted on a seeded sample of this
            many train rows when the train split has more; 0 takes what the task's memory
            allowance affords ($MLSTAGES_MEMORY_MB or the pod's limit, else 4 GiB), at most
            200,000 rows.

    Returns:
        features: The fitted feature pipeline (features.joblib) and metadata.json (input columns
            and types, output feature names, config, library versions, sha256).
        report: Every candidate feature with its score, kept or dropped, and why.
        summary: What was derived and selected.
        feature_count: The number of features the pipeline outputs.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    from collections import namedtuple

    from mlstages.components.common.artifact_metadata import within_budget
    from mlstages.components.common.artifacts import load_estimator, read_metadata, save_estimator
    from mlstages.components.common.dataset_files import bytes_per_row, dataset_rows
    from mlstages.components.common.dataset_positions import sample_rows
    from mlstages.components.common.memory import fit_rows
    from mlstages.components.engineer_features.engineer_features import (
        FeatureConfig,
        check_matches_preprocess,
        feature_metadata,
        render_html,
        render_markdown,
    )
    from mlstages.components.engineer_features.engineer_features import (
        engineer_features as run_engineer_features,
    )

    config = FeatureConfig(
        label_column=label_column,
        task=task,
        derived=tuple(derived_features or ()),
        selection=selection,
        max_features=max_features,
        variance_threshold=variance_threshold,
        seed=seed,
        max_fit_rows=max_fit_rows,
    )
    transformer_metadata = read_metadata(transformer.path)
    check_matches_preprocess(config, transformer_metadata)
    preprocessor = load_estimator(transformer.path, "transformer")
    available = dataset_rows(train.path, what="train split")
    # The fit transforms the sample through the preprocessor and the derived features: several
    # copies of it (memory.fit_rows).
    held = fit_rows(bytes_per_row(train.path, what="train split"), config.max_fit_rows)
    train_df = sample_rows(train.path, held, seed, what="train split").reset_index(drop=True)
    # Everything is checked and fitted in memory before the first output is written.
    result = run_engineer_features(train_df, preprocessor, config)
    html_report = render_html(result)
    markdown_summary = render_markdown(result)
    if len(train_df) < available:
        markdown_summary += (
            f"\nFitted on a seeded sample of {len(train_df):,} of the {available:,} train rows "
            "(max_fit_rows).\n"
        )

    written = save_estimator(
        result.feature_pipeline,
        features.path,
        "features",
        # The preprocess settings travel on, for the model card's lineage.
        {
            **feature_metadata(result, train_df),
            "upstream": {"preprocess": transformer_metadata.get("config", {})},
        },
    )
    features.metadata.update(
        within_budget(
            {
                "stage": "engineer_features",
                "label_column": label_column,
                "task": task,
                "input_columns": written["input_columns"],
                "feature_names": written["feature_names"],
                "feature_count": len(written["feature_names"]),
                "selection": selection,
                "file": written["file"],
                "sha256": written["sha256"],
                "scikit-learn": written["versions"]["scikit-learn"],
            }
        )
    )
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(html_report)
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(markdown_summary)
    return namedtuple("Outputs", ["feature_count"])(len(result.feature_names))
