"""The `mlstages` command line: help, compile --check, and clear errors for bad parameters and for
folders it cannot write to."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlstages.components.common.emulator import free_port
from mlstages.tooling import catalog, cli, local, workdir


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


# --- folders the CLI writes to: read-only or full ---------------------------------------------------


def _mlstages(*args: str, runner: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The command as a user runs it, in its own process (``runner`` goes before it)."""
    return subprocess.run(
        [*runner, sys.executable, "-m", "mlstages.tooling.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=catalog.REPO_ROOT,
    )


def _one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mlstages: error: ")
    return lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o555 folder: permissions are not checked")
def test_a_read_only_workdir_is_refused_in_one_line_before_anything_runs(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        run = _one_line_error(_mlstages("run", "--workdir", str(locked / "work")), 2)
        assert run == (
            f"mlstages: error: cannot write to {locked / 'work'}: permission denied; pass --workdir "
            "with a folder you can write to, or make this one writable"
        )
        serve = _one_line_error(_mlstages("serve", "--workdir", str(locked), "--port", str(free_port())), 2)
        assert serve.startswith(
            f"mlstages: error: cannot write to {locked}: permission denied; pass --workdir"
        )
    finally:
        locked.chmod(0o755)


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A folder where a 64 KiB tmpfs is mounted in the command's own user and mount namespaces
    (unshare: no privilege needed where user namespaces are allowed), so a full disk and a read-only
    file system are the kernel's own ENOSPC and EROFS, for root too. Nothing is mounted in this
    process or on the machine."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        probe = subprocess.run(
            [
                "unshare",
                "--map-root-user",
                "--mount",
                "sh",
                "-c",
                'mount -t tmpfs -o size=64k tmpfs "$0"',
                str(disk),
            ],
            capture_output=True,
            timeout=30,
        )
    except FileNotFoundError:
        pytest.skip("no unshare on this machine")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace: {probe.stderr.decode().strip()}")
    return disk


def _on_small_disk(disk: Path, state: str) -> tuple[str, ...]:
    """The runner for _mlstages: the tmpfs mounted on ``disk`` with a folder ``wd`` in it, then
    filled to the last byte ("full") or remounted read-only ("read-only")."""
    prepare = {
        "full": 'head -c 1048576 /dev/zero > "$0/fill" 2>/dev/null; df "$0" | grep -q " 100% "',
        "read-only": 'mount -o remount,ro "$0"',
    }[state]
    script = f'mount -t tmpfs -o size=64k tmpfs "$0" && mkdir "$0/wd" && {prepare} && exec "$@"'
    return ("unshare", "--map-root-user", "--mount", "sh", "-c", script, str(disk))


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_full_disk_under_the_workdir_is_named_in_one_line(small_disk, command):
    options = ("--port", str(free_port())) if command == "serve" else ()
    wd = small_disk / "wd"
    done = _mlstages(command, *options, "--workdir", str(wd), runner=_on_small_disk(small_disk, "full"))
    assert _one_line_error(done, 2) == (
        f"mlstages: error: cannot write to {wd}: no space left on its disk; free some "
        "space or pass --workdir with a folder on another disk"
    )


def test_a_read_only_file_system_is_named_in_one_line(small_disk):
    read_only = _on_small_disk(small_disk, "read-only")
    done = _mlstages("run", "--workdir", str(small_disk / "wd" / "new"), runner=read_only)
    assert _one_line_error(done, 2) == (
        f"mlstages: error: cannot write to {small_disk / 'wd' / 'new'}: the file system is read-only; "
        "pass --workdir with a folder you can write to, or make this one writable"
    )
    # A write refused later, by a command without a workdir: the same kind of line, exit 1.
    settings = catalog.REPO_ROOT / "pipelines" / "settings" / "cluster.example.yaml"
    out = small_disk / "wd" / "out"
    done = _mlstages("compile", "--settings", str(settings), "--output-dir", str(out), runner=read_only)
    assert _one_line_error(done, 1) == (
        f"mlstages: error: cannot write to {out}: the file system is read-only; choose a folder you can "
        "write to, or make this one writable"
    )


def test_the_disk_full_error_names_the_path_and_what_to_do(tmp_path):
    # /dev/full answers every write with the kernel's own ENOSPC.
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with pytest.raises(OSError) as raised, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    assert raised.value.errno == errno.ENOSPC
    message = str(workdir.write_error(tmp_path / "runs", raised.value))
    assert message == (
        f"cannot write to {tmp_path / 'runs'}: no space left on its disk; free some space or pass "
        "--workdir with a folder on another disk"
    )
    assert "another disk" in str(workdir.write_error(tmp_path, raised.value, option=None))


def test_a_file_where_the_workdir_should_be_is_named(tmp_path, capsys):
    (tmp_path / "work").write_text("not a folder")
    assert cli.main(["run", "--workdir", str(tmp_path / "work")]) == 2
    assert capsys.readouterr().err == (
        f"mlstages: error: cannot write to {tmp_path / 'work'}: a file is in the way of a folder there; "
        "pass --workdir with a folder you can write to, or make this one writable\n"
    )


def test_a_writable_workdir_keeps_no_probe_file(tmp_path):
    (tmp_path / "runs").mkdir()
    assert workdir.check_workdir(tmp_path / "work") == tmp_path / "work"
    assert workdir.check_workdir(tmp_path) == tmp_path
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["runs", "work"]
