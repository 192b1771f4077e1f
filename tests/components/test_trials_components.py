"""The search across pods through kfp.local: plan_trials, a dsl.ParallelFor of search_family
tasks (each its own process, up to two at once) and train given their outcomes with
dsl.Collected, beside train searching in its own task, on the Palmer penguins."""

import json
from pathlib import Path
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Model
from kfp_helpers import prepare_penguins

from mlstages.components.plan_trials.component import plan_trials
from mlstages.components.search_family.component import search_family
from mlstages.components.train.component import train

FAMILIES = ["logistic_regression", "random_forest", "gradient_boosting"]
SEARCH = {
    "label_column": "species",
    "model_families": FAMILIES,
    "n_iter": 4,
    "cv_folds": 3,
    "seed": 3,
    "search_space": {
        "random_forest": {"n_estimators": [10, 20], "max_depth": [4, 8]},
        "gradient_boosting": {"max_iter": [20, 40], "learning_rate": [0.1, 0.3]},
    },
}


class Outputs(NamedTuple):
    in_pod: Model
    across_pods: Model
    summary: Markdown


@dsl.pipeline
def both_ways() -> Outputs:
    prepared = prepare_penguins(label_column="species")
    plan = plan_trials(
        task="classification", **{k: v for k, v in SEARCH.items() if k in ("label_column", "model_families")}
    )
    with dsl.ParallelFor(plan.output, parallelism=2) as item:
        branch = search_family(
            train=prepared.outputs["train_split"],
            features=prepared.outputs["features"],
            family=item.family,
            trials_started=item.trials_started,
            task="classification",
            **SEARCH,
        )
    across = train(
        train=prepared.outputs["train_split"],
        features=prepared.outputs["features"],
        task="classification",
        trials=dsl.Collected(branch.outputs["outcome"]),
        **SEARCH,
    )
    in_pod = train(
        train=prepared.outputs["train_split"],
        features=prepared.outputs["features"],
        task="classification",
        **SEARCH,
    )
    return Outputs(
        in_pod=in_pod.outputs["model"],
        across_pods=across.outputs["model"],
        summary=across.outputs["summary"],
    )


def test_train_given_the_branches_outcomes_chooses_the_in_pod_winner(kfp_local):
    run = both_ways()
    in_pod, across = run.outputs["in_pod"].metadata, run.outputs["across_pods"].metadata
    for key in ("best_family", "best_params", "cv_score"):
        assert across[key] == in_pod[key], key
    assert across["sha256"] == in_pod["sha256"]  # the same refit model, byte for byte

    # Every branch ran in its own task and wrote its outcome folder.
    root = kfp_local / "root"
    outcomes = sorted(root.rglob("outcome.json"))
    assert sorted(json.loads(p.read_text())["family"] for p in outcomes) == sorted(FAMILIES)
    assert all((p.parent / "candidates.parquet").exists() for p in outcomes)
    summary = Path(run.outputs["summary"].path).read_text()
    assert summary.startswith("# Train") and "searched across pods (3 search_family tasks)" in summary
