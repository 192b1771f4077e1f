"""The `mlstages` command line: help, compile --check, and clear errors for bad parameters."""

from __future__ import annotations

import pytest

from mlstages.pipelines import cli, local


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
    code = cli.main(["serve", "--workdir", str(tmp_path), "--name", "nothing-here"])
    assert code == 2
    assert "no champion for 'nothing-here'" in capsys.readouterr().err
