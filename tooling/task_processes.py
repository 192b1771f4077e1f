"""The processes of a local run's tasks: each one's log in a file, its error in one line, and
stopped with all its children when the run is stopped.

kfp.local's SubprocessRunner starts every task with ``subprocess.Popen`` and copies its output to
the terminal (800 to 1,300 lines for a training run), and a failure ends in kfp's own 27-line
traceback, 30 lines below the suite's message. ``supervised_tasks`` replaces kfp's
``run_local_subprocess`` (the one function that starts a task; the same depth as the podman
exit-code guard in ``containers``) for the length of a run with one that:

- starts the task in its own process group, so stopping the run stops the task and every process
  it started (a hung reader, joblib workers, a model server);
- writes everything the task prints to ``<run folder>/<task>/task.log`` and shows the terminal one
  line per task, and the progress lines a long task writes (``common/progress.py``) under it
  (``--verbose`` shows the whole output as before);
- picks the suite's own error (the last ``…Error: message`` line of the traceback) out of a failed
  task's output, so the CLI ends with that one line, the task's name and its log's path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlstages.components.common.progress import LINE as PROGRESS_LINE

LOG_FILE = "task.log"
# The last line of a Python traceback: "package.module.ErrorType: message".
_ERROR_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*(?P<type>[A-Za-z_]\w*(?:Error|Exception|Failed|Mismatch|NotFound|Exit)): (?P<message>.+)$"
)
# Seconds a stopped task has to exit on SIGTERM before it gets SIGKILL.
STOP_GRACE_SECONDS = 5.0


@dataclass
class TaskFailure:
    """A task that exited non-zero: its name, the suite's message, and where its log is."""

    task: str
    message: str
    error_type: str
    log: Path
    exit_code: int


@dataclass
class TaskSupervisor:
    """What the replacement of kfp's task starter knows: the running task, the finished ones."""

    verbose: bool = False
    progress: Callable[[str], None] = print
    failures: list[TaskFailure] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    task_dirs: list[Path] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    _current: subprocess.Popen | None = None
    _current_task: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False

    # -- the replacement for kfp.local.subprocess_task_handler.run_local_subprocess ---------------

    def run(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        if self.stopping:
            return 1
        env = {**os.environ, **(env_vars or {})}
        task, task_dir = _task_of(full_command)
        task_dir.mkdir(parents=True, exist_ok=True)
        self.task_dirs.append(task_dir)
        log_path = task_dir / LOG_FILE
        started = time.monotonic()
        last_error: list[str] | None = None  # [type, message lines...] of the last exception printed
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                full_command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                env=env,
                start_new_session=True,  # its own process group: stop() reaches its children too
            )
            with self._lock:
                self._current, self._current_task = process, task
            try:
                assert process.stdout is not None
                for line in iter(process.stdout.readline, ""):
                    log.write(line)
                    if self.verbose:
                        print(line, end="")
                    text = line.rstrip("\n")
                    news = PROGRESS_LINE.match(text)
                    if news and not self.verbose:
                        self.progress(f"  {task:<28} {news['time']} {news['message']}")
                    found = _ERROR_LINE.match(text)
                    if found:
                        last_error = [found["type"], found["message"]]
                    elif text.startswith("Traceback ("):
                        last_error = None
                    elif last_error is not None and text.strip():
                        # A message of several lines: the traceback prints the rest after the first.
                        last_error.append(text.strip())
                code = process.wait()
            except BaseException:
                # Interrupted (Ctrl-C, SIGTERM turned into KeyboardInterrupt, any error here): the task
                # and every process it started go with us, never left running as orphans.
                self.stopping = True
                stop_process_group(process)
                self.stopped.append(task)
                raise
            finally:
                with self._lock:
                    self._current, self._current_task = None, ""
        elapsed = time.monotonic() - started
        if code == 0:
            self.finished.append(task)
            self.progress(f"  {task:<28} done in {elapsed:5.1f} s")
        else:
            error_type, message = "", f"exited with code {code} and printed no error"
            if last_error:
                error_type, message = last_error[0], " ".join(last_error[1:])
            if self.stopping:
                error_type, message = "Stopped", "stopped by the user"
            self.failures.append(TaskFailure(task, message, error_type, log_path, code))
            self.progress(f"  {task:<28} FAILED after {elapsed:.1f} s (log: {log_path})")
        return code

    def run_dir(self, pipeline_root: Path) -> Path | None:
        """This run's folder under ``pipeline_root`` (where its tasks wrote), whatever else runs there."""
        for task_dir in self.task_dirs:
            try:
                relative = task_dir.resolve().relative_to(Path(pipeline_root).resolve())
            except ValueError:
                continue
            if relative.parts:
                return Path(pipeline_root).resolve() / relative.parts[0]
        return None

    def stop(self) -> str | None:
        """Stop the running task's whole process group; return its name (None when none ran)."""
        self.stopping = True
        with self._lock:
            process, task = self._current, self._current_task
        if process is None or process.poll() is not None:
            return None
        stop_process_group(process)
        return task


def stop_process_group(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to the process's group, then SIGKILL to what is left after ``grace`` seconds."""
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(group):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _task_of(full_command: list[str]) -> tuple[str, Path]:
    """The task's name and folder, from the executor input kfp passes on the command line (its
    executor_output.json lies in the task's folder of the run)."""
    for index, arg in enumerate(full_command):
        if arg == "--executor_input" and index + 1 < len(full_command):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                output_file = Path(json.loads(full_command[index + 1])["outputs"]["outputFile"])
                return output_file.parent.name, output_file.parent
    return "task", Path.cwd()


@contextlib.contextmanager
def supervised_tasks(supervisor: TaskSupervisor) -> Iterator[TaskSupervisor]:
    """Start every task of kfp.local's SubprocessRunner through ``supervisor`` within the block."""
    from kfp.local import subprocess_task_handler

    original = subprocess_task_handler.run_local_subprocess
    subprocess_task_handler.run_local_subprocess = supervisor.run
    try:
        yield supervisor
    finally:
        subprocess_task_handler.run_local_subprocess = original
