"""What a component does first, before anything heavy is imported.

BLAS, OpenMP and joblib size their thread pools when they load, so the cap on the task's CPU
allowance (the pod's limit, ``threads.limit_threads``) comes before any of them; then the task's
progress lines are sent to its log (``progress.to_task_log``): a library call reports into nothing
until the task says where its lines go. Imports nothing heavy itself.
"""

from __future__ import annotations

from mlstages.components.common.progress import to_task_log
from mlstages.components.common.threads import limit_threads


def start_task() -> int:
    """Cap this process's thread pools at the task's CPU allowance, then send its progress lines
    to the task's log; return the threads allowed."""
    threads = limit_threads()
    to_task_log()
    return threads
