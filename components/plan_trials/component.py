"""The plan_trials component: the model families the search runs across pods, one trial branch
(search_family) each. The logic is in plan_trials.py beside it."""

from kfp import dsl

from mlstages.components.common.images import image


# A task rather than a compile-time list: the families depend on the task, which preprocess
# decides at run time (task='auto'), and the budget's origin is when the trials start.
@dsl.component(base_image=image("plan_trials"), install_kfp_package=False)
def plan_trials(
    label_column: str,
    task: str,
    model_families: list = [],
    time_budget_seconds: float = 0.0,
) -> list:
    """Lists the model families to search across pods, one dsl.ParallelFor branch each.

    The families are model_families, or every family of the task, in search order (cheapest
    first, so that a ParallelFor parallelism below the number of families queues the slowest).
    Each item also carries when the trials started: the time budget's origin for every branch (0
    without a budget). It reads the clock: run it with caching off.

    Args:
        label_column: The column to predict (checked here, before any branch starts).
        task: classification or regression.
        model_families: Families to search; empty for every family of the task.
        time_budget_seconds: 0 for no limit; otherwise a branch queued behind the parallelism
            limit does not start its search after this many seconds from now.

    Returns:
        Output: [{"family": name, "learning_task": task, "trials_started": UNIX time or 0}],
            one per branch.
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    from mlstages.components.plan_trials.plan_trials import plan_trials as plan
    from mlstages.components.train.config import TrainConfig

    config = TrainConfig.from_parameters(locals())
    return plan(config)
