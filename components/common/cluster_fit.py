"""LightGBM fitted on every row of a dataset on the Dask engine (``engine.open_engine``).

The sibling of engine.py and, with it, the only module that imports Dask (and lightgbm.dask). The
caller gives the dataset's parts and a function that reads and transforms one part into its
feature matrix and labels; each worker runs that function on its parts and keeps the result, so
the rows are never in the task's process. LightGBM's Dask estimator then trains one model over
all the workers' rows (data-parallel: each worker builds histograms of its rows, and LightGBM's
own network sums them), and ``to_local`` gives the plain ``LGBMClassifier``/``LGBMRegressor`` that
a scikit-learn Pipeline serves, with nothing of Dask in it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlstages.components.common.engine import Engine

# Set by lightgbm.dask on the estimator it returns (to_local keeps them).
_NETWORK_PARAMS = ("num_threads", "time_out", "tree_learner", "machines", "local_listen_port", "num_machines")


@dataclass(frozen=True)
class Part:
    """A dataset part as the workers read it: its file, the position of its first row in the
    dataset (``dataset_files.part_starts``) and its rows."""

    file: str
    start: int
    rows: int


@dataclass(frozen=True)
class ClusterFit:
    """The fitted estimator (a plain LightGBM one) and how it was fitted."""

    estimator: Any
    rows: int
    parts: int
    workers: int
    load_seconds: float
    fit_seconds: float


def fit_lightgbm(
    engine: Engine,
    parts: Sequence[Part],
    load_part: Callable[..., tuple[np.ndarray, np.ndarray]],
    *,
    task: str,
    params: Mapping[str, Any],
    n_features: int,
    label_dtype: Any,
    shared: Mapping[str, Any],
) -> ClusterFit:
    """LightGBM with ``params`` fitted on every row of ``parts`` on ``engine``'s cluster.

    ``load_part(file, start, rows, **shared)`` runs on a worker and returns that part's float64
    features (``rows`` x ``n_features``) and labels (``label_dtype``). ``shared`` (the fitted
    feature pipeline, say) goes to every worker once. ``task`` is classification or regression.
    """
    import dask
    import dask.array as da
    from distributed import wait
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    if not engine.distributed:
        raise ValueError("fit_lightgbm needs a Dask engine (engine='dask' or a scheduler address)")
    client = engine.client
    engine.check_importable(load_part)
    started = time.monotonic()
    sent = {k: client.scatter([v], broadcast=True)[0] for k, v in shared.items()}
    # On a cluster's pods a part's file is its gs:// URI, downloaded by the worker (engine.located).
    load = dask.delayed(engine.worker_function(load_part), pure=True, nout=2)
    features, labels = [], []
    for part in parts:
        x, y = load(engine.located(part.file), part.start, part.rows, **sent)
        features.append(da.from_delayed(x, shape=(part.rows, n_features), dtype=np.float64))
        labels.append(da.from_delayed(y, shape=(part.rows,), dtype=label_dtype))
    # Persisted: each part read and transformed once, on a worker, and kept there for the fit
    # (LightGBM's Dask estimator groups the parts by the worker holding them).
    x_all, y_all = client.persist([da.concatenate(features), da.concatenate(labels)])
    wait([x_all, y_all])
    loaded = time.monotonic()
    estimator_type = DaskLGBMClassifier if task == "classification" else DaskLGBMRegressor
    # num_threads follows each worker's own thread count (lightgbm.dask sets it), not the task's.
    options = {k: v for k, v in params.items() if k not in ("n_jobs", "num_threads")}
    distributed = estimator_type(client=client, **options)
    with warnings.catch_warnings():
        # "Parameter n_jobs will be ignored": each worker's thread count is used, as intended.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored", category=UserWarning)
        distributed.fit(x_all, y_all)
    local = distributed.to_local()
    # The network settings lightgbm.dask added are the cluster's, not the model's: without them the
    # local estimator's parameters are the in-task one's, and predicting uses its own n_jobs.
    for name in _NETWORK_PARAMS:
        local._other_params.pop(name, None)
        local.__dict__.pop(name, None)
    fitted = time.monotonic()
    del x_all, y_all  # the workers drop the parts once nothing refers to them
    return ClusterFit(
        estimator=local,
        rows=sum(p.rows for p in parts),
        parts=len(parts),
        workers=len(engine.workers),
        load_seconds=loaded - started,
        fit_seconds=fitted - loaded,
    )
