"""Cron expressions and times as Kubeflow Pipelines takes them (six fields, seconds first; RFC 3339)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mlstages.components.common.errors import ParameterError

if TYPE_CHECKING:
    pass


# robfig/cron v1, which KFP's scheduled-workflow controller parses schedules with: seconds first,
# then the five usual fields; names for months and weekdays; `?` like `*`.
_CRON_FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    ),
    ("day of week", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)


_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


_GO_DURATION = re.compile(
    r"^(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*$"
)


def _cron_value(text: str, name: str, low: int, high: int, names: Mapping[str, int], expr: str) -> int:
    value = names.get(text.lower()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise ParameterError(f"--cron {expr!r}: {name} {text!r} is not in {low}-{high}")
    return value


def _check_cron_field(text: str, name: str, low: int, high: int, names: Mapping[str, int], expr: str) -> None:
    for item in text.split(","):
        span, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ParameterError(f"--cron {expr!r}: {name} step {step!r} must be a whole number above 0")
        if span in ("*", "?"):
            continue
        first, dash, last = span.partition("-")
        start = _cron_value(first, name, low, high, names, expr)
        if dash and _cron_value(last, name, low, high, names, expr) < start:
            raise ParameterError(f"--cron {expr!r}: {name} range {span!r} runs backwards")


def kfp_cron(expression: str) -> str:
    """The cron expression as KFP runs it: six fields, seconds first (robfig/cron v1), or a
    descriptor (@hourly, @every 30m). A standard five-field expression is converted by adding
    a seconds field of 0: KFP would otherwise read its first field as seconds, so "0 * * * *"
    (hourly) would run every minute."""
    expr = " ".join(expression.split())
    if not expr:
        raise ParameterError("--cron is empty")
    if expr.startswith("@"):
        word, _, rest = expr.partition(" ")
        if word == "@every":
            if not _GO_DURATION.match(rest) or not re.search(r"[1-9]", rest):
                raise ParameterError(
                    f"--cron {expression!r}: @every takes a positive duration such as 30m or 1h30m"
                )
            return expr
        if word in _CRON_DESCRIPTORS and not rest:
            return expr
        raise ParameterError(
            f"--cron {expression!r}: unknown descriptor; use one of {', '.join(_CRON_DESCRIPTORS)} or @every DURATION"
        )
    fields = expr.split(" ")
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ParameterError(
            f"--cron {expression!r}: expected 5 fields (minute hour day month weekday) or 6 (seconds first), "
            f"got {len(fields)}"
        )
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        _check_cron_field(text, name, low, high, names, expression)
    return " ".join(fields)


def parse_time(value: str, option: str) -> dt.datetime:
    """An ISO 8601 time; without a zone it is taken as UTC (KFP schedules in UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(
            f"{option} {value!r}: expected an ISO 8601 time such as 2025-01-31T06:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
