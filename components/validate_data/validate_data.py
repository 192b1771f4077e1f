"""Data validation: statistics, a schema (inferred or given), and the anomalies between them.

The stage does what TFX's StatisticsGen, SchemaGen and ExampleValidator do, on one DataFrame:

- ``compute_statistics`` describes every column (type, missing values, distinct values, numeric
  moments and quantiles, IQR outliers, top categories) as plain JSON.
- ``infer_schema`` turns statistics into a schema: plain JSON a user can read, edit and feed back
  (types, whether a column may be missing, numeric ranges, category domains, the label).
- ``check_dataset`` compares data with a schema and returns ``Anomaly`` records; ``validate`` runs
  all three, and ``raise_for_anomalies`` applies the policy.

``validate_dataset`` does the same for a dataset folder without holding it: one pass of
``iter_batches`` feeds the statistics accumulator (``streaming``), the schema is inferred from the
statistics, and the anomaly checks read the statistics, a second pass over only the columns whose
checks failed (for the rows their messages name), and a seeded sample of at most
VALUE_CHECK_ROWS rows (fewer for a table too wide for VALUE_CHECK_SHARE of the task's memory
allowance) for the checks of a column's guessed type. Its memory does not grow with the
number of rows beyond the bounded summaries (see ``column_statistics``).

Row numbers in messages are 0-based positions in the dataset, whatever its index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlstages.components.common.column_checks import IGNORE, apply_column_types, check_column_types
from mlstages.components.common.engine import Engine
from mlstages.components.common.errors import (
    ValidationFailed,
)
from mlstages.components.common.memory import rows_within
from mlstages.components.common.sketches import exact_limit
from mlstages.components.validate_data.anomalies import Anomaly, DatasetView, find_anomalies, frame_view
from mlstages.components.validate_data.column_statistics import Limits
from mlstages.components.validate_data.config import ERROR, WARNING, ValidationConfig
from mlstages.components.validate_data.schema import infer_schema, schema_from_statistics, validate_schema
from mlstages.components.validate_data.statistics import _with_text_column_names
from mlstages.components.validate_data.streaming import RowSample, StatisticsAccumulator, row_hash_limit

# The checks of a column's guessed type (numbers as text, identifiers, leading zeros, "NA" as a
# category, label variants) read a seeded sample of at most this many rows: they look at values
# as text, and 100,000 rows show any pattern that matters while keeping to a few seconds.
VALUE_CHECK_ROWS = 100_000
# ... and of at most this share of the task's memory allowance, the sample being held up to three
# times while it is taken (twice its rows before a shrink, and the shrink's copy): 100,000 rows
# of a 150-column table are 120 MB.
VALUE_CHECK_SHARE = 0.1
VALUE_CHECK_SEED = 0


@dataclass(frozen=True)
class ValidationResult:
    """Statistics, the schema they were checked against, the anomalies, and the decision.

    ``passed`` is False when any anomaly has error severity, whatever the policy.
    """

    statistics: dict[str, Any]
    schema: dict[str, Any]
    anomalies: tuple[Anomaly, ...]
    passed: bool
    schema_source: str
    policy: str = "fail"
    # The rows the type checks read when they read a sample of the data; None when every row.
    value_check_rows: int | None = None
    # The values (and distinct values) a column's summaries kept exactly; None for a table held whole.
    exact_values: int | None = None

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == ERROR]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == WARNING]

    @property
    def decision(self) -> str:
        """One line for reports: passed, passed with warnings, or failed (and what follows)."""
        warnings = f"{len(self.warnings)} warning(s)"
        if self.passed:
            return f"passed with {warnings}" if self.warnings else "passed"
        outcome = "the task fails" if self.policy == "fail" else "the pipeline continues"
        return f"failed: {len(self.errors)} error(s), {warnings}; policy {self.policy!r}: {outcome}"

    def summary_metadata(self) -> dict[str, Any]:
        """Counts recorded on the output artifacts."""
        dataset = self.statistics["dataset"]
        return {
            "rows": dataset["rows"],
            "columns": dataset["columns"],
            "duplicate_rows": dataset["duplicate_rows"],
            "passed": self.passed,
            "policy": self.policy,
            "schema_source": self.schema_source,
            "anomaly_count": len(self.anomalies),
            "error_count": len(self.errors),
            "warning_count": len(self.warnings),
            "statistics_exact": bool(self.statistics.get("exact", True)),
            # The rows the guessed-type checks read: every row, or the size of their sample.
            "value_check_rows": dataset["rows"] if self.value_check_rows is None else self.value_check_rows,
        }


def validate(
    df: pd.DataFrame, config: ValidationConfig, schema: dict[str, Any] | None = None
) -> ValidationResult:
    """Statistics of ``df``, checked against ``schema`` (or a schema inferred from ``df``).

    Never raises for anomalies: call ``raise_for_anomalies`` to apply the policy. An inferred schema
    only finds problems visible in the data alone (missing values, duplicates, constant columns,
    the label); a given one also checks types, ranges, domains and columns.
    """
    df = apply_column_types(_with_text_column_names(df), config.column_types)
    accumulator = StatisticsAccumulator()
    accumulator.update(df, start=0)
    statistics = accumulator.result()
    if schema is not None:
        schema = validate_schema(schema)
        source = "given"
    else:
        label = config.label_column if config.label_column in df.columns else None
        schema = infer_schema(df, statistics, label, max_domain_size=config.max_domain_size)
        source = "inferred"
    anomalies = tuple(find_anomalies(frame_view(df, accumulator, statistics), schema, config))
    passed = not any(a.severity == ERROR for a in anomalies)
    return ValidationResult(statistics, schema, anomalies, passed, source, config.policy)


def validate_dataset(
    path: str | os.PathLike,
    config: ValidationConfig,
    schema: dict[str, Any] | None = None,
    *,
    batch_rows: int | None = None,
    value_check_rows: int | None = None,
    limits: Limits | None = None,
    engine: Engine | None = None,
) -> ValidationResult:
    """``validate`` of the dataset at ``path`` (a folder of Parquet parts or one file), streamed
    (see the module docstring): the same result as ``validate`` of the whole table while every
    summary is exact; beyond, the statistics say which figures are estimates. ``limits``: where
    the summaries stop being exact; by default exact up to ``sketches.exact_limit`` values a
    column (fewer for a table too wide for the task's memory allowance). ``batch_rows``: by
    default ``dataset_files.batch_rows_for`` the table's row size. ``engine``: an open
    ``common.engine.Engine``; a distributed one reads the parts on its workers."""
    from mlstages.components.common.dataset_files import (
        batch_rows_for,
        bytes_per_row,
        dataset_columns,
        iter_batches,
        part_starts,
        read_dataset_head,
    )

    what = "input dataset"
    row_bytes = bytes_per_row(path, what=what)
    batch_rows = batch_rows or batch_rows_for(row_bytes)
    value_check_rows = value_check_rows or min(
        VALUE_CHECK_ROWS, rows_within(VALUE_CHECK_SHARE, 3 * row_bytes, floor=10_000)
    )
    head = _with_text_column_names(read_dataset_head(path, 0, what=what))
    declared = check_column_types(config.column_types, head)
    kept = [c for c in dataset_columns(path, what=what) if declared.get(c) != IGNORE]
    if limits is None:
        # Sized here, from this task's allowance and the table's width, and handed to every part's
        # summary: a worker with another allowance still summarises with the same limits.
        exact = exact_limit(len(kept))
        limits = Limits(exact_values=exact, exact_distinct=exact, row_hashes=row_hash_limit())

    def raw_batches(columns: Sequence[str] | None) -> Iterator[pd.DataFrame]:
        wanted = kept if columns is None else columns
        yield from iter_batches(path, batch_rows=batch_rows, columns=wanted, what=what)

    def batches(columns: Sequence[str] | None) -> Iterator[pd.DataFrame]:
        for batch in raw_batches(columns):
            yield _typed(batch, declared)

    # One pass: the statistics of the typed rows, and the sample of raw rows the type checks read
    # (taken on the way, so the data is not read again for it). On a cluster, one pass per part
    # on the workers, merged here in part order: the summaries are mergeable, the sample is keyed
    # by row position, so the result is the same.
    if engine is not None and engine.distributed:
        shards = part_starts(path, what=what)
        summaries = engine.imap(
            part_summary,
            shards,
            columns=kept,
            declared=declared,
            batch_rows=batch_rows,
            sample_rows=value_check_rows,
            limits=limits,
            what=what,
        )
        # Merged as they come, so the task holds a few parts' summaries at a time.
        accumulator, sampler = next(summaries)
        for other, other_sample in summaries:
            accumulator.merge(other)
            sampler.merge(other_sample)
    else:
        accumulator = StatisticsAccumulator(limits)
        sampler = RowSample(value_check_rows, VALUE_CHECK_SEED)
        for batch in raw_batches(None):
            start = int(batch.index[0]) if len(batch) else accumulator.rows
            sampler.update(batch, start)
            accumulator.update(_typed(batch, declared), start=start)
    if accumulator.columns is None:  # no rows: the columns and their types from the footer
        accumulator.update(_typed(head[kept], declared), start=0)
    rows = accumulator.rows
    raw_sample = sampler.rows()
    # The declared types are checked on the sample (a column whose values mostly do not parse is
    # refused, as apply_column_types refuses the whole table), then applied to every batch as is.
    sample = _typed(
        (head[kept] if raw_sample is None else raw_sample).reset_index(drop=True), declared, check=True
    )
    statistics = accumulator.result()
    facts = accumulator.facts()
    if schema is not None:
        schema = validate_schema(schema)
        source = "given"
    else:
        label = config.label_column if config.label_column in facts else None
        schema = schema_from_statistics(
            statistics,
            lambda name: list(facts[name].categories) if facts[name].categories is not None else None,
            label,
            lambda name: facts[name].label_kind,
            max_domain_size=config.max_domain_size,
        )
        source = "inferred"
    view = DatasetView(
        columns=list(facts),
        statistics=statistics,
        facts=facts,
        batches=batches,
        sample=sample,
        repeated_keys=accumulator.duplicates.repeated_keys(),
    )
    anomalies = tuple(find_anomalies(view, schema, config))
    passed = not any(a.severity == ERROR for a in anomalies)
    sampled = len(sample) if len(sample) < rows else None
    return ValidationResult(
        statistics, schema, anomalies, passed, source, config.policy, sampled, limits.exact_values
    )


def part_summary(
    shard: tuple[str, int],
    *,
    columns: Sequence[str],
    declared: dict[str, str],
    batch_rows: int,
    sample_rows: int,
    limits: Limits | None,
    what: str,
) -> tuple[StatisticsAccumulator, RowSample]:
    """The statistics and the value-check sample of one part (``part_starts``' shard: its file
    and the position of its first row), for ``validate_dataset`` to merge; runs on a worker."""
    from mlstages.components.common.dataset_files import iter_part_batches

    file, start = shard
    accumulator = StatisticsAccumulator(limits)
    sampler = RowSample(sample_rows, VALUE_CHECK_SEED)
    for batch in iter_part_batches(file, start, batch_rows=batch_rows, columns=columns, what=what):
        first = int(batch.index[0]) if len(batch) else start
        sampler.update(batch, first)
        accumulator.update(_typed(batch, declared), start=first)
    return accumulator, sampler


def _typed(df: pd.DataFrame, declared: dict[str, str], *, check: bool = False) -> pd.DataFrame:
    """``df`` read as ``column_types`` declares (for the declared columns it has)."""
    df = _with_text_column_names(df)
    present = {name: kind for name, kind in declared.items() if name in df.columns}
    return apply_column_types(df, present, check_values=check) if present else df


def raise_for_anomalies(result: ValidationResult) -> None:
    """Raise ValidationFailed listing every error, one a line, when the policy is "fail"."""
    if result.policy != "fail" or result.passed:
        return
    lines = [f"- {a.kind}: {a.message}" for a in result.errors]
    raise ValidationFailed(
        f"data validation failed with {len(lines)} error(s) (policy 'fail'; set policy='warn' to "
        f"continue with a report, or fix the data or the schema):\n" + "\n".join(lines),
        anomalies=result.errors,
    )
