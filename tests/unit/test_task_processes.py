"""Local runs: a failed task ends the command with one line, and stopping a run stops its tasks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("no_external_network")


def test_a_failed_task_ends_the_command_with_one_line_and_no_traceback(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstages.tooling.cli",
            "run",
            "training",
            "--workdir",
            str(tmp_path),
            # A parameter checked only on the data's values (a wrong column name is refused before
            # any task runs: tests/unit/test_precheck.py): penguins have missing values.
            "--set",
            "max_missing_share=0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mlstages: error: task validate-data failed: data validation failed")
    assert "missing" in last
    log = Path(last.rsplit("(its log: ", 1)[1].rstrip(")"))
    assert log.name == "task.log" and "ValidationFailed" in log.read_text()
    # The task's own output went to its log, not to the terminal.
    assert "ephemeral_component.py" not in done.stdout


_HANGING_RUN = textwrap.dedent(
    """
    import signal, sys
    from kfp import dsl, local
    from mlstages.tooling.task_processes import TaskSupervisor, supervised_tasks

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def hang(pids: str):
        import os, subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        with open(pids, "w") as handle:
            handle.write(f"{os.getpid()} {child.pid}")
        while True:  # a task that never ends, with a child of its own
            time.sleep(1)

    @dsl.pipeline
    def hanging(pids: str):
        hang(pids=pids)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
    supervisor = TaskSupervisor()
    try:
        with supervised_tasks(supervisor):
            hanging(pids=sys.argv[1])
    except KeyboardInterrupt:
        print("stopped", supervisor.stopped)
        sys.exit(130)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it runs nothing.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"


def test_stopping_a_run_stops_the_hanging_task_and_the_processes_it_started(tmp_path):
    pids_file = tmp_path / "pids"
    script = tmp_path / "hanging_run.py"  # kfp reads a component's source from its file
    script.write_text(_HANGING_RUN)
    driver = subprocess.Popen(
        [sys.executable, str(script), str(pids_file), str(tmp_path / "root")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (pids_file.exists() and len(pids_file.read_text().split()) == 2):
            assert driver.poll() is None, driver.stdout.read()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.2)
        task_pid, child_pid = map(int, pids_file.read_text().split())
        assert _alive(task_pid) and _alive(child_pid)

        driver.send_signal(signal.SIGTERM)
        output, _ = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, output
    assert "stopped ['hang']" in output
    deadline = time.monotonic() + 10
    while (_alive(task_pid) or _alive(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(task_pid) and not _alive(child_pid), "the task or its child outlived the run"


_TWO_RUNS_IN_ONE_ROOT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kfp import dsl, local
    from mlstages.tooling.local import run_names

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def other_run_starts(root: str):
        from pathlib import Path
        # Another run in the same pipeline root makes a newer folder while this one runs.
        (Path(root) / "zzz-another-run-started-later").mkdir(parents=True)

    @dsl.pipeline
    def short(root: str):
        other_run_starts(root=root)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[1])
    with run_names() as names:
        short(root=sys.argv[1])
    print("own:", names[0])
    print("newest:", sorted(p.name for p in Path(sys.argv[1]).iterdir())[-1])
    """
)


def test_a_run_knows_its_own_folder_when_another_run_makes_a_newer_one(tmp_path):
    script = tmp_path / "two_runs.py"  # kfp reads a component's source from its file
    script.write_text(_TWO_RUNS_IN_ONE_ROOT)
    root = tmp_path / "root"
    done = subprocess.run(
        [sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    own = done.stdout.split("own: ")[1].split()[0]
    assert own.startswith("short-") and (root / own / "other-run-starts").is_dir()
    assert "newest: zzz-another-run-started-later" in done.stdout


_REPORTING_RUN = textwrap.dedent(
    """
    import json, sys
    from kfp import dsl, local
    from mlstages.tooling.task_processes import TaskSupervisor, supervised_tasks

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def long_work():
        from mlstages.components.common.progress import report, to_task_log

        to_task_log()
        to_task_log()  # a second call adds no second handler
        report("halfway there")
        print("[mlstages] not a progress line")

    @dsl.pipeline
    def reporting():
        long_work()

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[1])
    shown = []
    supervisor = TaskSupervisor(progress=shown.append)
    with supervised_tasks(supervisor):
        reporting()
    print("SHOWN", json.dumps(shown))
    """
)


def test_a_tasks_progress_lines_are_shown_under_it_once_and_kept_in_its_log(tmp_path):
    from mlstages.components.common.progress import LINE

    script = tmp_path / "reporting_run.py"  # kfp reads a component's source from its file
    script.write_text(_REPORTING_RUN)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "root")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout.split("SHOWN ", 1)[1])  # what the terminal was shown
    assert shown[0].startswith("  long-work ") and shown[0].endswith(" halfway there")
    assert shown[0].split()[:1] == ["long-work"] and shown[0].endswith(" halfway there")
    assert shown[1].startswith("  long-work") and "done in" in shown[1]
    log = next((tmp_path / "root").rglob("long-work/task.log")).read_text()
    lines = [line for line in log.splitlines() if "halfway there" in line]
    # One line in the progress format, not also kfp's "[KFP Executor ...]" copy of it.
    assert len(lines) == 1 and LINE.match(lines[0]), lines
