"""How much memory a task may use, and how many rows fit in a share of it.

A stage that must hold rows (fitting the preprocessor, the search, the final refit) holds a seeded
sample sized from this allowance instead of the whole table, so a 50M-row dataset trains on one
pod. The allowance is, in order: ``$MLSTAGES_MEMORY_MB``, the cgroup's memory limit (a Kubernetes
memory limit, a ``podman --memory``), and otherwise DEFAULT_ALLOWANCE_BYTES, never more than the
machine's memory. Without a limit a task still keeps to 4 GiB: kfp.local runs tasks side by side
on a laptop, and a pod's limit is usually of that order.
"""

from __future__ import annotations

import os
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
    """How many rows of ``bytes_per_row`` fit in ``share`` of the allowance (at least ``floor``)."""
    if bytes_per_row <= 0:
        raise ValueError(f"bytes_per_row={bytes_per_row} must be positive")
    return max(floor, int(memory_allowance() * share / bytes_per_row))
