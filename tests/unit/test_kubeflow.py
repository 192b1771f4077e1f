"""What `mlstages submit` and `mlstages schedule` decide before any network call: credentials,
addresses, cron expressions, times, parameters, version names and warnings."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog, cron, kfp_runs, kfp_target
from mlstages.tooling.cron import kfp_cron
from mlstages.tooling.kfp_target import Auth, resolve_auth
from mlstages.tooling.kubeflow import Schedule
from mlstages.tooling.platform import PlatformSettings, TaskSettings

NO_POD = ()  # no in-cluster token files


# --- credentials ---------------------------------------------------------------------------------


def test_token_file_wins_and_is_read_on_every_call(tmp_path):
    token = tmp_path / "token"
    token.write_text("from-file\n")
    auth = resolve_auth("SOME_VAR", token, environ={"SOME_VAR": "x"}, in_cluster_token_paths=NO_POD)
    assert auth.token is None and auth.token_path == str(token)
    assert str(token) in auth.description
    assert "credentials" in auth.client_options()


def test_token_env_names_the_variable_and_never_shows_the_token():
    auth = resolve_auth("TEAM_TOKEN", environ={"TEAM_TOKEN": "s3cret-value"}, in_cluster_token_paths=NO_POD)
    assert auth.token == "s3cret-value"
    assert "$TEAM_TOKEN" in auth.description
    assert "s3cret" not in repr(auth) and "s3cret" not in auth.description
    assert auth.client_options() == {"existing_token": "s3cret-value"}


def test_default_token_variable_then_pod_token_then_none(tmp_path):
    pod_token = tmp_path / "sa-token"
    pod_token.write_text("pod")
    env = {kfp_target.DEFAULT_TOKEN_ENV: "mine"}
    assert resolve_auth(environ=env, in_cluster_token_paths=(str(pod_token),)).token == "mine"
    in_pod = resolve_auth(environ={}, in_cluster_token_paths=(str(tmp_path / "absent"), str(pod_token)))
    assert in_pod.token_path == str(pod_token) and "service-account token" in in_pod.description
    nothing = resolve_auth(environ={}, in_cluster_token_paths=(str(tmp_path / "absent"),))
    assert nothing == Auth("no token") and nothing.client_options() == {}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("unset-env", "--token-env TEAM_TOKEN: the environment variable TEAM_TOKEN is not set or empty"),
        ("missing-file", "--token-file .*nothere: no such file"),
        ("empty-file", "--token-file .*empty is empty"),
    ],
)
def test_bad_token_sources_are_named(tmp_path, setup, message):
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(ParameterError, match=message):
        if setup == "unset-env":
            resolve_auth("TEAM_TOKEN", environ={}, in_cluster_token_paths=NO_POD)
        else:
            resolve_auth(None, tmp_path / ("nothere" if setup == "missing-file" else "empty"), environ={})


# --- addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "ui"),
    [
        # A full Kubeflow: the API behind /pipeline, the UI inside the central dashboard.
        ("https://kubeflow.example.com/pipeline", "https://kubeflow.example.com/_/pipeline"),
        ("https://kubeflow.example.com/pipeline/", "https://kubeflow.example.com/_/pipeline"),
        # A port-forwarded ml-pipeline-ui serves the API and the UI at its root.
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://example.com/kf/pipeline", "https://example.com/kf/_/pipeline"),
    ],
)
def test_ui_address_follows_how_kubeflow_serves_it(host, ui):
    assert kfp_target.ui_base(kfp_target.check_host(host)) == ui
    assert kfp_target.run_url(kfp_target.ui_base(host), "r1") == f"{ui}/#/runs/details/r1"


def test_ui_address_can_be_given():
    assert kfp_target.ui_base("http://localhost:8888", "https://ui.example.com/") == "https://ui.example.com"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (None, "no Kubeflow Pipelines address: give --host URL"),
        ("", "no Kubeflow Pipelines address"),
        ("kubeflow.example.com", "expected an http:// or https:// URL"),
        ("ftp://kubeflow.example.com", "expected an http:// or https:// URL"),
        ("https://kubeflow.example.com/pipeline?x=1", "without a query"),
    ],
)
def test_bad_hosts_are_refused(host, message):
    with pytest.raises(ParameterError, match=message):
        kfp_target.check_host(host)


# --- cron and times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("0 0 * * * *", "0 0 * * * *"),  # hourly, KFP's six fields
        ("0 * * * *", "0 0 * * * *"),  # hourly, standard five fields: seconds added
        ("*/15 * * * *", "0 */15 * * * *"),
        ("30 2 * * MON-FRI", "0 30 2 * * MON-FRI"),
        ("0 0 6 1,15 jan-jun ?", "0 0 6 1,15 jan-jun ?"),
        ("  0  0 * * *  * ", "0 0 * * * *"),
        ("@hourly", "@hourly"),
        ("@every 1h30m", "@every 1h30m"),
    ],
)
def test_cron_expressions_are_sent_in_kfp_form(given, sent):
    assert kfp_cron(given) == sent


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "--cron is empty"),
        ("0 0 * *", "expected 5 fields .* or 6 .*got 4"),
        ("0 0 0 * * * *", "got 7"),
        ("0 60 * * * *", "minute '60' is not in 0-59"),
        ("0 0 24 * * *", "hour '24' is not in 0-23"),
        ("0 0 0 0 * *", "day of month '0' is not in 1-31"),
        ("0 0 0 * 13 *", "month '13' is not in 1-12"),
        ("0 0 0 * * 7", "day of week '7' is not in 0-6"),
        ("0 0 0 * * funday", "day of week 'funday' is not in 0-6"),
        ("0 */0 * * * *", "step '0' must be a whole number above 0"),
        ("0 30-10 * * * *", "range '30-10' runs backwards"),
        ("@fortnightly", "unknown descriptor"),
        ("@every", "@every takes a positive duration"),
        ("@every 0s", "@every takes a positive duration"),
        ("@every soon", "@every takes a positive duration"),
    ],
)
def test_bad_cron_expressions_are_named(expression, message):
    with pytest.raises(ParameterError, match=message):
        kfp_cron(expression)


def test_times_are_iso_and_utc():
    assert cron.parse_time("2030-01-31T06:00:00Z", "--start") == dt.datetime(
        2030, 1, 31, 6, tzinfo=dt.timezone.utc
    )
    assert cron.rfc3339(cron.parse_time("2030-01-31T07:00:00+01:00", "--start")) == "2030-01-31T06:00:00Z"
    assert cron.rfc3339(cron.parse_time("2030-01-31 06:00", "--end")) == "2030-01-31T06:00:00Z"
    with pytest.raises(ParameterError, match="--start 'tomorrow': expected an ISO 8601 time"):
        cron.parse_time("tomorrow", "--start")


def test_schedule_checks_what_kfp_would_refuse_or_never_run():
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert Schedule("0 * * * *").check(now).cron == "0 0 * * * *"
    with pytest.raises(ParameterError, match="--max-concurrency 11: KFP takes 1 to 10"):
        Schedule("@hourly", max_concurrency=11).check(now)
    with pytest.raises(ParameterError, match="--max-concurrency 0"):
        Schedule("@hourly", max_concurrency=0).check(now)
    with pytest.raises(ParameterError, match="--end 2029-12-31T00:00:00Z is in the past"):
        Schedule("@hourly", end=dt.datetime(2029, 12, 31, tzinfo=dt.timezone.utc)).check(now)
    with pytest.raises(ParameterError, match="is not after --start"):
        Schedule(
            "@hourly",
            start=dt.datetime(2030, 3, 1, tzinfo=dt.timezone.utc),
            end=dt.datetime(2030, 2, 1, tzinfo=dt.timezone.utc),
        ).check(now)


# --- the compiled pipeline, its parameters and version -------------------------------------------


@pytest.fixture(scope="module")
def training() -> kfp_runs.CompiledPipeline:
    return kfp_runs.compile_pipeline("training", PlatformSettings())


def test_compiled_pipeline_is_the_committed_yaml(training):
    assert training.text == catalog.pipeline_yaml_path("training").read_text(encoding="utf-8")
    assert training.display_name == "mlstages-training"
    assert training.as_server_struct() == yaml.safe_load(training.text)


def test_version_name_follows_the_spec(training):
    from mlstages.components import __version__

    name = kfp_runs.version_name(training)
    assert name == f"{__version__}-{training.sha256[:12]}"
    assert kfp_runs.version_name(kfp_runs.compile_pipeline("training", PlatformSettings())) == name
    resources = kfp_runs.compile_pipeline(
        "training", PlatformSettings(defaults=TaskSettings(cpu_request="2"))
    )
    assert kfp_runs.version_name(resources) != name
    # Kubernetes settings add a platform document; the server returns {pipeline_spec, platform_spec}.
    pool = kfp_runs.compile_pipeline(
        "training", PlatformSettings(defaults=TaskSettings(node_selector={"pool": "a"}))
    )
    assert set(pool.as_server_struct()) == {"pipeline_spec", "platform_spec"}
    assert kfp_runs.version_name(pool) not in (name, kfp_runs.version_name(resources))


def test_unknown_parameters_are_named_with_the_known_ones(training):
    with pytest.raises(ParameterError) as error:
        kfp_runs.prepare_parameters(
            training, {"data_uri": "gs://b/d.csv", "label_column": "y", "label_colum": 1}
        )
    assert "unknown parameter(s) for pipeline training: label_colum; it takes: " in str(error.value)
    assert "label_column" in str(error.value).split("it takes:")[1]


def test_missing_parameters_are_named(training):
    with pytest.raises(ParameterError, match="pipeline training needs parameter\\(s\\): data_uri"):
        kfp_runs.prepare_parameters(training, {"label_column": "species"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("seed", "abc", "seed='abc': the pipeline takes a whole number \\(NUMBER_INTEGER\\)"),
        ("seed", True, "takes a whole number"),
        ("test_size", "big", "test_size='big': the pipeline takes a number \\(NUMBER_DOUBLE\\)"),
        ("infra_validation", "yes", "takes true or false \\(BOOLEAN\\)"),
        ("model_families", "random_forest", "takes a list \\(LIST\\)"),
        ("thresholds", [1], "takes a mapping \\(STRUCT\\)"),
        ("label_column", ["a"], "takes a string \\(STRING\\)"),
    ],
)
def test_parameter_types_are_checked(training, name, value, message):
    with pytest.raises(ParameterError, match=message):
        kfp_runs.prepare_parameters(training, {"data_uri": "gs://b/d.csv", "label_column": "y", name: value})


def test_yaml_typed_values_go_back_to_text_where_the_pipeline_takes_a_string(training):
    params = kfp_runs.prepare_parameters(
        training,
        {"data_uri": "gs://b/d.csv", "label_column": 7, "snapshot": dt.date(2025, 1, 31), "test_size": 1},
    )
    assert params == {
        "data_uri": "gs://b/d.csv",
        "label_column": "7",
        "snapshot": "2025-01-31",
        "test_size": 1,
    }


def test_registry_fixed_at_import_is_refused_rather_than_uploaded(monkeypatch):
    from mlstages.components.common.images import REGISTRY_ENV

    monkeypatch.delenv(REGISTRY_ENV, raising=False)
    catalog.pipeline("training")  # the components are imported with the default registry
    with pytest.raises(
        ParameterError, match="--registry registry.example.com/ml: the components were loaded"
    ):
        kfp_runs.compile_pipeline("training", PlatformSettings(), registry="registry.example.com/ml")


def test_notes_warn_about_what_a_cluster_run_cannot_do():
    caching = PlatformSettings(stages={"ingest": TaskSettings(caching=True)})
    training = kfp_runs.compile_pipeline("training", PlatformSettings())
    monitoring = kfp_runs.compile_pipeline("monitoring", PlatformSettings())
    notes = kfp_runs.submission_notes(
        training,
        {"data_uri": "/home/me/data.csv", "cluster": "none"},
        PlatformSettings(),
        settings_given=False,
    )
    text = "\n".join(notes)
    assert "data_uri='/home/me/data.csv' is a path on this machine" in text
    assert "cluster=none" not in text  # refused outright by precheck.check_cluster_target
    assert "no --settings" in text
    http = kfp_runs.submission_notes(
        training,
        {"data_uri": "https://example.com/d.csv", "cluster": "in-cluster"},
        caching,
        settings_given=True,
    )
    assert (
        len(http) == 1 and "caching on for ingest, and data_uri is an HTTP source with no snapshot" in http[0]
    )
    database = kfp_runs.submission_notes(
        monitoring,
        {"current_uri": "postgresql://db/x", "cluster": "in-cluster"},
        caching,
        settings_given=True,
    )
    assert len(database) == 1 and "current_uri is a database source with no snapshot" in database[0]
    snapshotted = kfp_runs.submission_notes(
        training,
        {"data_uri": "https://example.com/d.csv", "snapshot": "2025-01", "cluster": "in-cluster"},
        caching,
        settings_given=True,
    )
    assert snapshotted == []
    # Monitoring's snapshot names the window; retraining reads data_uri without one.
    retraining = kfp_runs.submission_notes(
        monitoring,
        {
            "current_uri": "gs://b/w/",
            "data_uri": "https://example.com/d.csv",
            "snapshot": "w1",
            "cluster": "x",
        },
        caching,
        settings_given=True,
    )
    assert len(retraining) == 1 and "data_uri is an HTTP source with no snapshot" in retraining[0]
