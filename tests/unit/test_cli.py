"""The `mlstages` command line: help, compile --check, and clear errors for bad parameters."""

from __future__ import annotations

import pytest

from mlstages.tooling import cli, local


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "serve", "compile"):
        assert command in out


def test_compile_check_passes_on_the_committed_files(capsys):
    assert cli.main(["compile", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_unknown_pipeline_parameter_is_named_before_anything_runs(tmp_path, capsys):
    code = cli.main(["run", "--workdir", str(tmp_path), "--set", "label_colum=species"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) for pipeline training: label_colum" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["novalue"], "--set 'novalue': expected NAME=VALUE"),
        (["=3"], "--set '=3': expected NAME=VALUE"),
    ],
)
def test_bad_overrides_are_named(overrides, message):
    from mlstages.components.common.errors import ParameterError

    with pytest.raises(ParameterError, match=message):
        local.load_params(None, overrides)


def test_parameter_file_errors_are_named(tmp_path):
    from mlstages.components.common.errors import ParameterError

    with pytest.raises(ParameterError, match="nothere.yaml: no such file"):
        local.load_params(tmp_path / "nothere.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ParameterError, match="must be a mapping"):
        local.load_params(bad)


def test_serve_without_a_champion_says_what_to_do(tmp_path, capsys):
    from mlstages.components.common.emulator import free_port

    # A free port: the default one (8080) may be taken on the machine, which is refused first.
    port = str(free_port())
    code = cli.main(["serve", "--workdir", str(tmp_path), "--name", "nothing-here", "--port", port])
    assert code == 2
    assert "no champion for 'nothing-here'" in capsys.readouterr().err


# --- mlstages monitor ------------------------------------------------------------------------------


def test_monitor_is_a_command_with_its_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["monitor", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--no-drift", "--data", "--set", "--params", "--seed", "--workdir"):
        assert option in out


def test_monitor_takes_either_a_window_or_no_drift(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["monitor", "--no-drift", "--data", "window.parquet"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_monitor_names_an_unknown_parameter_before_anything_runs(tmp_path, capsys):
    code = cli.main(["monitor", "--workdir", str(tmp_path), "--set", "drift_shar=0.3"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) for pipeline monitoring: drift_shar" in err
    assert not (tmp_path / "gcs").exists() and not (tmp_path / "runs").exists()


def test_monitor_names_a_missing_parameter_file(tmp_path, capsys):
    code = cli.main(["monitor", "--workdir", str(tmp_path), "--params", str(tmp_path / "none.yaml")])
    assert code == 2
    assert "none.yaml: no such file" in capsys.readouterr().err


def test_monitoring_parameters_are_all_declared_by_the_pipeline():
    params = local.load_params(local.catalog.pipeline_params_path("monitoring"))
    local.check_params("monitoring", params | {"current_uri": "x", "data_uri": "y", "model_registry": "z"})


def test_the_simulated_windows_are_seeded_and_drift_only_when_asked():
    import palmerpenguins

    penguins = palmerpenguins.load_penguins()
    stable = local.simulate_window(drift=False, seed=1)
    drifted = local.simulate_window(drift=True, seed=1)
    assert len(stable) == len(drifted) == local.WINDOW_ROWS
    assert list(stable.columns) == list(drifted.columns) == list(penguins.columns)
    assert local.simulate_window(drift=True, seed=1).equals(drifted)
    assert not local.simulate_window(drift=True, seed=2).equals(drifted)
    # Stable: rows of the dataset itself, no shift.
    assert not stable.duplicated().any()
    assert stable.merge(penguins, how="left", indicator=True)["_merge"].eq("both").all()
    # Drifted: numeric features shifted by about 1.5 std, the island mix moved off Biscoe.
    for column in local.DRIFT_SHIFT_COLUMNS:
        shift = (drifted[column].mean() - penguins[column].mean()) / penguins[column].std()
        assert 1.0 < shift < 2.2, (column, shift)
    assert (drifted["island"] == "Biscoe").mean() < 0.25 < (penguins["island"] == "Biscoe").mean()
    assert (drifted["island"] == "Torgersen").mean() > 0.3
