"""A database query, read through SQLAlchemy a chunk of rows at a time.

pandas types each chunk of a query's result from that chunk's rows, and the suite has always put
the chunks together as ``pd.concat`` does (integers beside a chunk with a NULL become floats, ...).
A query runs once: a source that changes under the same URL must not be read twice. So each chunk
is kept on local disk as it arrives (as Parquet, or pickled when pyarrow cannot hold its values,
as SQLite's untyped columns can give), and when the dtypes the chunks share differ from those the
first chunks were written with, the kept chunks are read back instead of the database.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.ingest.column_values import ValueFacts, common_dtypes, to_dtype, value_facts
from mlstages.components.ingest.shards import Shard, ShardPlan


class SqlShard(Shard):
    """The result of ``sql_query`` on the database at ``uri``."""

    def __init__(self, uri: str, query: str, shown: str, *, batch_rows: int) -> None:
        super().__init__(shown, shown)
        self.uri = uri
        self.query = query
        self.batch_rows = batch_rows
        self.spool: Path | None = None
        self.kept: list[tuple[Path, dict[str, Any]]] = []  # each chunk's file and dtypes
        self.columns: list[str] = []
        self.merged: tuple[dict[str, Any], dict[str, bool], int] | None = None
        self.values: dict[str, ValueFacts] = {}
        self.rows = 0

    def open(self) -> None:
        try:
            import sqlalchemy  # noqa: F401 - only whether it is there
        except ImportError as exc:
            raise ParameterError(
                f"source_uri {self.shown} is a database, and reading one needs SQLAlchemy: "
                "pip install 'mlstages[sql]' (the ingest image has it)"
            ) from exc
        if not self.query.strip():
            raise ParameterError(f"source_uri {self.shown} is a database: set sql_query to the query to run")

    def _query(self) -> Iterator[pd.DataFrame]:
        import sqlalchemy

        try:
            engine = sqlalchemy.create_engine(self.uri)
        except Exception as exc:  # unknown dialect or missing driver
            raise ParameterError(f"source_uri {self.shown}: cannot connect: {exc}") from exc
        try:
            with engine.connect() as connection:
                # Chunks keep the driver's buffers, and this task's memory, small on large results.
                yield from pd.read_sql_query(
                    sqlalchemy.text(self.query), connection, chunksize=self.batch_rows
                )
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise InputDataError(
                f"{self.shown}: the query failed: {exc.__class__.__name__}: {exc.orig or exc}"
            ) from exc
        finally:
            engine.dispose()

    def first_pass(self) -> Iterator[pd.DataFrame]:
        self.spool = Path(tempfile.mkdtemp(prefix="mlstages-sql-"))
        for chunk in self._query():
            chunk.columns = [str(c) for c in chunk.columns]
            if not self.columns:
                self.columns = list(chunk.columns)
            self.kept.append((self._keep(chunk, len(self.kept)), dict(chunk.dtypes)))
            info = (
                dict(chunk.dtypes),
                {name: bool(chunk[name].isna().all()) for name in chunk.columns},
                len(chunk),
            )
            self.merged = info if self.merged is None else _merge(self.merged, info)
            for name in self.columns:
                facts = value_facts(chunk[name])
                self.values[name] = self.values[name].merge(facts) if name in self.values else facts
            self.rows += len(chunk)
            yield chunk
        if self.rows == 0:
            raise InputDataError(f"{self.shown}: the query returned no rows")

    def _keep(self, chunk: pd.DataFrame, number: int) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert self.spool is not None
        target = self.spool / f"chunk-{number:06d}.parquet"
        try:
            pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), target)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            target = target.with_suffix(".pickle")
            with open(target, "wb") as handle:
                pickle.dump(chunk, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return target

    def plan(self) -> ShardPlan:
        if self.merged is None:
            empty: tuple[Any, ...] = ()
            return ShardPlan(empty, empty, empty, empty, None, 0)
        dtypes, missing, _ = self.merged
        return ShardPlan(
            tuple(self.columns),
            tuple(dtypes[name] for name in self.columns),
            tuple(missing[name] for name in self.columns),
            tuple(self.values[name] for name in self.columns),
            None,
            self.rows,
        )

    def convert(self, chunk: pd.DataFrame, plan: ShardPlan) -> pd.DataFrame:
        for name, dtype in zip(plan.columns, plan.dtypes, strict=True):
            chunk[name] = to_dtype(chunk[name], dtype)
        return chunk

    def final_pass(self, plan: ShardPlan) -> Iterator[pd.DataFrame]:
        for path, dtypes in self.kept:
            if path.suffix == ".pickle":
                with open(path, "rb") as handle:
                    chunk = pickle.load(handle)  # this task's own file
            else:
                chunk = pd.read_parquet(path)
                for name, dtype in dtypes.items():
                    chunk[name] = to_dtype(chunk[name], dtype)
            yield self.convert(chunk, plan)

    def close(self) -> None:
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None


def _merge(
    left: tuple[dict[str, Any], dict[str, bool], int], right: tuple[dict[str, Any], dict[str, bool], int]
) -> tuple[dict[str, Any], dict[str, bool], int]:
    """Two runs of chunks as one, as ``pd.concat`` types them (one step at a time, so a long
    result costs one small concatenation a chunk)."""
    dtypes = common_dtypes([left, right])
    missing = {name: left[1].get(name, True) and right[1].get(name, True) for name in dtypes}
    return dtypes, missing, left[2] + right[2]
