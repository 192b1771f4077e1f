"""The hyperparameter search across pods (issue 16, "Trials") beside the search in the train
task's own pod, on the same candidates: wall time on this machine's 2 cores.

Both paths run through kfp.local (SubprocessRunner: every task its own interpreter, as every
task is its own pod on a cluster), on the same prepared training rows and fitted feature
pipeline, with one search (every classification family, halving over n_iter=8 candidates, 3
folds, spaces smaller than the defaults: ``SEARCH``):

- ``in_pod``: one train task that scores the baselines, searches the three families one after
  another, and refits the winner (the default training pipeline's train step).
- ``across_pods``: plan_trials, a ``dsl.ParallelFor`` of three search_family tasks at
  ``parallelism=2`` (kfp.local runs at most 2 branches at once whatever the setting), then train
  given their outcomes (``dsl.Collected``): the baselines and the refit only.

Each task's threads are fixed with ``MLSTAGES_CPUS`` (1 or 2: a pod's CPU limit), so that the
load other users put on the machine does not change the thread count between runs. With 2
threads per task, two branches at once ask for 4 threads on 2 cores.

Every measurement is a fresh interpreter that runs one pipeline; the two paths alternate (which
one goes first flips every repeat), and the medians of the paired runs are reported, with the
median of the per-pair ratios. Every run must choose the same family, parameters and CV score:
the benchmark fails otherwise.

Usage:
    .venv/bin/python benchmarks/bench_trials.py                # 6,000 rows, 3 paired runs per cell
    .venv/bin/python benchmarks/bench_trials.py --repeats 5 --rows 20000
    .venv/bin/python benchmarks/bench_trials.py --quick        # 2,000 rows, 1 paired run, 1 thread

Writes benchmarks/results/trials.json and trials.md.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations as types.
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PATHS = ("in_pod", "across_pods")
PARALLELISM = 2
TASK = "classification"
FAMILIES = ["logistic_regression", "random_forest", "gradient_boosting"]
# Smaller than the default spaces (up to 300 trees on every feature), so that a paired run fits in
# minutes on a shared machine; every family still has a real halving search.
SEARCH = {
    "model_families": FAMILIES,
    "n_iter": 8,
    "cv_folds": 3,
    "search_space": {
        "random_forest": {"n_estimators": [50, 100], "max_depth": [10, 20], "max_features": ["sqrt", 0.3]},
        "gradient_boosting": {"max_iter": [50, 100], "learning_rate": [0.1, 0.2], "max_leaf_nodes": [15, 31]},
    },
}


def prepare(folder: Path, rows: int) -> dict[str, Any]:
    """The benchmark's training rows (bench_pipeline's synthetic table, preprocess' train split)
    and the suite's preprocessor fitted on them, written where the pipelines' first task copies
    them from."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic_data import LABEL_COLUMN, make_dataset

    from mlstages.components.common.artifacts import save_estimator
    from mlstages.components.common.dataset_files import write_dataset
    from mlstages.components.common.datasets import column_types
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess

    prepared = preprocess(make_dataset(rows), PreprocessConfig(label_column=LABEL_COLUMN, task=TASK))
    write_dataset(prepared.train, folder / "train")
    inputs = prepared.input_columns
    save_estimator(
        prepared.preprocessor,
        folder / "features",
        "features",
        {
            "input_columns": column_types(prepared.train[inputs]),
            "feature_names": list(prepared.feature_names),
        },
    )
    return {
        "rows": len(prepared.train),
        "columns": len(inputs),
        "features": len(prepared.feature_names),
        "label": LABEL_COLUMN,
    }


def child(path: str, folder: str, label: str) -> dict[str, Any]:
    """One pipeline run of ``path`` through kfp.local: its wall time and what train chose."""
    from kfp import dsl, local
    from kfp.dsl import Dataset, Model, Output

    from mlstages.components.plan_trials.component import plan_trials
    from mlstages.components.search_family.component import search_family
    from mlstages.components.train.component import train
    from mlstages.tooling.local import read_run

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def load_prepared(folder: str, train_split: Output[Dataset], features: Output[Model]):
        """The prepared rows and feature pipeline as artifacts (a copy: well under a second)."""
        import shutil

        shutil.copytree(f"{folder}/train", train_split.path)
        shutil.copytree(f"{folder}/features", features.path)

    search = {"label_column": label, **SEARCH}

    @dsl.pipeline
    def in_pod(folder: str) -> Model:
        loaded = load_prepared(folder=folder)
        return train(
            train=loaded.outputs["train_split"], features=loaded.outputs["features"], task=TASK, **search
        ).outputs["model"]

    @dsl.pipeline
    def across_pods(folder: str) -> Model:
        loaded = load_prepared(folder=folder)
        # The training pipeline's wiring (pipelines/training.py, search_trials).
        plan = plan_trials(task=TASK, label_column=label, model_families=FAMILIES)
        with dsl.ParallelFor(plan.output, parallelism=PARALLELISM) as item:
            branch = search_family(
                train=loaded.outputs["train_split"],
                features=loaded.outputs["features"],
                family=item.family,
                task=item.learning_task,
                trials_started=item.trials_started,
                **search,
            )
        return train(
            train=loaded.outputs["train_split"],
            features=loaded.outputs["features"],
            task=TASK,
            trials=dsl.Collected(branch.outputs["outcome"]),
            **search,
        ).outputs["model"]

    with tempfile.TemporaryDirectory(prefix="bench-trials-") as root:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
        started = time.perf_counter()
        run = {"in_pod": in_pod, "across_pods": across_pods}[path](folder=folder)
        wall = time.perf_counter() - started
        model = run.output.metadata
        [run_dir] = [p for p in Path(root).iterdir() if p.is_dir()]
        tasks = {t.name.rsplit("/", 1)[-1]: t for t in read_run(run_dir)}
        metrics = tasks["train"].artifacts["metrics"]["metadata"]
        outcomes = [json.loads(p.read_text()) for p in Path(root).rglob("outcome/outcome.json")]
        branches = {o["family"]: o["seconds"] for o in outcomes}
    return {
        "path": path,
        "wall_seconds": wall,
        "train_search_seconds": metrics.get("search_seconds"),
        "branch_search_seconds": branches,
        "best_family": model["best_family"],
        "best_params": model["best_params"],
        "cv_score": model["cv_score"],
    }


def measure(path: str, folder: Path, label: str, cpus: int) -> dict[str, Any]:
    env = dict(os.environ, MLSTAGES_CPUS=str(cpus))
    done = subprocess.run(
        [sys.executable, __file__, "--child", path, "--folder", str(folder), "--label", label],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{path} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def render(result: dict[str, Any]) -> str:
    meta, data = result["meta"], result["data"]
    lines = [
        "# Trials across pods beside the in-pod search (issue 16)",
        "",
        f"Measured {meta['when']} on {meta['platform']} ({meta['cpus']} CPUs, **shared**: other "
        "developers run heavy jobs on the same 2 cores, so wall times are noisy; quote the ratios "
        f"of this one run). {meta['repeats']} paired run(s) per row, each path a fresh interpreter "
        "running one pipeline through kfp.local (SubprocessRunner), the order alternating; medians.",
        "",
        f"Data: {data['rows']:,} training rows x {data['columns']} columns (preprocess' train split "
        f"of bench_pipeline's synthetic table, binary label), {data['features']} features after "
        "the suite's preprocessor. "
        "Search: logistic_regression, random_forest, gradient_boosting; halving over n_iter=8 "
        "candidates each, 3 folds, the spaces of `SEARCH` in the script; the same candidates "
        f"on both paths. across_pods: plan_trials + ParallelFor(search_family, parallelism="
        f"{PARALLELISM}) + train(trials=Collected).",
        "",
        "| threads per task | in_pod wall s | across_pods wall s | across / in_pod (median of pairs) "
        "| in_pod search s | branches' search s (lr, rf, gb) | same winner |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in result["cells"]:
        branches = cell["branch_search_seconds"]
        lines.append(
            f"| {cell['cpus']} | {cell['in_pod']:.1f} | {cell['across_pods']:.1f} | "
            f"{cell['ratio']:.2f} | {cell['in_pod_search']:.1f} | "
            f"{', '.join(f'{branches[f]:.1f}' for f in FAMILIES)} | {cell['same_winner']} |"
        )
    winner = result["winner"]
    lines += [
        "",
        f"Winner in every run: {winner['best_family']} {json.dumps(winner['best_params'], sort_keys=True)}, "
        f"CV f1_macro {winner['cv_score']:.6f}.",
        "",
        "Wall time is the pipeline's, from the call to its end: every task's interpreter and imports "
        "included (the across_pods path has 5 tasks to in_pod's 2). in_pod search s is train's "
        "`search_seconds` (baselines + the three families); branches' search s are each "
        "search_family's own search, which across pods overlap.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 1 paired run, 1 thread")
    parser.add_argument("--rows", type=int, default=6_000, help="rows generated (80% are trained on)")
    parser.add_argument("--repeats", type=int, default=3, help="paired runs per row (medians)")
    parser.add_argument("--cpus", type=int, action="append", help="threads per task (repeatable; 1 and 2)")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.label)))
        return 0

    rows = 2_000 if args.quick else args.rows
    repeats = 1 if args.quick else max(1, args.repeats)
    cpu_counts = [1] if args.quick else (args.cpus or [1, 2])
    cells, winners = [], []
    with tempfile.TemporaryDirectory(prefix="bench-trials-data-") as scratch:
        folder = Path(scratch)
        data = prepare(folder, rows)
        for cpus in cpu_counts:
            runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
            for repeat in range(repeats):
                for path in PATHS if repeat % 2 == 0 else PATHS[::-1]:
                    outcome = measure(path, folder, data["label"], cpus)
                    runs[path].append(outcome)
                    print(f"threads={cpus} {path}: {outcome['wall_seconds']:.1f} s", flush=True)
            everything = runs["in_pod"] + runs["across_pods"]
            winners += everything
            choices = {
                (r["best_family"], json.dumps(r["best_params"], sort_keys=True), r["cv_score"])
                for r in everything
            }
            ratios = [
                a["wall_seconds"] / i["wall_seconds"]
                for i, a in zip(runs["in_pod"], runs["across_pods"], strict=True)
            ]
            cells.append(
                {
                    "cpus": cpus,
                    "in_pod": statistics.median(r["wall_seconds"] for r in runs["in_pod"]),
                    "across_pods": statistics.median(r["wall_seconds"] for r in runs["across_pods"]),
                    "ratio": statistics.median(ratios),
                    "in_pod_search": statistics.median(r["train_search_seconds"] for r in runs["in_pod"]),
                    "branch_search_seconds": {
                        f: statistics.median(r["branch_search_seconds"][f] for r in runs["across_pods"])
                        for f in FAMILIES
                    },
                    "same_winner": "yes" if len(choices) == 1 else "NO",
                    "runs": runs,
                }
            )
    if (
        len(
            {(r["best_family"], json.dumps(r["best_params"], sort_keys=True), r["cv_score"]) for r in winners}
        )
        != 1
    ):
        print("FAIL: the paths chose different winners", file=sys.stderr)
    result = {
        "meta": {
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "repeats": repeats,
            "quick": args.quick,
            "parallelism": PARALLELISM,
        },
        "data": data,
        "winner": {k: winners[0][k] for k in ("best_family", "best_params", "cv_score")},
        "cells": cells,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "trials-quick" if args.quick else "trials"
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = render(result)
    (RESULTS_DIR / f"{name}.md").write_text(markdown)
    print(markdown)
    return 0 if all(c["same_winner"] == "yes" for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
