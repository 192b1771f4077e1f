"""Parameters a stage would refuse are refused before any task runs: one line naming the
parameter, exit 2, no run folder and nothing written (tooling/precheck.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import palmerpenguins
import pytest

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog, cli, local, precheck

pytestmark = pytest.mark.usefixtures("no_external_network")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """The penguins as CSV (classification on species) and as Parquet with a numeric label
    (regression on body_mass_g)."""
    folder = tmp_path_factory.mktemp("data")
    penguins = palmerpenguins.load_penguins()
    csv = folder / "penguins.csv"
    penguins.to_csv(csv, index=False)
    parquet = folder / "masses.parquet"
    penguins.dropna(subset=["body_mass_g"]).to_parquet(parquet, index=False)
    return {"csv": str(csv), "parquet": str(parquet)}


def run(workdir: Path, data: str, label: str, *sets: str) -> list[str]:
    args = ["run", "training", "--workdir", str(workdir), "--data", data, "--set", f"label_column={label}"]
    for item in sets:
        args += ["--set", item]
    return args


def assert_refused_before_any_task(code: int, err: str, workdir: Path, parameter: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mlstages: error: ") and parameter in lines[0], lines[0]
    # Nothing ran: no run folder, no embedded store, nothing at all in the workdir.
    assert not workdir.exists() or not any(workdir.iterdir())
    return lines[0]


# What a user may get wrong, the parameter the message must name first, and a part of the message.
CLASSIFICATION_CASES = [
    (["model_families=[linear_regression]"], "model_families", "for task 'classification'"),
    (["model_families=[svm]"], "model_families", "unknown family 'svm'"),
    (["thresholds=[0.9]"], "thresholds=[0.9]", "the pipeline takes a mapping"),
    (["thresholds={accuracy: 0.9}"], "thresholds['accuracy']", "must be a non-empty mapping"),
    (["thresholds={accuracy: {minimum: 0.9}}"], "thresholds['accuracy']", "unknown key 'minimum'"),
    (["thresholds={acc: {min: 0.9}}"], "thresholds", "unknown metric 'acc'"),
    (["thresholds={r2: {min: 0.5}}"], "thresholds", "unknown metric 'r2' for task 'classification'"),
    (["search_space={svm: {C: [1]}}"], "search_space", "unknown family 'svm'"),
    (["search_space={random_forest: {n_trees: [10]}}"], "search_space['random_forest']", "'n_trees'"),
    (["search_space={random_forest: {max_depth: [-3]}}"], "search_space['random_forest']['max_depth']", "-3"),
    (["slice_columns=[Island]"], "slice_columns", "column 'Island' is not in"),
    (["quality_floor=best"], "quality_floor='best'", "is not one of"),
    (["floor_tolerance=1.0"], "floor_tolerance=1.0", "[0, 1)"),
    (["floor_tolerance=-0.1"], "floor_tolerance=-0.1", "[0, 1)"),
    (["floor_confidence=1"], "floor_confidence=1.0", "[0, 1)"),
    (["time_budget_seconds=-5"], "time_budget_seconds=-5", "positive number of seconds"),
    (["search=bayes"], "search='bayes'", "'halving', 'random', 'grid'"),
    (["cv_folds=1"], "cv_folds=1", "at least 2"),
    (["validation_policy=ignore"], "validation_policy='ignore'", "'fail', 'warn'"),
    (["test_size=0"], "test_size=0.0", "strictly between 0 and 1"),
    (["drop_columns=[id]"], "drop_columns", "column 'id' is not in"),
    (["column_types={Island: categorical}"], "column_types", "column 'Island' is not in"),
    (["column_types={island: number}"], "column_types['island']='number'", "is not one of"),
    (["column_types={species: categorical}"], "column_types", "label column 'species'"),
    (["split=time", "time_column=when"], "time_column", "column 'when' is not in"),
    (
        ["derived_features=[{name: r, kind: ratio, columns: [bill_length_mm, bill_width_mm]}]"],
        "derived_features",
        "column 'bill_width_mm' is not in",
    ),
    (["derived_features=[{name: r, kind: square, columns: [year]}]"], "derived_features[0]", "unknown kind"),
    (["selection=chi", "max_features=3"], "selection='chi'", "is not one of"),
    (["canary_traffic_percent=101"], "canary_traffic_percent=101", "from 0 to 100"),
    (["model_name=My_Model"], "model_name='My_Model'", "InferenceService name"),
    (["engine=spark"], "engine='spark'", "a Dask scheduler address such as tcp://host:8786"),
    (["engine=tcp://scheduler"], "engine='tcp://scheduler'", "needs a port"),
    (["full_refit=always"], "full_refit='always'", "engine='local'"),
    (["full_refit=always", "engine=dask"], "full_refit='always'", "has no lightgbm"),
    (["full_refit=sometimes"], "full_refit='sometimes'", "is not one of"),
    (["model_families=[lightgbm, svm]"], "model_families", "unknown family 'svm'"),
]


@pytest.mark.parametrize(("sets", "parameter", "part"), CLASSIFICATION_CASES)
def test_a_bad_parameter_is_refused_in_one_line_before_any_task(
    tmp_path, capsys, data, sets, parameter, part
):
    workdir = tmp_path / "work"
    code = cli.main(run(workdir, data["csv"], "species", *sets))
    line = assert_refused_before_any_task(code, capsys.readouterr().err, workdir, parameter)
    assert part in line


def test_a_label_that_is_not_a_column_is_refused_naming_the_columns(tmp_path, capsys, data):
    workdir = tmp_path / "work"
    code = cli.main(run(workdir, data["csv"], "Species"))
    line = assert_refused_before_any_task(code, capsys.readouterr().err, workdir, "label_column")
    assert "column 'Species' is not in" in line and "species, island" in line


def test_a_folder_of_parquet_parts_is_read_as_ingest_reads_it(tmp_path, capsys):
    # Spark's output or a dataset folder: ingest reads every part; the check reads the first
    # part's columns (a folder used to be refused as "no such file").
    from mlstages.components.common.dataset_files import write_dataset

    folder = tmp_path / "penguins"
    write_dataset(palmerpenguins.load_penguins(), folder, part_rows=100)
    assert len(list(folder.glob("*.parquet"))) == 4
    preview = precheck.preview_data(str(folder), label_column="species")
    assert preview is not None and "bill_length_mm" in preview.columns and preview.labels is None
    workdir = tmp_path / "work"
    code = cli.main(run(workdir, str(folder), "Species"))
    line = assert_refused_before_any_task(code, capsys.readouterr().err, workdir, "label_column")
    assert "column 'Species' is not in" in line
    # A folder of other files is left to ingest, which names what it cannot read.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    assert precheck.preview_data(str(tmp_path / "notes")) is None


def test_families_and_metrics_follow_the_task_detected_from_a_parquet_label(tmp_path, capsys, data):
    # body_mass_g is a regression label: classification families and metrics are refused...
    workdir = tmp_path / "work"
    for sets, parameter in (
        (["model_families=[logistic_regression]"], "model_families"),
        (["thresholds={accuracy: {min: 0.9}}"], "thresholds"),
        (["scoring=f1_macro"], "scoring='f1_macro'"),
        (["selection=chi2"], "selection='chi2'"),
    ):
        code = cli.main(run(workdir, data["parquet"], "body_mass_g", *sets))
        line = assert_refused_before_any_task(code, capsys.readouterr().err, workdir, parameter)
        assert "regression" in line
    # ...and regression ones pass (precheck only: nothing runs).
    precheck.check_pipeline(
        "training",
        {
            "data_uri": data["parquet"],
            "label_column": "body_mass_g",
            "model_families": ["linear_regression"],
            "thresholds": {"r2": {"min": 0.5}},
        },
    )


def test_a_value_of_the_wrong_type_is_refused_and_a_whole_number_is_a_float_where_one_is_taken(
    tmp_path, capsys, data
):
    workdir = tmp_path / "work"
    assert cli.main(run(workdir, data["csv"], "species", "n_iter=many")) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "mlstages: error: parameter n_iter='many': the pipeline takes a whole number (NUMBER_INTEGER)\n"
    )
    assert not workdir.exists()
    # YAML reads 1 as an integer; kfp.local would refuse it for a float parameter in a traceback.
    assert local.typed_params("training", {"floor_tolerance": 0, "seed": 3}) == {
        "floor_tolerance": 0.0,
        "seed": 3,
    }


def test_a_data_file_that_does_not_exist_is_refused(tmp_path, capsys):
    workdir = tmp_path / "work"
    code = cli.main(run(workdir, str(tmp_path / "nowhere.csv"), "y"))
    line = assert_refused_before_any_task(code, capsys.readouterr().err, workdir, "data_uri=")
    assert "no such file or folder" in line


def test_the_command_ends_with_the_one_line_and_exit_2_without_a_traceback(tmp_path, data):
    workdir = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "mlstages.tooling.cli", *run(workdir, data["csv"], "species", "search=bayes")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert_refused_before_any_task(done.returncode, done.stderr, workdir, "search='bayes'")


def test_without_the_data_the_task_is_unknown_and_a_parameter_must_fit_some_task():
    # gs:// data is not read before the run: the label cannot tell the task.
    unread = {"data_uri": "gs://bucket/table.csv", "label_column": "y"}
    for families in (["linear_regression"], ["logistic_regression"]):
        precheck.check_pipeline("training", {**unread, "model_families": families})
    with pytest.raises(ParameterError, match="parameter model_families"):
        precheck.check_pipeline(
            "training", {**unread, "model_families": ["logistic_regression", "linear_regression"]}
        )
    with pytest.raises(ParameterError, match="parameter thresholds: unknown metric 'acc'"):
        precheck.check_pipeline("training", {**unread, "thresholds": {"acc": {"min": 1}}})
    # Column names are not checked without the header: the task checks them.
    precheck.check_pipeline("training", {**unread, "slice_columns": ["anything"]})
    # A task given explicitly is used.
    with pytest.raises(ParameterError, match="for task 'regression'"):
        precheck.check_pipeline(
            "training", {**unread, "task": "regression", "model_families": ["logistic_regression"]}
        )


def test_the_pipeline_parameter_is_named_where_the_stage_calls_it_otherwise():
    calls = {c.stage: c for c in precheck.stage_calls("training", {"data_uri": "d.csv", "label_column": "y"})}
    # Derived from the compiled spec, through the nested deploy pipeline and its condition.
    assert calls["ingest"].origins["source_uri"] == "data_uri"
    assert calls["validate_data"].origins["policy"] == "validation_policy"
    assert calls["deploy"].origins["cluster"] == "cluster"
    assert calls["deploy"].task == "deploy-when-blessed/blessed/deploy"
    assert calls["train"].arguments["task"] is precheck.UNKNOWN  # preprocess' output
    assert calls["train"].arguments["n_iter"] == 10 and calls["train"].sources == {"d.csv"}
    with pytest.raises(ParameterError, match=r"^parameter data_uri is empty"):
        precheck.check_pipeline("training", {"data_uri": " ", "label_column": "y"})


def test_every_renamed_or_converted_parameter_is_one_the_stage_takes():
    import dataclasses

    for stage, entry in precheck.STAGES.items():
        inputs = set(catalog.component(stage).component_spec.inputs or {})
        assert set(entry.renamed) | set(entry.converted) | set(entry.columns) <= inputs, stage
        if entry.config:
            fields = {f.name for f in dataclasses.fields(catalog.load(entry.config))}
            assert set(entry.renamed.values()) <= fields, stage


def test_each_component_builds_its_config_as_the_precheck_does():
    """The precheck passes a component parameter to the config field of the same name unless
    STAGES says otherwise: read each component's own XConfig(...) call to hold it to that."""
    import ast
    import inspect
    import textwrap

    for stage, entry in precheck.STAGES.items():
        if not entry.config:
            continue
        component = catalog.component(stage)
        inputs = set(component.component_spec.inputs or {})
        class_name = entry.config.rpartition(":")[2]
        tree = ast.parse(textwrap.dedent(inspect.getsource(component.python_func)))
        if f"{class_name}.from_parameters(locals())" in ast.unparse(tree):
            # Every parameter to the field of the same name, by construction: nothing to rename.
            assert not entry.renamed and not entry.converted and not entry.merged, stage
            continue
        (call,) = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == class_name
        ]
        for keyword in call.keywords:
            value = keyword.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "tuple":
                value = value.args[0]  # tuple(x) or tuple(x or ()): the configs take lists too
                if isinstance(value, ast.BoolOp) and isinstance(value.values[-1], ast.Tuple):
                    value = value.values[0]
            names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)} & inputs
            if isinstance(value, ast.Name):
                source = value.id
                assert entry.renamed.get(source, source) == keyword.arg, (stage, keyword.arg, source)
            else:
                assert entry.merged or names <= set(entry.converted), (stage, keyword.arg, ast.unparse(value))


# --- what must pass --------------------------------------------------------------------------------


def test_the_defaults_and_the_params_file_for_your_own_data_pass(data):
    for path in (None, catalog.pipeline_params_path("training")):
        params = local.load_params(path)
        for file, label in ((data["csv"], "species"), (data["parquet"], "body_mass_g")):
            precheck.check_pipeline("training", {**params, "data_uri": file, "label_column": label})


def test_the_built_in_params_files_pass_on_the_built_in_dataset(tmp_path):
    penguins = palmerpenguins.load_penguins()
    path = tmp_path / "penguins.csv"
    penguins.to_csv(path, index=False)
    training = local.load_params(catalog.builtin_params_path("training"))
    precheck.check_pipeline("training", {**training, "data_uri": str(path)})
    # What `mlstages run` without --data checks: the built-in dataset before it is uploaded.
    cli._precheck("training", training)
    monitoring = local.load_params(catalog.builtin_params_path("monitoring"))
    precheck.check_pipeline(
        "monitoring", {**monitoring, "data_uri": str(path), "current_uri": str(path), "model_registry": "r"}
    )
    with pytest.raises(ParameterError, match="column 'Island'"):
        cli._precheck("training", {**training, "slice_columns": ["Island"]})


@pytest.mark.parametrize(
    ("sets", "parameter"),
    [
        (["drift_share=2"], "drift_share=2.0"),
        (["metric_drops={f1_macro: -1}"], "max_metric_drop"),
        (["retrain_on=always"], "retrain_on='always'"),
        (["slice_columns=[Island]"], "slice_columns"),  # of the retraining, nested in monitoring
    ],
)
def test_mlstages_monitor_checks_its_parameters_before_any_task(tmp_path, capsys, sets, parameter):
    workdir = tmp_path / "work"
    args = ["monitor", "--workdir", str(workdir)]
    for item in sets:
        args += ["--set", item]
    assert_refused_before_any_task(cli.main(args), capsys.readouterr().err, workdir, parameter)
