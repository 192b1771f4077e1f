"""Batch scoring on a Dask cluster: each worker scores whole parts of the dataset and writes their
shards itself, so neither the rows nor the predictions travel through the task.

A part's batches are the batches the in-process loop reads from that part (``iter_frames`` over
the part's file), so the rows, their order within a shard and the predictions are the same; only
the request ids differ in shape: ``<run key>-<part>-<batch in the part>``, as no worker knows how
many batches the parts before its own hold.

A part whose model refuses a batch deletes its own shards and returns the error instead of raising
it, so the task learns which shards the other parts wrote and deletes them too: a failed run
leaves no shards for monitoring to mistake for a whole one. (A worker that dies mid-part leaves
that part's shards: the run fails with Dask's KilledWorker, and the shards are under the run's
request prefix.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlstages.components.batch_predict.batch_predict import ScoredRows, ScoringJob, _remove, iter_frames
from mlstages.components.common.engine import Engine
from mlstages.components.common.errors import MlstagesError


def score_part(
    shard: tuple[str, int, int], *, job: ScoringJob, model: Any, request_prefix: str
) -> ScoredRows | MlstagesError:
    """Score one part (its file, its first row's position, its number) and write its shards, as
    the task's loop does (``ScoringJob.score_frames``); runs on a worker. A refused batch is
    returned, its part's shards already deleted."""
    from mlstages.components.common.dataset_files import open_part

    file, start, number = shard
    frames = iter_frames(open_part(file, job.what), job.columns, job.batch_rows)
    try:
        return job.score_frames(model, frames, start, f"{request_prefix}-{number:05d}-", _now)
    except MlstagesError as exc:
        return exc


def score_parts(engine: Engine, job: ScoringJob, model: Any, path: Any, request_prefix: str) -> ScoredRows:
    """Score every part of the dataset at ``path`` on ``engine``'s workers: the shards in part
    order, the rows and batches scored, the predicted classes' counts."""
    from mlstages.components.common.dataset_files import part_starts

    shards = [(file, start, n) for n, (file, start) in enumerate(part_starts(path, what=job.what))]
    parts = engine.map(score_part, shards, job=job, model=model, request_prefix=request_prefix)
    scored = [p for p in parts if isinstance(p, ScoredRows)]
    failed = [p for p in parts if not isinstance(p, ScoredRows)]
    if failed:
        _remove([uri for p in scored for uri in p.shards])
        raise failed[0]
    total = ScoredRows()
    for part in scored:
        total.shards += part.shards
        total.rows += part.rows
        total.batches += part.batches
        for value, count in part.counts.items():
            total.counts[value] = total.counts.get(value, 0) + count
    return total


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
