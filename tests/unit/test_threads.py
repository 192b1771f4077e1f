"""The CPU allowance of a task and the thread caps that follow from it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlstages.components.common import threads
from mlstages.components.common.errors import ParameterError


def _cgroup(tmp_path, text: str):
    (tmp_path / "cpu.max").write_text(text)
    return tmp_path


def test_a_cgroup_v2_quota_is_read_in_cpus(tmp_path):
    assert threads.cgroup_cpu_quota(_cgroup(tmp_path, "250000 100000\n")) == 2.5
    assert threads.cgroup_cpu_quota(_cgroup(tmp_path, "max 100000\n")) is None


def test_a_cgroup_v1_quota_is_read_in_cpus(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_quota(tmp_path) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.cgroup_cpu_quota(tmp_path) is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert threads.cgroup_cpu_quota(tmp_path) is None


def test_the_allowance_is_the_smallest_known_limit(tmp_path, monkeypatch):
    monkeypatch.delenv(threads.CPUS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    # A 1500m pod limit on a 64-core node: 2 threads, not 64.
    assert threads.cpu_allowance(root=_cgroup(tmp_path, "150000 100000")) == 2
    monkeypatch.setenv(threads.CPUS_ENV, "1")
    assert threads.cpu_allowance(root=_cgroup(tmp_path, "150000 100000")) == 1
    # An explicit n_jobs wins over everything; -1 means the allowance.
    assert threads.cpu_allowance(8, root=tmp_path) == 8
    assert threads.cpu_allowance(-1, root=_cgroup(tmp_path, "max 100000")) == 1


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True])
def test_a_bad_n_jobs_is_named(n_jobs):
    with pytest.raises(ParameterError, match="n_jobs"):
        threads.cpu_allowance(n_jobs)


def test_a_bad_cpus_setting_is_named(monkeypatch):
    monkeypatch.setenv(threads.CPUS_ENV, "two")
    with pytest.raises(ParameterError, match=threads.CPUS_ENV):
        threads.cpu_allowance()


def test_limit_threads_caps_blas_and_openmp_in_a_fresh_process():
    # In a child process, so this test run's own thread pools are left alone.
    code = (
        "import numpy, sklearn\n"
        "from threadpoolctl import threadpool_info\n"
        "from mlstages.components.common.threads import limit_threads\n"
        "n = limit_threads(1)\n"
        "import os\n"
        "assert n == 1 and os.environ['OMP_NUM_THREADS'] == '1', n\n"
        "pools = threadpool_info()\n"
        "assert pools and all(p['num_threads'] == 1 for p in pools), pools\n"
        "print('ok', len(pools))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_a_busy_machine_gets_fewer_threads_than_the_allowance(tmp_path, monkeypatch):
    monkeypatch.delenv(threads.CPUS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "_CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(threads, "cpu_allowance", lambda n_jobs=None: 4 if n_jobs in (None, -1) else n_jobs)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert threads.idle_cpus() == 4 and threads.task_threads() == 4
    # Other work keeps 2.7 of the 4 CPUs busy: 1 is left, and barrier-bound OpenMP code is faster
    # on 1 thread than on threads that wait for a core.
    monkeypatch.setattr(os, "getloadavg", lambda: (2.7, 2.0, 1.0))
    assert threads.idle_cpus() == 1 and threads.task_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert threads.task_threads() == 1
    # A number the user fixed is kept, however busy the machine.
    assert threads.task_threads(3) == 3
    monkeypatch.setenv(threads.CPUS_ENV, "2")
    assert threads.task_threads() == 4  # the stand-in allowance ignores the variable; the load does not apply


def test_without_a_load_average_the_allowance_is_used(monkeypatch):
    def unknown():
        raise OSError("no load average here")

    monkeypatch.delenv(threads.CPUS_ENV, raising=False)
    monkeypatch.setattr(os, "getloadavg", unknown)
    monkeypatch.setattr(threads, "cpu_allowance", lambda n_jobs=None: 2)
    assert threads.idle_cpus() is None and threads.task_threads() == 2
