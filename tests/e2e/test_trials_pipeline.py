"""The training pipeline with the search across pods (settings `trials: {across_pods: true}`)
end to end through kfp.local, beside the default pipeline on the same data and parameters: the
same model, with one search_family task per family."""

from __future__ import annotations

import pytest
from kfp_launcher_rules import assert_cluster_safe

from mlstages.tooling import local
from mlstages.tooling.platform import parse_settings

pytestmark = pytest.mark.e2e

SETTINGS = {"trials": {"across_pods": True, "parallelism": 2}}
# Every family, a small search: the wiring is what is checked.
PARAMS = [
    "cv_folds=3",
    "n_iter=4",
    "search_space={random_forest: {n_estimators: [10, 20], max_depth: [4, 8]}, "
    "gradient_boosting: {max_iter: [20, 40], learning_rate: [0.1, 0.3]}}",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    params = local.load_params(local.catalog.builtin_params_path("training"), PARAMS)
    in_pod = local.run_pipeline(
        "training", params, workdir=tmp_path_factory.mktemp("in-pod"), progress=lambda _: None
    )
    across = local.run_pipeline(
        "training",
        params,
        workdir=tmp_path_factory.mktemp("across"),
        progress=lambda _: None,
        settings=parse_settings(SETTINGS),
    )
    return in_pod, across


def test_the_search_across_pods_trains_the_in_pod_model(runs):
    in_pod, across = runs
    names = [t.name for t in across.tasks]
    branches = [n for n in names if n.endswith("/search-family")]
    assert len(branches) == 3 and "plan-trials" in names, names
    assert not [n for n in [t.name for t in in_pod.tasks] if "search-family" in n]

    mine, theirs = across.task("train"), in_pod.task("train")
    for key in ("best_family", "best_params", "cv_score", "sha256"):
        assert mine.artifacts["model"]["metadata"][key] == theirs.artifacts["model"]["metadata"][key], key
    assert (
        across.task("evaluate").artifacts["metrics"]["metadata"]
        == (in_pod.task("evaluate").artifacts["metrics"]["metadata"])
    )
    assert_cluster_safe(across.run_dir)
