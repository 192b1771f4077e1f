"""The blessing decision from the threshold and robustness checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlstages.components.validate_model.floor import FLOOR
from mlstages.components.validate_model.thresholds import (
    DEFAULT_MIN_SLICE_ROWS,
    FAILED,
    FIRST_RUN_REASON,
    NO_THRESHOLDS_REASON,
    NOT_GATED,
    OVERALL,
    PASSED,
    ROBUSTNESS,
    THRESHOLD,
    Check,
    MetricThreshold,
)


@dataclass(frozen=True)
class Blessing:
    """The gate's decision and everything it rests on.

    candidate / baseline: {"uri", "version", "sha256"} (baseline also "pointer", the champion
    file); baseline is None on a first run.
    infra_validation: None when it did not run, else the serving code's result (passed, every check,
        latencies) and its Markdown "summary".
    """

    blessed: bool
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]
    first_run: bool
    thresholds: dict[str, dict[str, float]]
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    candidate: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    infra_validation: dict[str, Any] | None = None

    @property
    def decision(self) -> str:
        return "blessed" if self.blessed else "not blessed"

    @property
    def counts(self) -> dict[str, int]:
        return {
            status: sum(c.status == status for c in self.checks) for status in (PASSED, FAILED, NOT_GATED)
        }

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAILED]

    @property
    def reason(self) -> str:
        """The reasons on one line (at most three, then how many more), for a parameter output."""
        shown = list(self.reasons[:3])
        if len(self.reasons) > 3:
            shown.append(f"and {len(self.reasons) - 3} more (see the blessing artifact)")
        return f"{self.decision}: " + "; ".join(shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "blessed": self.blessed,
            "reasons": list(self.reasons),
            "first_run": self.first_run,
            "candidate": dict(self.candidate),
            "baseline": None if self.baseline is None else dict(self.baseline),
            "thresholds": {m: dict(r) for m, r in self.thresholds.items()},
            "min_slice_rows": self.min_slice_rows,
            "counts": self.counts,
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
            "infra_validation": self.infra_validation,
        }


def decide(
    checks: Sequence[Check],
    thresholds: Sequence[MetricThreshold],
    baseline_available: bool,
    *,
    candidate: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Any] | None = None,
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS,
    notes: Sequence[str] = (),
) -> Blessing:
    """Bless when thresholds were given, at least one of them applies, and no gated check failed."""
    reasons: list[str] = []
    notes = list(notes)
    first_run = not baseline_available
    if first_run:
        reasons.append(FIRST_RUN_REASON)
        unapplied = [f"{t.metric} {rule} {bound:g}" for t in thresholds for rule, bound in t.change_rules()]
        if unapplied:
            notes.append(f"change thresholds not applied (no baseline): {', '.join(unapplied)}")
    failed = [c for c in checks if c.status == FAILED]
    applicable = [c for c in checks if c.kind == THRESHOLD]
    if not thresholds:
        reasons.insert(0, NO_THRESHOLDS_REASON)
    elif not applicable:
        reasons.insert(
            0,
            "no threshold applies: only change thresholds were given and there is no baseline to compare "
            "with; add an absolute threshold (min or max) so that a first model can be judged",
        )
    reasons += [c.message for c in failed]
    blessed = bool(thresholds) and bool(applicable) and not failed
    if blessed:
        gated = [c for c in checks if c.status == PASSED]
        kinds = {kind: sum(c.kind == kind for c in gated) for kind in (THRESHOLD, ROBUSTNESS, FLOOR)}
        reasons.append(
            f"all {len(gated)} gated checks passed ("
            + ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n or kind != FLOOR)
            + ")"
        )
    not_gated = [c for c in checks if c.status == NOT_GATED]
    small = sorted(
        {c.scope for c in not_gated if c.rows is not None and c.rows < min_slice_rows and c.scope != OVERALL}
    )
    if small:
        notes.append(
            f"slice(s) with fewer than min_slice_rows={min_slice_rows} rows are reported but not gated: "
            + ", ".join(small)
        )
    return Blessing(
        blessed=blessed,
        reasons=tuple(reasons),
        checks=tuple(checks),
        first_run=first_run,
        thresholds={t.metric: t.to_dict() for t in thresholds},
        min_slice_rows=min_slice_rows,
        candidate=dict(candidate or {}),
        baseline=None if baseline is None else dict(baseline),
        notes=tuple(notes),
    )
