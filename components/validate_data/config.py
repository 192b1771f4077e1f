"""The data validation settings: policy, margins and the limits of the statistics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlstages.components.common.column_checks import check_column_types
from mlstages.components.common.datasets import (
    BOOLEAN,
    CATEGORICAL,
    TEXT,
)
from mlstages.components.common.engine import DEFAULT_ENGINE, check_engine
from mlstages.components.common.errors import (
    ParameterError,
    require_choice,
)
from mlstages.components.common.labels import (
    CLASSIFICATION,
    DEFAULT_UNLABELLED_ROWS,
    REGRESSION,
    UNLABELLED_ROWS,
)

SCHEMA_VERSION = 1


POLICIES = ("fail", "warn")


ERROR = "error"


WARNING = "warning"


LABEL_KINDS = (CLASSIFICATION, REGRESSION)


TOP_CATEGORIES = 20


HISTOGRAM_BINS = 20


IQR_FACTOR = 1.5


OUTLIER_RULE = (
    f"IQR rule: a value is an outlier when it is below Q1 - {IQR_FACTOR} x IQR or above "
    f"Q3 + {IQR_FACTOR} x IQR (Q1, Q3: 25th and 75th percentiles, IQR = Q3 - Q1); "
    "not applied when IQR is 0"
)


# Added to the missing share observed in the reference data, so a new batch of similar data with a
# few more gaps is not an anomaly; the absolute cap is ValidationConfig.max_missing_share.
MISSING_SHARE_MARGIN = 0.05


# How many row numbers an anomaly keeps, and how many its message names.
MAX_ROW_EXAMPLES = 20


ROWS_IN_MESSAGE = 5


VALUES_IN_MESSAGE = 5


# String columns move between these two logical types with their distinct share and word count,
# which change from one batch to the next; either is a string column, so neither is a wrong type.
_STRING_TYPES = frozenset({CATEGORICAL, TEXT})


_DOMAIN_TYPES = frozenset({CATEGORICAL, BOOLEAN})


_COLUMN_KEYS = frozenset({"type", "may_be_missing", "max_missing_share", "range", "domain"})


@dataclass(frozen=True)
class ValidationConfig:
    """What counts as an anomaly, and what to do about it.

    label_column: the label; "" for unlabeled data (serving or monitoring batches), in which case a
        label column named by a given schema may be absent.
    policy: "fail" raises ValidationFailed when any error-severity anomaly is found; "warn" reports.
    max_missing_share: a column with a larger share of missing values is an error.
    max_duplicate_share: a larger share of rows that repeat an earlier row is an error.
    range_tolerance: numeric values may lie outside the schema range by this fraction of the range.
    check_outliers: warn when a numeric column has more IQR outliers than max_outlier_share.
    max_outlier_share: see check_outliers.
    unlabelled_rows: "drop" (rows without a label are reported as a warning: preprocess drops them)
        or "fail" (an error). A label missing in every row is an error either way.
    max_domain_size: an inferred schema lists the categories of a column with at most this many
        distinct values; columns with more get no category check.
    column_types: column -> numeric, categorical, boolean, datetime, text or ignore, as preprocess
        reads it (``column_checks.apply_column_types``): the data is validated as declared, a
        declared column is not reported as a doubtful type, and an 'ignore' column is not validated.
    engine: where the statistics pass runs: "local", "dask" or a scheduler address
        (``common.engine``); the statistics are the same on every engine.
    """

    label_column: str = ""
    policy: str = "fail"
    max_missing_share: float = 0.5
    # Real tabular data has some exact repeats (coarse features, repeated measurements), so a few
    # are normal; more than 5% usually means a join fanned out or a file was ingested twice, and the
    # repeats then leak between the train and test splits.
    max_duplicate_share: float = 0.05
    # The observed range of one sample is narrower than the population's: a new batch's extremes
    # fall a little outside it. 10% of the range lets those through and still catches unit changes
    # (grams for kilograms) and sentinel values (-999).
    range_tolerance: float = 0.1
    check_outliers: bool = True
    max_outlier_share: float = 0.05
    max_domain_size: int = 100
    unlabelled_rows: str = DEFAULT_UNLABELLED_ROWS
    column_types: Mapping[str, str] = field(default_factory=dict)
    engine: str = DEFAULT_ENGINE

    def __post_init__(self) -> None:
        check_engine(self.engine)
        if not isinstance(self.label_column, str):
            raise ParameterError(
                f"parameter label_column must be a column name (text), got {self.label_column!r}"
            )
        object.__setattr__(self, "column_types", check_column_types(self.column_types or {}))
        if self.label_column and self.label_column in self.column_types:
            raise ParameterError(
                f"parameter column_types names the label column {self.label_column!r}; the label's "
                "type decides the task: use task='classification' or 'regression' instead"
            )
        require_choice("policy", self.policy, POLICIES)
        require_choice("unlabelled_rows", self.unlabelled_rows, UNLABELLED_ROWS)
        for name in ("max_missing_share", "max_duplicate_share", "max_outlier_share"):
            _require_share(name, getattr(self, name))
        value = self.range_tolerance
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ParameterError(
                f"parameter range_tolerance={value!r} must be a number >= 0 "
                "(a fraction of the schema's range, e.g. 0.1 for 10%)"
            )
        if not isinstance(self.check_outliers, bool):
            raise ParameterError(f"parameter check_outliers={self.check_outliers!r} must be true or false")
        size = self.max_domain_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ParameterError(f"parameter max_domain_size={size!r} must be a whole number >= 1")


def _require_share(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ParameterError(f"parameter {name}={value!r} must be a share between 0 and 1 (e.g. 0.05 for 5%)")


def _names(columns: Iterable[Any]) -> str:
    names = [str(c) for c in columns]
    shown = ", ".join(names[:30])
    return shown + (f", ... ({len(names)} columns)" if len(names) > 30 else "") if names else "(no columns)"
