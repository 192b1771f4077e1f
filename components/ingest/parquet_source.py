"""Parquet files, read a row group's worth of rows at a time.

A Parquet file says its columns' types in its footer, but pandas' type for a column also depends
on its values: integers with a missing value become float64, booleans with one become objects, a
dictionary column's categories are those of the whole file. The footer's statistics count each
column's missing values per row group, so the types the whole file takes in pandas are known
before the first row is read; a file written without statistics is typed from its rows as they
pass (and read again should a later row group change a type).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlstages.components.common.dataset_files import read_lineage
from mlstages.components.common.errors import InputDataError
from mlstages.components.ingest.column_values import ValueFacts, dtype_facts, to_dtype
from mlstages.components.ingest.delimited import sniff
from mlstages.components.ingest.shards import Shard, ShardPlan, check_column_names

# Column chunks are read through a buffer instead of whole (as dataset_files reads parts).
READ_BUFFER_BYTES = 1 << 20


class ParquetShard(Shard):
    """One Parquet file."""

    def __init__(self, path: Path, shown: str, *, batch_rows: int) -> None:
        super().__init__(path.name, shown)
        self.path = path
        self.batch_rows = batch_rows
        self.file: Any = None
        self.columns: list[str] = []
        self.fields: list[Any] = []  # the arrow field of each column
        self.plain: dict[str, Any] = {}  # a column's dtype when it has no missing value
        self.holed: dict[str, Any] = {}  # ... and when it has one
        self.nulls: dict[str, bool] = {}  # a missing value seen (or counted in the footer)
        self.values: dict[str, bool] = {}  # a value seen (or counted)
        self.rows = 0

    def open(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        kind = sniff(self.path)
        if kind and kind != "parquet":
            what = (
                "an HTML page (a sign-in or error page served instead of the data?)"
                if kind == "html"
                else f"{kind}-compressed"
            )
            raise InputDataError(
                f"{self.shown} is {what}, not a Parquet file: check the URI, or set source_format"
            )
        try:
            self.file = pq.ParquetFile(self.path, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
            schema = self.file.schema_arrow
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise InputDataError(f"{self.shown} is not a readable Parquet file: {exc}") from exc
        # Checked before reading: pandas fails on duplicate Parquet names with a pyarrow FieldRef message.
        check_column_names(schema.names, self.shown)
        # A file the suite assembled (retraining data) says what it was made of: lineage goes on.
        self.carried = read_lineage(self.path).get("sources") or None
        plain = schema.empty_table().to_pandas()
        holed = pa.Table.from_pylist([{}], schema=schema).to_pandas()
        self.columns = [str(c) for c in plain.columns]
        self.fields = [schema.field(name) for name in plain.columns]
        for name, original in zip(self.columns, plain.columns, strict=True):
            self.plain[name] = plain[original].dtype
            self.holed[name] = holed[original].dtype
        for name, field in zip(self.columns, self.fields, strict=True):
            if pa.types.is_dictionary(field.type):
                self._categories(name, field.name)
        counted = self._counted()
        self.nulls = {name: counted.get(name, (False, False))[0] for name in self.columns}
        self.values = {name: counted.get(name, (False, False))[1] for name in self.columns}
        self.counted = set(counted)
        self.rows = 0

    def _categories(self, name: str, original: str) -> None:
        """A dictionary column's categories are those of the whole file, in the order pandas
        gives them: read the column (its codes are small) once."""
        try:
            column = self.file.read(columns=[original], use_pandas_metadata=False).to_pandas()[original]
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise InputDataError(f"{self.shown} is not a readable Parquet file: {exc}") from exc
        dtype = column.dtype
        if isinstance(self.plain[name], pd.CategoricalDtype) and isinstance(dtype, pd.CategoricalDtype):
            dtype = pd.CategoricalDtype(dtype.categories, ordered=self.plain[name].ordered)
        self.plain[name] = self.holed[name] = dtype

    def _counted(self) -> dict[str, tuple[bool, bool]]:
        """(has a missing value, has a value) of each flat column whose footer counts its missing
        values in every row group."""
        meta = self.file.metadata
        leaf = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
        found: dict[str, tuple[bool, bool]] = {}
        for name, field in zip(self.columns, self.fields, strict=True):
            j = leaf.get(field.name)
            if j is None:
                continue
            nulls = values = False
            for group in range(meta.num_row_groups):
                chunk = meta.row_group(group)
                stats = chunk.column(j).statistics
                if stats is None or not stats.has_null_count:
                    break
                nulls = nulls or stats.null_count > 0
                values = values or stats.null_count < chunk.num_rows
            else:
                found[name] = (nulls, values)
        return found

    def _batches(self) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        schema = self.file.schema_arrow
        offset = 0
        try:
            for batch in self.file.iter_batches(batch_size=self.batch_rows, use_pandas_metadata=True):
                table = pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
                frame = table.to_pandas()
                frame.columns = [str(c) for c in frame.columns]
                frame.index = pd.RangeIndex(offset, offset + len(frame))
                offset += len(frame)
                yield frame
        except (OSError, pa.ArrowException) as exc:
            raise InputDataError(f"{self.shown} is not a readable Parquet file: {exc}") from exc

    def first_pass(self) -> Iterator[pd.DataFrame]:
        for frame in self._batches():
            for name in self.columns:
                if name in self.counted:
                    continue
                missing = frame[name].isna()
                self.nulls[name] = self.nulls[name] or bool(missing.any())
                self.values[name] = self.values[name] or not bool(missing.all())
            self.rows += len(frame)
            yield frame

    def plan(self) -> ShardPlan:
        dtypes, missing, values = [], [], []
        for name, field in zip(self.columns, self.fields, strict=True):
            dtype = self.holed[name] if self.nulls[name] else self.plain[name]
            empty = not self.values[name]
            dtypes.append(dtype)
            missing.append(empty)
            values.append(_arrow_facts(field.type, dtype, empty))
        return ShardPlan(tuple(self.columns), tuple(dtypes), tuple(missing), tuple(values), None, self.rows)

    def convert(self, chunk: pd.DataFrame, plan: ShardPlan) -> pd.DataFrame:
        for name, dtype in zip(plan.columns, plan.dtypes, strict=True):
            chunk[name] = to_dtype(chunk[name], dtype)
        return chunk

    def final_pass(self, plan: ShardPlan) -> Iterator[pd.DataFrame]:
        for frame in self._batches():
            yield self.convert(frame, plan)


def _arrow_facts(kind: Any, dtype: Any, missing: bool) -> ValueFacts:
    """What the values of a column of arrow type ``kind`` are in pandas (objects, for the object
    ones), without reading them."""
    import pyarrow as pa

    if missing:
        return ValueFacts(arrow=pa.null())
    if not pd.api.types.is_object_dtype(dtype):
        return dtype_facts(dtype, False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return ValueFacts(frozenset({"string"}), frozenset({"text"}), False, pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return ValueFacts(frozenset({"bytes"}), frozenset({"bytes"}), False, pa.binary())
    if pa.types.is_decimal(kind):
        return ValueFacts(frozenset({"decimal"}), frozenset({"Decimal"}))
    if pa.types.is_date(kind):
        return ValueFacts(frozenset({"date"}), frozenset({"date"}), False, pa.date32())
    if pa.types.is_time(kind):
        return ValueFacts(frozenset({"time"}), frozenset({"time"}), False, pa.time64("us"))
    if pa.types.is_boolean(kind):
        return ValueFacts(frozenset({"boolean"}), frozenset({"boolean"}), False, pa.bool_())
    if pa.types.is_nested(kind):
        return ValueFacts(frozenset({"mixed"}), frozenset(), True)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return ValueFacts(frozenset({"integer"}), frozenset({"number"}), False, kind)
    return ValueFacts(frozenset({str(kind)}), frozenset({str(kind)}), False, kind)
