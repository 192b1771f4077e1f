"""A source's shards streamed into one dataset, a few chunks in memory whatever the source's size.

Each shard is read once (``Shard.first_pass``) while its facts are gathered; each chunk is
written at once under the decision the facts seen so far give (the shard's column types, the
dtypes the shards share, what each object column becomes, the arrow schema). When the last
shard is read and the final decision is the one every chunk was written under, the dataset is
done in one pass: the common case, where the first chunk's types hold to the end. Otherwise
(integers that turn out to have missing values further down, numbers that turn out to be text,
codes with leading zeros) what was written is dropped, and every shard is read again and
written under the final decision (``Shard.final_pass``). Either way the dataset is the one a read
of the whole source into one DataFrame gives, with the same content hash.

Errors that concern the source as a whole (shards whose types do not mix, shards with other
columns, nested values, no rows) are raised after every shard was read, in that order, as the
whole-table read raised them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from mlstages.components.common.dataset_files import DEFAULT_PART_ROWS, DatasetWriter
from mlstages.components.common.errors import InputDataError
from mlstages.components.ingest.column_values import (
    CONFLICT,
    KEEP,
    NESTED,
    TO_FLOAT,
    TO_TEXT,
    ValueFacts,
    apply_action,
    check_shards,
    column_kind,
    common_dtypes,
    normalize_missing,
    refuse_nested,
    to_dtype,
    value_action,
)
from mlstages.components.ingest.shards import Shard, ShardPlan

# The rows of a chunk as read and of a batch as written: 128k rows x 25 columns is about 30 MB in
# pandas, and the dataset's row groups are this size.
BATCH_ROWS = 131_072
BATCH_ROWS_ENV = "MLSTAGES_INGEST_BATCH_ROWS"


def batch_rows_setting() -> int:
    """The rows per chunk: ``$MLSTAGES_INGEST_BATCH_ROWS`` (tests and benchmarks), else BATCH_ROWS."""
    raw = os.environ.get(BATCH_ROWS_ENV, "").strip()
    if not raw:
        return BATCH_ROWS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InputDataError(f"${BATCH_ROWS_ENV}={raw!r} must be a whole number of at least 1")
    return value


@dataclass(frozen=True)
class DatasetPlan:
    """The decision for the whole source: its columns, their dtypes once the shards are put
    together, what each object column becomes (``column_values``' actions) and the arrow type each
    is written as."""

    columns: tuple[str, ...]
    dtypes: tuple[Any, ...]
    actions: tuple[str, ...]
    arrow: tuple[Any, ...]

    def empty(self) -> pd.DataFrame:
        """No rows, the columns with their dtypes."""
        return pd.DataFrame(
            {name: pd.Series([], dtype=dtype) for name, dtype in zip(self.columns, self.dtypes, strict=True)}
        )

    def schema(self) -> Any:
        """The arrow schema (with pandas' metadata) every part of the dataset is written with."""
        import pyarrow as pa

        schema = pa.Schema.from_pandas(self.empty(), preserve_index=False)
        for index, kind in enumerate(self.arrow):
            if kind is not None and schema.field(index).type != kind:
                schema = schema.set(index, schema.field(index).with_type(kind))
        return schema


class Sink(Protocol):
    """Where the batches go: a dataset folder (the component) or a DataFrame (``read_source``)."""

    def start(self, plan: DatasetPlan) -> None: ...

    def write(self, batch: pd.DataFrame) -> None: ...

    def abort(self) -> None: ...


class _Batches:
    """Chunks of any size in, batches of ``rows`` rows out (the last one shorter)."""

    def __init__(self, rows: int, out: Callable[[pd.DataFrame], None]) -> None:
        self.rows = rows
        self.out = out
        self.held: list[pd.DataFrame] = []
        self.count = 0
        self.total = 0

    def add(self, chunk: pd.DataFrame) -> None:
        if not len(chunk):
            return
        self.held.append(chunk)
        self.count += len(chunk)
        self.total += len(chunk)
        while self.count >= self.rows:
            joined = pd.concat(self.held, ignore_index=True) if len(self.held) > 1 else self.held[0]
            self.out(joined.iloc[: self.rows].reset_index(drop=True))
            rest = joined.iloc[self.rows :]
            self.held = [rest] if len(rest) else []
            self.count = len(rest)

    def flush(self) -> None:
        if self.held:
            joined = pd.concat(self.held, ignore_index=True) if len(self.held) > 1 else self.held[0]
            self.out(joined.reset_index(drop=True))
        self.held = []
        self.count = 0


def _triple(plan: ShardPlan) -> tuple[dict[str, Any], dict[str, bool], int]:
    return (
        dict(zip(plan.columns, plan.dtypes, strict=True)),
        dict(zip(plan.columns, plan.missing, strict=True)),
        plan.rows,
    )


def _kinds(plan: ShardPlan) -> dict[str, str]:
    return {
        name: column_kind(dtype, missing)
        for name, dtype, missing in zip(plan.columns, plan.dtypes, plan.missing, strict=True)
    }


def dataset_plan(
    plans: Sequence[ShardPlan],
    names: Sequence[str],
    shown: str,
    *,
    example: Callable[[int, str], Any] | None = None,
) -> DatasetPlan:
    """The final decision for the source from all its shards' plans; the errors, named, when they
    do not fit together."""
    first = plans[0]
    check_shards([_kinds(p) for p in plans], names, shown, example or (lambda shard, column: None))
    for plan, name in zip(plans[1:], names[1:], strict=True):
        if plan.columns != first.columns:
            raise InputDataError(
                f"shard {name} of {shown} has columns {list(plan.columns)}, but {names[0]} has {list(first.columns)}"
            )
    merged = common_dtypes([_triple(p) for p in plans])
    facts = []
    for index in range(len(first.columns)):
        column = ValueFacts()
        for plan in plans:
            column = column.merge(plan.values[index])
        facts.append(column)
    decided = _decide(first.columns, merged, facts, shown, final=True)
    assert decided is not None
    return decided


class _Prefix:
    """The shards read so far, summed up, so that a chunk's decision is one step on top of them
    (a source of a thousand shards would otherwise merge them all again for every chunk)."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.columns: tuple[str, ...] | None = None
        self.fits = True
        self.kinds: dict[str, str] = {}
        self.merged: tuple[dict[str, Any], dict[str, bool], int] | None = None
        self.facts: list[ValueFacts] = []

    def _fits(self, plan: ShardPlan) -> bool:
        if not self.fits or (self.columns is not None and plan.columns != self.columns):
            return False
        kinds = _kinds(plan)
        return all(not kind or self.kinds.get(name, kind) == kind for name, kind in kinds.items())

    def _merged(self, plan: ShardPlan) -> tuple[dict[str, Any], dict[str, bool], int]:
        triple = _triple(plan)
        if self.merged is None:
            return triple
        dtypes = common_dtypes([self.merged, triple])
        missing = {name: self.merged[1][name] and triple[1][name] for name in dtypes}
        return dtypes, missing, self.merged[2] + triple[2]

    def with_shard(self, plan: ShardPlan) -> DatasetPlan | None:
        """The decision were ``plan`` the last shard; None when the shards do not fit together."""
        if not self._fits(plan):
            return None
        facts = (
            [f.merge(v) for f, v in zip(self.facts, plan.values, strict=True)]
            if self.facts
            else list(plan.values)
        )
        return _decide(plan.columns, self._merged(plan)[0], facts, self.shown, final=False)

    def add(self, plan: ShardPlan) -> None:
        """A shard read to its end."""
        if not self._fits(plan):
            self.fits = False
            return
        for name, kind in _kinds(plan).items():
            if kind:
                self.kinds.setdefault(name, kind)
        self.merged = self._merged(plan)
        self.facts = (
            [f.merge(v) for f, v in zip(self.facts, plan.values, strict=True)]
            if self.facts
            else list(plan.values)
        )
        self.columns = plan.columns


def _decide(
    columns: Sequence[str], merged: dict[str, Any], facts: Sequence[ValueFacts], shown: str, *, final: bool
) -> DatasetPlan | None:
    """Each column's dtype, action and arrow type from the shared dtypes and the values' facts.
    Not ``final``: None for what the final decision refuses."""
    dtypes: list[Any] = []
    actions: list[str] = []
    arrow: list[Any] = []
    nested: list[str] = []
    for name, column in zip(columns, facts, strict=True):
        dtype = merged[name]
        action = ""
        kind = None
        if pd.api.types.is_object_dtype(dtype):
            action = value_action(column)
            if action == NESTED:
                nested.append(name)
            elif action == TO_FLOAT:
                dtype = pd.api.types.pandas_dtype("float64")
            elif action == TO_TEXT:
                kind = _arrow("string")
            else:
                kind = column.arrow if column.arrow is not None else _arrow("null")
                if kind == CONFLICT:
                    if not final:
                        return None
                    raise InputDataError(
                        f"{shown}: column {name!r} holds values of kinds that cannot be stored together "
                        f"(e.g. {column.first!r}); make its values one type"
                    )
        dtypes.append(dtype)
        actions.append(action)
        arrow.append(kind)
    if nested:
        if not final:
            return None
        first = dict(zip(columns, (f.first for f in facts), strict=True))
        refuse_nested(nested, {name: first[name] for name in nested}, shown)
    return DatasetPlan(tuple(columns), tuple(dtypes), tuple(actions), tuple(arrow))


def _arrow(name: str) -> Any:
    import pyarrow as pa

    return {"string": pa.string(), "null": pa.null()}[name]


def finish(chunk: pd.DataFrame, plan: DatasetPlan) -> pd.DataFrame:
    """A shard's converted chunk as the dataset holds it: the shared dtypes, each object column's
    action, one missing value in text."""
    out = chunk if list(chunk.columns) == list(plan.columns) else chunk[list(plan.columns)].copy()
    for name, dtype, action in zip(plan.columns, plan.dtypes, plan.actions, strict=True):
        column = out[name]
        if action == TO_FLOAT:
            changed = apply_action(column, TO_FLOAT)
        else:
            changed = to_dtype(column, dtype)
            if action and action != KEEP:
                changed = apply_action(changed, action)
        if changed is not column:
            out[name] = changed  # only what changed: a new frame would copy every block
    return normalize_missing(out)


@dataclass
class Streamed:
    """What a stream wrote: the rows, the plan, the lineage the shards carried, the passes."""

    rows: int
    plan: DatasetPlan
    carried: list[Any] | None
    passes: int


def stream_shards(
    shards: Sequence[Shard],
    sink: Sink,
    shown: str,
    *,
    batch_rows: int = BATCH_ROWS,
) -> Streamed:
    """Stream ``shards`` into ``sink``, in batches of ``batch_rows`` rows; raise InputDataError for
    bad input (the sink is aborted, so nothing partial is left)."""
    try:
        return _stream(shards, sink, shown, batch_rows)
    except BaseException:
        sink.abort()
        raise


def _stream(shards: Sequence[Shard], sink: Sink, shown: str, batch_rows: int) -> Streamed:
    names = [shard.name for shard in shards]
    finished: list[ShardPlan] = []
    prefix = _Prefix(shown)
    written_under: DatasetPlan | None = None
    valid = True
    batches = _Batches(batch_rows, sink.write)
    for shard in shards:
        shard.open()
        shard_decision = None
        for chunk in shard.first_pass():
            if not valid:
                continue  # the facts are still gathered: the final decision needs them
            plan = shard.plan()
            if shard_decision is None:
                shard_decision = plan.decision
            dataset = prefix.with_shard(plan)
            converted = None
            if plan.decision == shard_decision and dataset is not None:
                if written_under is None:
                    written_under = dataset
                    sink.start(dataset)
                if dataset == written_under:
                    converted = shard.convert(chunk, plan)
            if converted is None:
                valid = False
                continue
            batches.add(finish(converted, written_under))
        plan = shard.plan()
        if shard_decision is not None and plan.decision != shard_decision:
            valid = False
        finished.append(plan)
        prefix.add(plan)

    def example(number: int, column: str) -> Any:
        return shards[number].first_value(column, finished[number])

    final = dataset_plan(finished, names, shown, example=example)
    carried = _carried(shards)
    if valid and written_under == final:
        batches.flush()
        _require_rows(batches.total, shown)
        return Streamed(batches.total, final, carried, 1)
    if written_under is not None:
        sink.abort()
    sink.start(final)
    batches = _Batches(batch_rows, sink.write)
    for shard, plan in zip(shards, finished, strict=True):
        for chunk in shard.final_pass(plan):
            batches.add(finish(chunk, final))
    batches.flush()
    _require_rows(batches.total, shown)
    return Streamed(batches.total, final, carried, 2)


def _require_rows(rows: int, shown: str) -> None:
    if rows == 0:
        raise InputDataError(f"{shown} has a header but no data rows")


def _carried(shards: Sequence[Shard]) -> list[Any] | None:
    """The lineage the shards carry, when they all carry the same (as pandas keeps a DataFrame's
    attributes through a concatenation only when they agree)."""
    kept = [shard.carried for shard in shards]
    if kept and kept[0] and all(k == kept[0] for k in kept):
        return kept[0]
    return None


class DatasetSink:
    """Batches into a dataset folder (``dataset_files.DatasetWriter``), written with the plan's
    schema; a new start drops what an earlier one wrote."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        source: str,
        part_rows: int = DEFAULT_PART_ROWS,
        lineage: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.source = source
        self.part_rows = part_rows
        self.lineage = lineage  # kept in every part's schema, for data that leaves as one file
        self.writer: DatasetWriter | None = None
        self.plan: DatasetPlan | None = None
        self.written = False

    def start(self, plan: DatasetPlan) -> None:
        self.abort()
        self.plan = plan
        self.written = False
        self.writer = DatasetWriter(
            self.path,
            source=self.source,
            part_rows=self.part_rows,
            schema=plan.schema(),
            lineage=self.lineage,
        )

    def write(self, batch: pd.DataFrame) -> None:
        assert self.writer is not None, "start comes first"
        self.writer.write(batch)
        self.written = True

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None

    def close(self, lineage: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Finish the folder; ``lineage`` makes the manifest's lineage from the metadata."""
        assert self.writer is not None and self.plan is not None, "start comes first"
        if not self.written:
            # No row passed (a filter kept none): the columns and their types still make a dataset.
            self.writer.write(self.plan.empty())
        return self.writer.close(lineage=lineage)


class FrameSink:
    """Batches into one DataFrame (``ingest.read_source``: the whole source in memory)."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.plan: DatasetPlan | None = None

    def start(self, plan: DatasetPlan) -> None:
        self.frames = []
        self.plan = plan

    def write(self, batch: pd.DataFrame) -> None:
        self.frames.append(batch)

    def abort(self) -> None:
        self.frames = []

    def frame(self) -> pd.DataFrame:
        if len(self.frames) == 1:
            return self.frames[0]
        return pd.concat(self.frames, ignore_index=True)
