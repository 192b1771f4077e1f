"""How much memory a task may use, and how many rows fit in a share of it.

A stage that must hold rows (fitting the preprocessor, the search, the final refit) holds a seeded
sample sized from this allowance instead of the whole table, so a 50M-row dataset trains on one
pod. The allowance is, in order: ``$MLSTAGES_MEMORY_MB``, the cgroup's memory limit (a Kubernetes
memory limit, a ``podman --memory``), and otherwise DEFAULT_ALLOWANCE_BYTES, never more than the
machine's memory. Without a limit a task still keeps to 4 GiB: kfp.local runs tasks side by side
on a laptop, and a pod's limit is usually of that order.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from mlstages.components.common.errors import ParameterError

MEMORY_ENV = "MLSTAGES_MEMORY_MB"
DEFAULT_ALLOWANCE_BYTES = 4 << 30
MIB = 1 << 20
_CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages).
_NO_LIMIT = 1 << 60


def cgroup_memory_limit(root: Path = _CGROUP_ROOT) -> int | None:
    """This process's cgroup memory limit in bytes, or None if it has none."""
    for file in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            raw = file.read_text().strip()
        except OSError:
            continue
        if raw == "max":
            return None
        try:
            value = int(raw)
        except ValueError:
            continue
        return None if value <= 0 or value >= _NO_LIMIT else value
    return None


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


# What a task process holds before it holds a row: the interpreter, numpy, pandas, pyarrow,
# scikit-learn and the suite's modules. Measured: 265 MiB RSS once train's component and logic
# modules are imported (167 MiB of it anonymous). Sizing rows from the whole allowance ignored it,
# which at 1 GiB took train on a 150-column table to 993 MiB of its 1,024.
PROCESS_BASELINE_BYTES = 256 * MIB


def memory_allowance(root: Path = _CGROUP_ROOT) -> int:
    """The bytes this task may use."""
    configured = os.environ.get(MEMORY_ENV, "").strip()
    if configured:
        try:
            value = int(configured)
        except ValueError:
            value = 0
        if value < 64:
            raise ParameterError(f"${MEMORY_ENV}={configured!r} must be a whole number of MiB, at least 64")
        return value * MIB
    limit = cgroup_memory_limit(root)
    allowance = limit if limit is not None else DEFAULT_ALLOWANCE_BYTES
    machine = physical_memory()
    return min(allowance, machine) if machine else allowance


def working_memory() -> int:
    """The part of the allowance a task's rows, matrices and summaries may take: the allowance less
    PROCESS_BASELINE_BYTES, at least a quarter of it (an allowance below 342 MiB leaves a process
    little room whatever it does; its rows then get a quarter)."""
    allowance = memory_allowance()
    return max(allowance // 4, allowance - PROCESS_BASELINE_BYTES)


# A fitted transformer's statistics (medians, quantile bounds, the frequent categories, scales,
# the derived features' bins and the selection's scores) are settled long before this many rows,
# while fitting holds about eight times the raw rows (measured at 1M rows x 25 columns: 2.6 GB
# for a 706k-row sample): without a cap, the fit alone took 6x the dataset's memory.
DEFAULT_FIT_ROWS = 200_000
# The share of the allowance a fitting sample's raw rows may take: fitting copies them several
# times (imputed, encoded, scaled blocks).
FIT_MEMORY_SHARE = 0.08


def fit_rows(bytes_per_row: float, max_fit_rows: int = 0) -> int:
    """The rows a transformer is fitted on: ``max_fit_rows`` when given, else as many as the
    allowance takes (FIT_MEMORY_SHARE), at most DEFAULT_FIT_ROWS."""
    if max_fit_rows:
        return max_fit_rows
    return min(DEFAULT_FIT_ROWS, rows_within(FIT_MEMORY_SHARE, bytes_per_row, floor=10_000))


def rows_within(share: float, bytes_per_row: float, *, floor: int = 1_000) -> int:
    """How many rows of ``bytes_per_row`` fit in ``share`` of the working memory (at least ``floor``)."""
    if bytes_per_row <= 0:
        raise ValueError(f"bytes_per_row={bytes_per_row} must be positive")
    return max(floor, int(working_memory() * share / bytes_per_row))


def release_unused() -> None:
    """Give the memory freed since the last call back to the system: Arrow's pool (mimalloc keeps
    freed blocks for Arrow's own next read) and the C heap (glibc keeps small freed blocks).

    A task streams a dataset (Arrow and pandas buffers, freed batch after batch) and then fits
    (numpy and scikit-learn, through malloc): freed Arrow memory is not reused by malloc, and
    neither is counted out of the process's RSS until released. Measured on train at 1 GiB, a
    300k x 150 table: 875 MiB after building a 128 MiB matrix, 380 MiB after this. Called when a
    streamed pass ends (``dataset_files.iter_batches``, ``dataset_positions.iter_positions``)."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    _malloc_trim()(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int]:
    """glibc's malloc_trim, from the C library the process already has, or a no-op where there is
    none (musl and macOS have no such call)."""
    function = getattr(ctypes.CDLL(None), "malloc_trim", None)
    return function or (lambda _pad: 0)
