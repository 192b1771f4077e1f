"""Fixtures shared by the unit tests that run on a real Dask cluster (test_engine.py,
test_full_refit.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two single-threaded worker processes, one per test module; tests reach it
    by its scheduler's address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as running:
        yield running
