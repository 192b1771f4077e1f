"""How many CPUs a task may use, and keeping BLAS, OpenMP and joblib within that.

A pod with a CPU limit of 2 on a 64-core node still sees 64 cores in ``os.cpu_count()``; OpenBLAS,
OpenMP (HistGradientBoosting, LightGBM) and joblib then start 64 threads each and the kernel throttles
the pod to its quota, which makes a small fit take minutes. Every task therefore asks for its
allowance once, first thing, and caps every thread pool to it.

The allowance is, in order: an explicit ``n_jobs`` (a parameter), ``$MLSTAGES_CPUS``, the cgroup's CPU
quota (a Kubernetes CPU limit, a ``podman --cpus``), the CPUs the process may run on
(``sched_getaffinity``), and ``os.cpu_count()``; the smallest of those that are known.

An allowance is an upper bound, not a promise: OpenMP code such as HistGradientBoosting meets its
threads at a barrier many times per tree, so a thread that waits for a core stalls the others. On
a 2-core machine busy with other work, ``train`` with 2 threads took 3 to 24 times as long as with
1 (benchmarks/results/threads.md). So, unless ``n_jobs`` or ``$MLSTAGES_CPUS`` fixes the number,
a task uses no more threads than the machine's idle CPUs over the last minute (``os.getloadavg``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from mlstages.components.common.errors import ParameterError

CPUS_ENV = "MLSTAGES_CPUS"
# Read by OpenMP, OpenBLAS, MKL, BLIS, Apple's Accelerate, numexpr and joblib's loky when they start:
# setting them covers libraries loaded after the call; threadpoolctl covers those already loaded.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "LOKY_MAX_CPU_COUNT",
)
_CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = _CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (2.5 for a 2500m limit), or None if unlimited."""
    v2 = root / "cpu.max"  # cgroup v2: "<quota> <period>" or "max <period>"
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def cpu_allowance(n_jobs: int | None = None, root: Path = _CGROUP_ROOT) -> int:
    """The number of CPUs this task may keep busy (at least 1)."""
    if n_jobs is not None and n_jobs != -1:
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise ParameterError(f"parameter n_jobs={n_jobs!r} must be -1 (all allowed CPUs) or positive")
        return n_jobs
    known: list[int] = []
    configured = os.environ.get(CPUS_ENV, "").strip()
    if configured:
        try:
            value = int(configured)
        except ValueError:
            value = 0
        if value < 1:
            raise ParameterError(f"${CPUS_ENV}={configured!r} must be a positive whole number of CPUs")
        known.append(value)
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        known.append(max(1, math.ceil(quota)))
    try:
        known.append(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        pass
    known.append(os.cpu_count() or 1)
    return max(1, min(known))


def idle_cpus() -> int | None:
    """The CPUs of this machine that other work left idle over the last minute (at least 1), or
    None where the load average is unknown."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return max(1, math.floor((os.cpu_count() or 1) - load + 0.5))


def task_threads(n_jobs: int | None = None) -> int:
    """The threads a task uses: the allowance when ``n_jobs`` or ``$MLSTAGES_CPUS`` sets it, else
    the allowance or the idle CPUs, whichever is smaller."""
    cpus = cpu_allowance(n_jobs)
    fixed = (n_jobs is not None and n_jobs != -1) or os.environ.get(CPUS_ENV, "").strip()
    idle = None if fixed else idle_cpus()
    return cpus if idle is None else min(cpus, idle)


def limit_threads(n_jobs: int | None = None) -> int:
    """Cap every thread pool of this process at ``task_threads``; return that number.

    Call it first in a task, before the heavy imports where possible: the environment variables
    reach libraries loaded later, threadpoolctl the ones already loaded.
    """
    cpus = task_threads(n_jobs)
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(cpus)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn depends on it; without scikit-learn nothing to cap
        return cpus
    threadpool_limits(limits=cpus)
    return cpus
