"""The search_family component: one trial branch of the search across pods, cross-validating one
model family. The logic is in search_family.py beside it, on the train stage's modules."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("search_family"), install_kfp_package=False)
def search_family(
    train: Input[Dataset],
    features: Input[Model],
    outcome: Output[Artifact],
    summary: Output[Markdown],
    family: str,
    trials_started: float,
    label_column: str,
    task: str,
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
):
    """Cross-validates one model family's candidates in its own pod: one branch of the search
    across pods (a dsl.ParallelFor over plan_trials' families), for train to choose from.

    The branch holds and transforms the training rows as train does and searches its family
    exactly as train's in-pod search would (the same rows, folds, candidates and seeds), so train
    given every branch's outcome (dsl.Collected) chooses the same winner with the same scores.
    The parameters are train's and must be given the same values.

    Args:
        train: The training split (Parquet) with the label column and the raw feature columns.
        features: The fitted feature pipeline from engineer_features.
        family: The model family this branch searches (plan_trials' item).
        trials_started: When the trials started (UNIX time; 0 without a time budget): a branch
            other than the first family in search order that starts time_budget_seconds after
            it does not search.
        label_column: The column to predict.
        task: classification or regression.
        model_families: The families of the whole search (train's); empty for every family.
        search: halving, random or grid (train's).
        n_iter: Candidates per family for halving and random search.
        time_budget_seconds: 0 for no limit (train's).
        cv_folds: Cross-validation folds, at least 2.
        scoring: A scikit-learn scorer name; empty for the task's default.
        search_space: Family to {parameter: [values]}, replacing that family's default space.
        seed: Seeds estimators, folds, random search and the search sample.
        max_search_rows: 0 to search on every row; otherwise a seeded sample of this many rows.
        max_train_rows: At most this many training rows are held; 0 sizes it from the task's
            memory allowance.

    Returns:
        outcome: The family's outcome, a folder: outcome.json (best score, best parameters,
            seconds, or why it was skipped) and candidates.parquet (every candidate's score).
        summary: The family, its candidates and its best one.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    from mlstages.components.search_family.search_family import outcome_markdown, run_trial
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.train import search_data
    from mlstages.components.train.training_rows import load_training_rows
    from mlstages.components.train.trials import save_outcome

    config = TrainConfig.from_parameters(locals())
    rows = load_training_rows(train.path, features.path, config)
    data = search_data(rows.matrix, rows.feature_pipeline, config)
    del rows
    result = run_trial(data, family, config, trials_started)
    save_outcome(result, outcome.path)
    outcome.metadata.update({"family": result.family, "skipped": result.skipped})
    if result.best_score is not None:  # a real launcher refuses null metadata
        outcome.metadata["best_score"] = result.best_score
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(outcome_markdown(result, config, len(data.search_index)))
