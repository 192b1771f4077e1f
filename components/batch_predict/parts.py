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
from dataclasses import dataclass, field
from typing import Any

from mlstages.components.batch_predict.batch_predict import (
    ScoringJob,
    _count,
    _remove,
    _write_shard,
    iter_frames,
)
from mlstages.components.common.engine import Engine
from mlstages.components.common.errors import MlstagesError


@dataclass
class PartScores:
    """What one part's scoring wrote, or the error that stopped it."""

    shards: list[str] = field(default_factory=list)
    rows: int = 0
    batches: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    error: MlstagesError | None = None


def score_part(
    shard: tuple[str, int, int], *, job: ScoringJob, model: Any, request_prefix: str
) -> PartScores:
    """Score one part (its file, its first row's position, its number) and write its shards;
    runs on a worker."""
    from mlstages.components.common.dataset_files import _open

    file, start, number = shard
    result = PartScores()
    try:
        for frame in iter_frames(_open(file, job.what), job.columns, job.batch_rows):
            now = dt.datetime.now(dt.timezone.utc)
            request_id = f"{request_prefix}-{number:05d}-{result.batches:06d}"
            table, predictions = job.score(model, frame, start + result.rows, request_id, now)
            result.shards.append(_write_shard(job.output_uri, table, now))
            if job.is_classifier:
                _count(result.counts, predictions)
            result.rows += len(frame)
            result.batches += 1
    except MlstagesError as exc:
        _remove(result.shards)
        return PartScores(error=exc)
    return result


def score_parts(
    engine: Engine, job: ScoringJob, model: Any, path: Any, request_prefix: str
) -> tuple[list[str], int, int, dict[str, int]]:
    """Score every part of the dataset at ``path`` on ``engine``'s workers: the shards in part
    order, the rows and batches scored, the predicted classes' counts."""
    from mlstages.components.common.dataset_files import part_starts

    shards = [(file, start, n) for n, (file, start) in enumerate(part_starts(path, what=job.what))]
    parts = engine.map(score_part, shards, job=job, model=model, request_prefix=request_prefix)
    failed = [p.error for p in parts if p.error is not None]
    written = [uri for p in parts for uri in p.shards]
    if failed:
        _remove(written)
        raise failed[0]
    counts: dict[str, int] = {}
    for part in parts:
        for value, count in part.counts.items():
            counts[value] = counts.get(value, 0) + count
    return written, sum(p.rows for p in parts), sum(p.batches for p in parts), counts
