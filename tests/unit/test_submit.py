"""`mlstages submit` and `mlstages schedule` through the real kfp client, against a STAND-IN for the
Kubeflow Pipelines v2beta1 API (tests/kfp_standin.py).

What this exercises: the requests the real kfp 2.17 client (kfp_server_api over urllib3) sends for
these flows, with our timeouts, credentials and error handling, and what arrives at the server:
the uploaded pipeline spec, run parameters, run-level settings, recurring-run triggers. What it
does not: the KFP API server's own validation, Argo Workflows or any run executing, the
scheduled-workflow controller, multi-user authorization, Kubeflow's ingress and auth proxies, a
real cluster.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kfp_standin import KfpStandIn

from mlstages.tooling import catalog, cli, kfp_runs, kfp_target, kubeflow
from mlstages.tooling.compile import compile_for_cluster

EXAMPLE_SETTINGS = catalog.PIPELINES_DIR / "settings" / "cluster.example.yaml"
DATA = "gs://mlstages-data/penguins.csv"
TOKEN = "s3cret-token-value"  # must never appear in what the command prints


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, tmp_path):
    """Nothing from this machine's environment or filesystem: no token variable, no pod token,
    no kfp endpoint variables."""
    for name in (
        kfp_target.DEFAULT_TOKEN_ENV,
        kfp_target.HOST_ENV,
        kfp_target.UI_ENV,
        kfp_target.KFP_TOKEN_PATH_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(kfp_target, "KFP_TOKEN_PATH", str(tmp_path / "no-kfp-token"))
    monkeypatch.setattr(kfp_target, "SERVICE_ACCOUNT_TOKEN_PATH", str(tmp_path / "no-sa-token"))


@pytest.fixture
def standin():
    # Behind /pipeline, as a full Kubeflow's ingress serves the API.
    with KfpStandIn(base_path="/pipeline") as server:
        yield server


def submit(host: str, *extra: str) -> int:
    # The training parameter file is for your own data: it names no label, so the run does.
    return cli.main(
        [
            "submit",
            "--host",
            host,
            "--data",
            DATA,
            "--set",
            "label_column=species",
            # A run on a cluster deploys there: cluster=none is refused (see below).
            "--set",
            "cluster=in-cluster",
            "--poll-interval",
            "0.02",
            *extra,
        ]
    )


def documents(text: str | bytes) -> list:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what arrives at the server ------------------------------------------------------------------


def test_uploaded_spec_is_what_compile_writes_and_the_run_gets_the_parameters(standin, tmp_path, capsys):
    code = submit(
        standin.url, "--settings", str(EXAMPLE_SETTINGS), "--set", "seed=7", "--set", "cluster=in-cluster"
    )
    assert code == 0, capsys.readouterr().err

    (upload,) = standin.uploads()
    assert upload.path.endswith("/pipelines/upload") and upload.query["name"] == "mlstages-training"
    # The spec the server received is `mlstages compile --settings` output, document for document.
    assert (
        cli.main(["compile", "--settings", str(EXAMPLE_SETTINGS), "--output-dir", str(tmp_path / "cli")]) == 0
    )
    compiled = (tmp_path / "cli" / "training_pipeline.yaml").read_text(encoding="utf-8")
    assert documents(upload.body["file"]) == documents(compiled)
    assert upload.body["file"].decode("utf-8") == compiled
    (written,) = [
        p
        for p in compile_for_cluster(EXAMPLE_SETTINGS, tmp_path / "api")
        if p.name == "training_pipeline.yaml"
    ]
    assert documents(upload.body["file"]) == documents(written.read_text(encoding="utf-8"))

    # Platform configuration: resources in the pipeline spec, the secret and node selector in the
    # Kubernetes platform document, the service account and pipeline root on the run.
    spec, platform = documents(upload.body["file"])
    train = next(v for k, v in spec["deploymentSpec"]["executors"].items() if k.endswith("-train"))
    assert train["container"]["resources"]["cpuLimit"] == 4.0
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    train_k8s = next(v for k, v in executors.items() if k.endswith("-train"))
    assert train_k8s["secretAsVolume"][0]["secretName"] == "mlstages-gcs-key"
    assert train_k8s["nodeSelector"]["labels"] == {"cloud.google.com/gke-nodepool": "highmem"}

    (run,) = standin.runs.values()
    settings = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    assert run["service_account"] == settings["service_account"] == "mlstages-deployer"
    assert run["runtime_config"]["pipeline_root"] == settings["pipeline_root"]
    parameters = run["runtime_config"]["parameters"]
    defaults = yaml.safe_load(catalog.pipeline_params_path("training").read_text())
    assert parameters == defaults | {
        "data_uri": DATA,
        "label_column": "species",
        "seed": 7,
        "cluster": "in-cluster",
    }
    (version,) = standin.versions("mlstages-training")
    assert run["pipeline_version_reference"] == {
        "pipeline_id": version["pipeline_id"],
        "pipeline_version_id": version["pipeline_version_id"],
    }
    experiment = standin.experiments[run["experiment_id"]]
    assert experiment["display_name"] == "mlstages"

    out = capsys.readouterr().out
    root = standin.url.removesuffix("/pipeline")
    assert f"{root}/_/pipeline/#/runs/details/{run['run_id']}" in out
    assert "cluster=none" not in out  # the run deploys in-cluster: no warning


def test_without_settings_the_committed_yaml_is_uploaded(standin, capsys):
    assert submit(standin.url) == 0
    (upload,) = standin.uploads()
    assert upload.body["file"].decode("utf-8") == catalog.pipeline_yaml_path("training").read_text(
        encoding="utf-8"
    )
    (run,) = standin.runs.values()
    assert run.get("service_account") is None and run["runtime_config"].get("pipeline_root") is None
    out = capsys.readouterr().out
    assert "note: no --settings" in out


def test_a_new_version_only_when_the_compiled_spec_changes(standin, capsys):
    from mlstages.components import __version__

    assert submit(standin.url) == 0
    assert submit(standin.url) == 0
    assert len(standin.uploads()) == 1  # the same spec: the first version is run again
    assert submit(standin.url, "--settings", str(EXAMPLE_SETTINGS)) == 0
    assert submit(standin.url, "--settings", str(EXAMPLE_SETTINGS)) == 0
    uploads = standin.uploads()
    assert [u.path.rsplit("/", 1)[1] for u in uploads] == ["upload", "upload_version"]
    versions = standin.versions("mlstages-training")
    compiled = kfp_runs.compile_pipeline("training", kubeflow.PlatformSettings())
    assert [v["name"] for v in versions] == ["mlstages-training", f"{__version__}-{_sha(uploads[1])[:12]}"]
    assert compiled.sha256 != _sha(uploads[1])
    runs = list(standin.runs.values())
    assert len(runs) == 4
    assert [r["pipeline_version_reference"]["pipeline_version_id"] for r in runs] == [
        versions[0]["pipeline_version_id"]
    ] * 2 + [versions[1]["pipeline_version_id"]] * 2
    assert "already has this spec" in capsys.readouterr().out


def _sha(upload) -> str:
    import hashlib

    return hashlib.sha256(upload.body["file"]).hexdigest()


def test_a_given_version_name_that_holds_another_spec_is_refused(standin, capsys):
    assert submit(standin.url) == 0
    assert submit(standin.url, "--settings", str(EXAMPLE_SETTINGS), "--version-name", "v1") == 0
    assert submit(standin.url, "--settings", str(EXAMPLE_SETTINGS), "--version-name", "v1") == 0
    assert len(standin.uploads()) == 2
    runs_before = len(standin.runs)
    assert submit(standin.url, "--version-name", "v1") == 2
    err = capsys.readouterr().err
    assert "pipeline 'mlstages-training' already has a version 'v1' with a different spec" in err
    assert len(standin.runs) == runs_before


def test_names_and_experiment_can_be_given(standin):
    code = submit(
        standin.url,
        "--pipeline-name",
        "penguins-training",
        "--experiment",
        "nightly",
        "--run-name",
        "penguins 2025-01-31",
        "--service-account",
        "trainer",
        "--pipeline-root",
        "gs://other/root",
    )
    assert code == 0
    (run,) = standin.runs.values()
    assert run["display_name"] == "penguins 2025-01-31"
    assert run["service_account"] == "trainer" and run["runtime_config"]["pipeline_root"] == "gs://other/root"
    assert standin.experiments[run["experiment_id"]]["display_name"] == "nightly"
    assert [p.record["display_name"] for p in standin.pipelines.values()] == ["penguins-training"]


def test_multi_user_kubeflow_needs_a_namespace_and_everything_goes_there(capsys):
    with KfpStandIn(multi_user=True) as server:
        assert submit(server.url) == 2
        assert "is a multi-user Kubeflow Pipelines: give --namespace" in capsys.readouterr().err
        assert not server.uploads()
        assert submit(server.url, "--namespace", "team-a") == 0
        (upload,) = server.uploads()
        assert upload.query["namespace"] == "team-a"
        (run,) = server.runs.values()
        assert server.experiments[run["experiment_id"]]["namespace"] == "team-a"
        assert "multi-user, namespace team-a" in capsys.readouterr().out


# --- refused before any request ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "label_colum=species"],
            "unknown parameter(s) for pipeline training: label_colum; it takes: ",
        ),
        (["--set", "seed=many"], "parameter seed='many': the pipeline takes a whole number"),
        (["--settings", "nothere.yaml"], "settings file nothere.yaml: no such file"),
        (
            ["--token-env", "NOT_SET_ANYWHERE"],
            "--token-env NOT_SET_ANYWHERE: the environment variable NOT_SET_ANYWHERE is not set or empty",
        ),
        (["--timeout", "0"], "--timeout 0: expected a number of seconds above 0"),
        (["--wait", "--wait-timeout", "-1"], "--wait-timeout -1: expected a number of seconds above 0"),
        (
            ["--service-account", "Not_A_Name"],
            "--service-account: 'Not_A_Name' is not a Kubernetes object name",
        ),
        (["--pipeline-root", "bucket/root"], "--pipeline-root 'bucket/root': expected a URI"),
    ],
)
def test_bad_input_is_refused_before_any_request(standin, capsys, args, message):
    assert submit(standin.url, *args) == 2
    err = capsys.readouterr().err
    assert f"mlstages: error: {message}" in err
    assert "Traceback" not in err
    assert standin.requests == []


@pytest.mark.parametrize("command", ["submit", "schedule"])
def test_cluster_none_is_refused_before_any_request(standin, capsys, command):
    # Without cluster=in-cluster, deploy would serve the champion inside its own pod: nowhere.
    args = [command, "training", "--host", standin.url, "--data", DATA, "--set", "label_column=species"]
    if command == "schedule":
        args += ["--cron", "@hourly"]
    assert cli.main([*args, "--set", "cluster=none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "mlstages: error: parameter cluster='none' serves the model on a local model server"
    )
    assert "--set cluster=in-cluster" in err
    assert standin.requests == []
    # The pipeline's default is none, so leaving it out is refused the same way.
    assert cli.main(args) == 2
    assert "parameter cluster='none'" in capsys.readouterr().err


def test_parameters_a_stage_would_refuse_are_refused_before_any_request(standin, capsys):
    assert submit(standin.url, "--set", "model_families=[svm]") == 2
    err = capsys.readouterr().err
    assert err.startswith("mlstages: error: parameter model_families: unknown family 'svm'")
    assert "task train would refuse it" in err and err.count("\n") == 1
    assert standin.requests == []
    # The data is the pods' to read: a path on their filesystem is not looked for here.
    assert submit(standin.url, "--data", "/mnt/data/table.csv", "--set", "slice_columns=[region]") == 0


def test_unknown_parameter_lists_what_the_pipeline_takes(standin, capsys):
    assert submit(standin.url, "--set", "label_colum=species") == 2
    known = capsys.readouterr().err.split("it takes: ")[1]
    assert "label_column" in known and "data_uri" in known


def test_no_host_is_refused(capsys):
    assert cli.main(["submit", "--data", DATA]) == 2
    assert (
        "no Kubeflow Pipelines address: give --host URL (or set KF_PIPELINES_ENDPOINT)"
        in capsys.readouterr().err
    )


def test_host_from_the_kfp_variable(standin, monkeypatch):
    monkeypatch.setenv(kfp_target.HOST_ENV, standin.url)
    assert (
        cli.main(["submit", "--data", DATA, "--set", "label_column=species", "--set", "cluster=in-cluster"])
        == 0
    )
    assert len(standin.runs) == 1


# --- credentials ---------------------------------------------------------------------------------


def test_token_from_the_default_variable_is_sent_and_never_printed(monkeypatch, capsys):
    monkeypatch.setenv(kfp_target.DEFAULT_TOKEN_ENV, TOKEN)
    with KfpStandIn(token=TOKEN) as server:
        assert submit(server.url) == 0
    assert server.requests and all(r.authorization == f"Bearer {TOKEN}" for r in server.requests)
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert f"auth: the token in ${kfp_target.DEFAULT_TOKEN_ENV}" in captured.out


def test_token_from_a_named_variable_and_from_a_file(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TEAM_KFP_TOKEN", TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with KfpStandIn(token=TOKEN) as server:
        assert submit(server.url, "--token-env", "TEAM_KFP_TOKEN") == 0
        assert submit(server.url, "--token-file", str(token_file)) == 0
    assert all(r.authorization == f"Bearer {TOKEN}" for r in server.requests)
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert "the token in $TEAM_KFP_TOKEN (--token-env)" in captured.out
    assert f"the token in {token_file} (--token-file)" in captured.out


def test_pod_token_is_used_in_a_pod(monkeypatch, tmp_path):
    pod_token = tmp_path / "sa-token"
    pod_token.write_text(TOKEN)
    monkeypatch.setattr(kfp_target, "SERVICE_ACCOUNT_TOKEN_PATH", str(pod_token))
    with KfpStandIn(token=TOKEN) as server:
        assert submit(server.url) == 0
    assert all(r.authorization == f"Bearer {TOKEN}" for r in server.requests)


@pytest.mark.parametrize("token", [None, "wrong-token-value"])
def test_401_says_which_credentials_were_sent(monkeypatch, capsys, token):
    if token:
        monkeypatch.setenv(kfp_target.DEFAULT_TOKEN_ENV, token)
    with KfpStandIn(token=TOKEN) as server:
        assert submit(server.url) == 2
    err = capsys.readouterr().err
    assert "refused the credentials (401 Unauthorized) while checking the API (healthz)" in err
    if token:
        assert f"Auth used: the token in ${kfp_target.DEFAULT_TOKEN_ENV}; the token may have expired" in err
        assert token not in err
    else:
        assert "Auth used: no token; give a token with --token-env VAR or --token-file PATH" in err
    assert "Traceback" not in err


def test_403_on_a_later_call_names_the_call_and_the_credentials(standin, capsys, monkeypatch):
    monkeypatch.setenv(kfp_target.DEFAULT_TOKEN_ENV, TOKEN)
    standin.fail_next("POST", "/pipelines/upload", 403, "pipeline upload denied in namespace 'kubeflow'")
    assert submit(standin.url) == 2
    err = capsys.readouterr().err
    assert "denied access (403 Forbidden) while uploading pipeline 'mlstages-training'" in err
    assert "pipeline upload denied in namespace 'kubeflow'" in err and "Auth used: the token in $" in err


def test_a_login_redirect_is_explained(capsys):
    with KfpStandIn(redirect_to="https://kubeflow.example.com/dex/auth?client_id=kubeflow-oidc") as server:
        assert submit(server.url) == 2
    err = capsys.readouterr().err
    assert "redirected to https://kubeflow.example.com/dex/auth?client_id=kubeflow-oidc (HTTP 302)" in err
    assert "login page" in err


# --- hosts that do not answer --------------------------------------------------------------------

TIMEOUT = 1.0
# Compiling the pipeline happens before the first request; half a second of the margin is for it.
MARGIN = 1.5


@pytest.mark.parametrize(
    ("hang_on", "doing"),
    [
        (None, "while checking the API (healthz)"),  # accepts, never answers anything
        (("POST", "/pipelines/upload"), "while uploading pipeline 'mlstages-training'"),
        (("POST", "/runs"), "while creating run 'mlstages-training-"),
    ],
)
def test_a_silent_host_fails_within_the_timeout(capsys, hang_on, doing):
    kfp_runs.compile_pipeline("training", kubeflow.PlatformSettings())  # warm: imports and compiler
    with KfpStandIn(silent=hang_on is None, hang_on=hang_on) as server:
        host = server.url
        started = time.monotonic()
        code = submit(host, "--timeout", str(TIMEOUT))
        elapsed = time.monotonic() - started
    assert code == 2
    assert TIMEOUT <= elapsed < TIMEOUT + MARGIN, elapsed
    err = capsys.readouterr().err
    assert f"{host} accepted the connection but did not answer within 1 s (--timeout) {doing}" in err
    assert "Traceback" not in err


def test_an_unreachable_host_fails_cleanly(capsys):
    port = closed_port()
    started = time.monotonic()
    assert submit(f"http://127.0.0.1:{port}", "--timeout", "5") == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert (
        f"mlstages: error: cannot connect to http://127.0.0.1:{port} while checking the API (healthz)" in err
    )
    assert "Connection refused" in err and "Traceback" not in err


def test_an_unknown_host_name_fails_cleanly(capsys):
    # .invalid never resolves (RFC 6761).
    assert submit("http://mlstages-kfp.invalid", "--timeout", "5") == 2
    err = capsys.readouterr().err
    assert "cannot resolve the host name of http://mlstages-kfp.invalid" in err


def test_a_server_error_is_reported_with_its_message(standin, capsys):
    standin.fail_next("POST", "/runs", 500, "Internal error: database is down")
    assert submit(standin.url) == 2
    err = capsys.readouterr().err
    assert "answered 500 Internal Server Error while creating run" in err
    assert "database is down" in err


def test_a_host_that_is_not_the_pipelines_api_is_explained(capsys):
    # The stand-in behind /pipeline, addressed without it: every route is a bare 404.
    with KfpStandIn(base_path="/pipeline") as server:
        assert submit(server.url.removesuffix("/pipeline") + "/kubeflow") == 2
    assert "has no such API route (404)" in capsys.readouterr().err


def test_a_page_that_is_not_the_api_is_caught_before_anything_is_uploaded(capsys):
    with KfpStandIn(html_page=True) as server:
        assert submit(server.url) == 2
        assert [r.path for r in server.requests] == ["/apis/v2beta1/healthz"]
    err = capsys.readouterr().err
    assert "answered the health check with something other than the Kubeflow Pipelines API's JSON" in err
    assert "text/html" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ca-cert", "no-such-ca.pem"], "--ca-cert no-such-ca.pem: no such file"),
        (["--experiment", " "], "--experiment is empty"),
    ],
)
def test_more_bad_input_is_refused_before_any_request(standin, capsys, args, message):
    assert submit(standin.url, *args) == 2
    assert f"mlstages: error: {message}" in capsys.readouterr().err
    assert standin.requests == []


def test_a_token_file_removed_between_calls_is_named(standin, tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    original = standin.handle

    def remove_after_healthz(method, target, headers, raw):
        answer = original(method, target, headers, raw)
        if target.endswith("/healthz"):
            token_file.unlink()
        return answer

    standin.handle = remove_after_healthz
    assert submit(standin.url, "--token-file", str(token_file)) == 2
    err = capsys.readouterr().err
    assert f"cannot read the credentials (the token in {token_file} (--token-file)) while looking up" in err


# --- --wait --------------------------------------------------------------------------------------


def test_wait_exits_zero_when_the_run_succeeds(standin, capsys):
    assert submit(standin.url, "--wait") == 0
    out = capsys.readouterr().out
    assert "] RUNNING" in out and "] SUCCEEDED" in out
    assert "SUCCEEDED after" in out


def test_wait_exits_non_zero_with_the_error_when_the_run_fails(capsys):
    error = "task train failed: the model did not converge"
    with KfpStandIn(run_states=("PENDING", "RUNNING", "FAILED"), run_error=error) as server:
        assert submit(server.url, "--wait") == 1
    captured = capsys.readouterr()
    assert "] RUNNING" in captured.out and "] FAILED" in captured.out
    assert f"mlstages: error: run {next(iter(server.runs))} ended FAILED: {error}" in captured.err
    assert f"  task train: {error}" in captured.err
    assert "/#/runs/details/" in captured.err


@pytest.mark.parametrize("state", ["CANCELED", "SKIPPED"])
def test_wait_exits_non_zero_for_any_end_but_success(capsys, state):
    with KfpStandIn(run_states=("RUNNING", state)) as server:
        assert submit(server.url, "--wait") == 1
    assert f"ended {state}" in capsys.readouterr().err


def test_wait_gives_up_at_the_wait_timeout(capsys):
    with KfpStandIn(run_states=("PENDING", "RUNNING")) as server:
        started = time.monotonic()
        assert submit(server.url, "--wait", "--wait-timeout", "0.5") == 1
        elapsed = time.monotonic() - started
    assert elapsed < 0.5 + MARGIN + 1.0
    err = capsys.readouterr().err
    assert "gave up waiting after" in err and "(--wait-timeout); the run is RUNNING and goes on" in err


def test_wait_survives_a_failed_poll_but_not_three(standin, capsys):
    # One failed look at the run is retried; the run still ends and is reported.
    standin.fail_next("GET", "/runs/", 503, "upstream connect error")
    assert submit(standin.url, "--wait") == 0
    assert "could not read the run" in capsys.readouterr().out
    for _ in range(3):
        standin.fail_next("GET", "/runs/", 503, "upstream connect error")
    assert submit(standin.url, "--wait") == 2
    assert "answered 503" in capsys.readouterr().err


# --- schedule ------------------------------------------------------------------------------------

MONITORING = [
    "--set",
    "current_uri=gs://mlstages-data/predictions/",
    "--set",
    f"data_uri={DATA}",
    "--set",
    "model_registry=gs://mlstages-models/models",
    "--set",
    "cluster=in-cluster",
]


def test_schedule_creates_a_recurring_run_with_the_cron(standin, capsys):
    code = cli.main(
        [
            "schedule",
            "--host",
            standin.url,
            "--cron",
            "0 * * * *",
            "--no-catchup",
            "--max-concurrency",
            "2",
            "--start",
            "2030-01-01T00:00:00Z",
            "--end",
            "2031-01-01T00:00:00+01:00",
            "--settings",
            str(EXAMPLE_SETTINGS),
            *MONITORING,
        ]
    )
    assert code == 0, capsys.readouterr().err
    (recurring,) = standin.recurring_runs.values()
    assert recurring["trigger"]["cron_schedule"] == {
        "cron": "0 0 * * * *",
        "start_time": "2030-01-01T00:00:00Z",
        "end_time": "2030-12-31T23:00:00Z",
    }
    assert recurring["no_catchup"] is True and int(recurring["max_concurrency"]) == 2
    assert recurring["mode"] == "ENABLE" and recurring["display_name"] == "mlstages-monitoring-schedule"
    assert recurring["service_account"] == "mlstages-deployer"
    assert recurring["runtime_config"]["parameters"]["current_uri"] == "gs://mlstages-data/predictions/"
    (version,) = standin.versions("mlstages-monitoring")
    assert recurring["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]
    (upload,) = standin.uploads()
    compiled = kfp_runs.compile_pipeline("monitoring", kubeflow.PlatformSettings())
    assert documents(upload.body["file"]) != documents(compiled.text)  # the settings were applied
    assert not standin.runs  # a schedule starts no run itself
    out = capsys.readouterr().out
    assert "scheduling '0 0 * * * *'" in out
    assert f"/_/pipeline/#/recurringrun/details/{recurring['recurring_run_id']}" in out


def test_schedule_refuses_a_second_schedule_of_the_same_name_unless_replace(standin, capsys):
    args = ["schedule", "--host", standin.url, "--cron", "@hourly", *MONITORING]
    assert cli.main(args) == 0
    (first,) = standin.recurring_runs
    assert cli.main(args) == 2
    assert (
        f"already has a recurring run named 'mlstages-monitoring-schedule' ({first})"
        in capsys.readouterr().err
    )
    assert list(standin.recurring_runs) == [first]
    assert cli.main([*args, "--replace", "--disabled"]) == 0
    (second,) = standin.recurring_runs.values()
    assert second["recurring_run_id"] != first and second["mode"] == "DISABLE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 0 * *"], "--cron '0 0 * *': expected 5 fields (minute hour day month weekday) or 6"),
        (["--cron", "0 61 * * * *"], "--cron '0 61 * * * *': minute '61' is not in 0-59"),
        (["--cron", "@hourly", "--max-concurrency", "20"], "--max-concurrency 20: KFP takes 1 to 10"),
        (["--cron", "@hourly", "--end", "2001-01-01"], "--end 2001-01-01T00:00:00Z is in the past"),
        (["--cron", "@hourly", "--start", "soon"], "--start 'soon': expected an ISO 8601 time"),
        (
            ["--cron", "@hourly", "--set", "drift_shar=0.3"],
            "unknown parameter(s) for pipeline monitoring: drift_shar",
        ),
    ],
)
def test_schedule_refuses_bad_input_before_any_request(standin, capsys, args, message):
    assert cli.main(["schedule", "--host", standin.url, *MONITORING, *args]) == 2
    assert f"mlstages: error: {message}" in capsys.readouterr().err
    assert standin.requests == []


def test_schedule_needs_a_cron(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["schedule", "--host", "http://localhost:8080"])
    assert exit_info.value.code == 2
    assert "--cron" in capsys.readouterr().err


# --- the command line around it ------------------------------------------------------------------


def test_help_lists_submit_and_schedule(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "submit" in out and "schedule" in out
    with pytest.raises(SystemExit):
        cli.main(["submit", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--host",
        "--namespace",
        "--experiment",
        "--params",
        "--set",
        "--settings",
        "--wait",
        "--timeout",
    ):
        assert option in out


def test_registry_is_compiled_into_the_uploaded_images(standin):
    # The image names are fixed when the components are imported, so this runs in a new process,
    # as the command does.
    command = (
        "import sys; from mlstages.tooling import cli; "
        f"sys.exit(cli.main(['submit', '--host', {standin.url!r}, '--data', {DATA!r}, '--set', 'label_column=species', '--set', 'cluster=in-cluster', "
        "'--registry', 'registry.example.com/ml']))"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLSTAGES_REGISTRY", kfp_target.DEFAULT_TOKEN_ENV)
    }
    result = subprocess.run(
        [sys.executable, "-c", command], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    (upload,) = standin.uploads()
    spec = documents(upload.body["file"])[0]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images and all(i.startswith("registry.example.com/ml/mlstages-") for i in images)


def test_make_targets_wrap_the_commands():
    repo = Path(catalog.REPO_ROOT)
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(repo), "submit", "HOST=http://localhost:8080", "ARGS=--wait"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "mlstages submit  --host http://localhost:8080 --wait" in dry_run
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(repo), "schedule", "PIPELINE=training", "HOST=http://h", "CRON=@daily"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'mlstages schedule training --host http://h --cron "@daily"' in dry_run
