"""Progress lines a long task writes while it works, for whoever watches its log.

A training search on a wide table can run for most of an hour; without these lines its log (the
Kubeflow UI's Logs tab, ``task.log`` of a local run) stays empty the whole time. A line reads
``[mlstages 21:04:05] searching gradient_boosting: ...`` (UTC), on standard error; the task
(the Kubeflow UI's page of it, or ``mlstages run``'s line) says whose.

The logic modules report through the ``mlstages.progress`` logger; only a task turns it into lines
(``to_task_log``, called by the component), so the same functions called from a notebook or a test
stay quiet unless the caller configures logging. kfp's executor sets the root logger to INFO with
its own "[KFP Executor ...]" prefix: the task's handler stops the lines from going there too.
``mlstages run`` recognises the lines (``LINE``) and shows them under the running task.
"""

from __future__ import annotations

import logging
import re
import sys
import time

LOGGER_NAME = "mlstages.progress"
# What a progress line looks like in a task's output: its time (UTC) and message.
LINE = re.compile(r"^\[mlstages (?P<time>\d\d:\d\d:\d\d)\] (?P<message>.+)$")

logger = logging.getLogger(LOGGER_NAME)


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime


class _TaskLogHandler(logging.StreamHandler):
    """The handler ``to_task_log`` adds, known by its class so that it is added once."""


def to_task_log() -> None:
    """Write this process's progress lines to standard error, once however often it is called."""
    if any(isinstance(handler, _TaskLogHandler) for handler in logger.handlers):
        return
    handler = _TaskLogHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("[mlstages %(asctime)s] %(message)s", datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def report(message: str) -> None:
    """One progress line (``to_task_log`` decides whether it is written anywhere)."""
    logger.info(message)


class Throttle:
    """Says when a repeated event is worth a line: at most once per ``every_seconds``."""

    def __init__(self, every_seconds: float = 60.0) -> None:
        self.every_seconds = every_seconds
        self._last = time.monotonic()

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self._last < self.every_seconds:
            return False
        self._last = now
        return True


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: 4.2 s, 12 min 5 s, 1 h 3 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# At most one line a minute across every streamed pass a process makes: at 50M rows a single pass
# runs for minutes (evaluate read its 10M-row test split for 8.5, batch_predict scored for 3) and
# said nothing until its end. Passes of under a minute, every pass of a small table, say nothing.
_STREAM_THROTTLE = Throttle()
# Per action: when its current pass started (monotonic seconds) and the rows it had reached.
_PASSES: dict[str, tuple[float, int]] = {}


def streamed(action: str, rows: int, total: int | None = None, unit: str = "rows") -> None:
    """A line, at most once a minute, on how far a streamed pass has gone: ``reading the test
    split: 3,145,728 of 10,000,000 rows (31%)``; without ``total``, the rows so far. ``unit``
    names what is counted (a cluster's pass counts parts). A pass says nothing in its first
    ``every_seconds``, however long ago the process's last line was: a pass of under a minute is
    silent. A call with no more rows than the action's previous call starts another pass of it."""
    now = time.monotonic()
    started, seen = _PASSES.get(action, (now, rows))
    if rows <= seen:  # the first call, or the start of another pass of the same action
        started = now
    _PASSES[action] = (started, rows)
    if now - started < _STREAM_THROTTLE.every_seconds or not _STREAM_THROTTLE.due(now):
        return
    if total:
        report(f"{action}: {rows:,} of {total:,} {unit} ({rows / total:.0%})")
    else:
        report(f"{action}: {rows:,} {unit} so far")
