"""The training pipeline's shape with and without the search across pods (settings file
`trials`), read from the compiled YAML: what a cluster runs."""

from __future__ import annotations

import pytest
import yaml

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog, compile
from mlstages.tooling.platform import TrialsSettings, parse_settings


def _spec(text: str) -> dict:
    return next(yaml.safe_load_all(text))


def _executors(spec: dict) -> set[str]:
    return set(spec["deploymentSpec"]["executors"])


def test_the_default_pipeline_searches_in_the_train_task():
    spec = _spec(catalog.pipeline_yaml_path("training").read_text(encoding="utf-8"))
    assert not {"exec-plan-trials", "exec-search-family"} & _executors(spec)
    assert not any("parameterIterator" in t for t in spec["root"]["dag"]["tasks"].values())
    assert "trials" not in spec["root"]["dag"]["tasks"]["train"]["inputs"].get("artifacts", {})
    assert parse_settings({}).trials == TrialsSettings(across_pods=False, parallelism=0)


@pytest.mark.parametrize("parallelism", [2, 0])
def test_across_pods_the_search_is_a_parallel_for_of_search_family_collected_by_train(parallelism):
    settings = parse_settings(
        {"defaults": {"caching": True}, "trials": {"across_pods": True, "parallelism": parallelism}}
    )
    spec = _spec(compile.pipeline_yaml("training", settings))
    tasks = spec["root"]["dag"]["tasks"]

    plan = tasks["plan-trials"]
    assert plan["inputs"]["parameters"]["task"]["taskOutputParameter"]["producerTask"] == "preprocess"
    # It reads the clock: never cached, even with caching on for every task.
    assert not plan.get("cachingOptions", {}).get("enableCache")

    [loop_name] = [name for name, task in tasks.items() if "parameterIterator" in task]
    loop = tasks[loop_name]
    assert loop["taskInfo"]["name"] == "trials"
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("plan-trials-Output")
    assert loop.get("iteratorPolicy", {}).get("parallelismLimit", 0) == parallelism
    branch = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]["search-family"]
    assert branch["componentRef"]["name"] == "comp-search-family"
    selectors = {
        name: value.get("parameterExpressionSelector")
        for name, value in branch["inputs"]["parameters"].items()
    }
    assert selectors["family"] == 'parseJson(string_value)["family"]'
    assert selectors["trials_started"] == 'parseJson(string_value)["trials_started"]'
    assert selectors["task"] == 'parseJson(string_value)["learning_task"]'
    # Every search setting reaches the branch from the same pipeline parameter as train's.
    for name in ("model_families", "search", "n_iter", "cv_folds", "scoring", "search_space", "seed"):
        assert name in branch["inputs"]["parameters"], name

    trials = tasks["train"]["inputs"]["artifacts"]["trials"]["taskOutputArtifact"]
    assert trials == {
        "outputArtifactKey": "pipelinechannel--search-family-outcome",
        "producerTask": loop_name,
    }
    assert {"exec-plan-trials", "exec-search-family", "exec-train"} <= _executors(spec)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trials": {"across_pods": "yes"}}, "trials.across_pods: expected true or false"),
        ({"trials": {"parallelism": -1}}, "trials.parallelism: expected a whole number"),
        ({"trials": {"chunks": 2}}, "trials: unknown key"),
        ({"trials": [1]}, "trials: expected a mapping"),
    ],
)
def test_bad_trials_settings_are_named(raw, message):
    with pytest.raises(ParameterError, match=message):
        parse_settings(raw)


def test_the_monitoring_pipelines_retraining_searches_across_pods_too():
    settings = parse_settings({"trials": {"across_pods": True, "parallelism": 2}})
    spec = _spec(compile.pipeline_yaml("monitoring", settings))
    assert {"exec-plan-trials", "exec-search-family"} <= _executors(spec)
    assert "exec-plan-trials" not in _executors(
        _spec(catalog.pipeline_yaml_path("monitoring").read_text(encoding="utf-8"))
    )
