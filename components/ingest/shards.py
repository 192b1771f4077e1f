"""One file (or query) of a source, read a chunk at a time: the interface every format implements.

A shard reads its rows twice at most. The first pass (``first_pass``) reads them as the format
reader gives them, chunk by chunk, and gathers facts about each column (the types each chunk
took, whether "NA" appeared, ...); ``plan`` turns the facts seen so far into the shard's
decision: each column's final dtype, as a read of the whole file into one DataFrame gives it.
``convert`` applies a decision to a first-pass chunk when it can do so exactly (a column decided
to be text cannot be rebuilt from the numbers pandas parsed): the caller writes those chunks at
once, and only if the decision changed after they were written does it read the shard again with
``final_pass``, which reads with the final decision (text columns read as text).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlstages.components.common.errors import InputDataError
from mlstages.components.ingest.column_values import ValueFacts

# Column names travel in feature names, artifact metadata and the task's command line; a longer
# "name" is a data row or a value, not a header.
MAX_COLUMN_NAME_LENGTH = 1000


@dataclass(frozen=True)
class ShardPlan:
    """A shard's decision from the facts seen so far.

    columns, dtypes: the columns and the pandas dtype each takes in the shard read whole.
    missing: the columns that hold no value at all.
    values: what each column's values are (what an object column becomes is decided from them).
    detail: the reader's own rules for turning a first-pass chunk into those columns.
    rows: the rows seen (not compared: a plan does not change with the rows).
    """

    columns: tuple[str, ...]
    dtypes: tuple[Any, ...]
    missing: tuple[bool, ...]
    values: tuple[ValueFacts, ...]
    detail: Any = None
    rows: int = field(default=0, compare=False)

    @property
    def decision(self) -> tuple[Any, ...]:
        """What the chunks written under this plan depend on."""
        return (self.columns, self.dtypes, self.detail)


class Shard(ABC):
    """One file of a source (or a database query), read a chunk at a time."""

    def __init__(self, name: str, shown: str) -> None:
        self.name = name  # in messages about shards
        self.shown = shown  # in messages about this file
        self.carried: list[Any] | None = None  # lineage sources the file keeps (Parquet)

    def open(self) -> None:  # noqa: B027 - most formats check nothing before their first pass
        """Check what can be checked before any row is read (header, names, format)."""

    @abstractmethod
    def first_pass(self) -> Iterator[pd.DataFrame]:
        """The rows as the format reader gives them, chunk by chunk; facts are gathered as they
        pass."""

    @abstractmethod
    def plan(self) -> ShardPlan:
        """The decision from the facts gathered so far."""

    @abstractmethod
    def convert(self, chunk: pd.DataFrame, plan: ShardPlan) -> pd.DataFrame | None:
        """A first-pass chunk as ``plan`` decides, or None when that needs the file read again."""

    @abstractmethod
    def final_pass(self, plan: ShardPlan) -> Iterator[pd.DataFrame]:
        """The rows again, chunk by chunk, each as ``plan`` (the final one) decides."""

    def close(self) -> None:  # noqa: B027 - most formats hold nothing between passes
        """Drop what the shard kept between its passes."""

    def first_value(self, column: str, plan: ShardPlan) -> Any:
        """The first value of ``column`` that is not missing, for messages."""
        for chunk in self.final_pass(plan):
            present = chunk[column].dropna()
            if len(present):
                return present.iloc[0]
        return None


def check_column_names(names: Sequence[Any], shown: str) -> None:
    """Raise InputDataError naming every empty or repeated column name (1-based positions)."""
    problems = []
    empty = [i + 1 for i, n in enumerate(names) if n is None or not str(n).strip()]
    if empty:
        problems.append(f"empty name at column position(s) {', '.join(map(str, empty))}")
    positions: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if n is not None and str(n).strip():
            positions.setdefault(str(n), []).append(i + 1)
    for name, where in positions.items():
        if len(where) > 1:
            problems.append(f"name {name!r} repeated at column positions {', '.join(map(str, where))}")
    long = [i + 1 for i, n in enumerate(names) if n is not None and len(str(n)) > MAX_COLUMN_NAME_LENGTH]
    if long:
        problems.append(
            f"name longer than {MAX_COLUMN_NAME_LENGTH} characters at column position(s) "
            f"{', '.join(map(str, long[:10]))} (is the first line a header?)"
        )
    if problems:
        raise InputDataError(
            f"{shown}: {'; '.join(problems)}; rename them in the source so every column name is unique, "
            "non-empty and short"
        )
