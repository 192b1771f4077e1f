"""Comparing one column of the window with the reference, by the column's type."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.reference import (
    CATEGORICAL_KIND,
    NUMERIC_KIND,
    OTHER,
)
from mlstages.components.monitor_drift.config import (
    ALL_MISSING,
    CHISQUARE,
    COLUMN_MISSING,
    DEFAULT_THRESHOLDS,
    JENSEN_SHANNON,
    KS,
    MAX_VALUES_AS_CATEGORIES,
    METHOD_NAMES,
    NEW_VALUES,
    NO_TRAINING_VALUES,
    NOT_TESTED,
    P_VALUE_METHODS,
    PLOT_CATEGORIES,
    PSI,
    SMALL_SAMPLE,
    TESTED,
    TYPE_CHANGED,
    VALUE_METHODS,
    WASSERSTEIN,
    Z_TEST,
    FeatureRule,
    _check_threshold,
)
from mlstages.components.monitor_drift.results import FeatureDrift, _percent, _share
from mlstages.components.monitor_drift.statistical_tests import (
    _ks_sorted,
    _norm,
    _wasserstein_sorted,
    chi_squared,
    is_drift,
    jensen_shannon,
    population_stability_index,
    proportion_z_test,
    severity,
)
from mlstages.components.monitor_drift.window import CategoricalWindow, ColumnWindow, NumericWindow


@dataclass
class _Counts:
    """Aligned count vectors over the union of reference and current bins or categories."""

    labels: list[str]
    reference: np.ndarray
    current: np.ndarray
    new: list[str]


def _align_categories(
    reference_counts: Mapping[str, int], reference_other: int, current_counts: Mapping[str, int]
) -> _Counts:
    labels = list(reference_counts)
    known = set(labels)
    if reference_other:
        # The reference summed its rarest categories: a current category it does not list may be
        # one of them, so unlisted ones go to the same "(other)" bin and are not called new.
        other = sum(c for k, c in current_counts.items() if k not in known)
        return _Counts(
            labels=[*labels, OTHER],
            reference=np.array([*reference_counts.values(), reference_other], dtype=float),
            current=np.array([*(current_counts.get(k, 0) for k in labels), other], dtype=float),
            new=[],
        )
    new = [k for k in current_counts if k not in known]
    return _Counts(
        labels=labels + new,
        reference=np.array([*reference_counts.values(), *([0] * len(new))], dtype=float),
        current=np.array([current_counts.get(k, 0) for k in labels + new], dtype=float),
        new=new,
    )


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if len(edges) == 0:
        return ["all values"]
    shown = [f"{e:.4g}" for e in edges]
    labels = [f"< {shown[0]}"]
    labels += [f"{a} to < {b}" for a, b in itertools.pairwise(shown)]
    labels.append(f">= {shown[-1]}")
    return labels


def _plot(labels: list[str], reference: np.ndarray, current: np.ndarray, ordered: bool) -> dict[str, Any]:
    """Shares per bin for the report's chart; categories beyond PLOT_CATEGORIES are summed."""
    r = reference / reference.sum() if reference.sum() else reference
    c = current / current.sum() if current.sum() else current
    if not ordered and len(labels) > PLOT_CATEGORIES:
        order = np.argsort(-np.maximum(r, c), kind="stable")
        keep, rest = order[: PLOT_CATEGORIES - 1], order[PLOT_CATEGORIES - 1 :]
        labels = [labels[i] for i in keep] + [f"{len(rest)} others"]
        r = np.append(r[keep], r[rest].sum())
        c = np.append(c[keep], c[rest].sum())
    return {"labels": list(labels), "reference": [float(x) for x in r], "current": [float(x) for x in c]}


def _choose_method(rule: FeatureRule, fits: tuple[str, ...], auto: str) -> str:
    """The method to run: the one asked for when it fits this column, else the automatic choice
    (a global method falls back for columns it does not fit; a per-feature one that does not fit
    was refused by ``_check_explicit_methods`` before any test ran)."""
    return rule.method if rule.method in fits else auto


def _auto_for_counts(reference_n: int, current_n: int, categories: int) -> str:
    if min(reference_n, current_n) <= SMALL_SAMPLE:
        return Z_TEST if categories <= 2 else CHISQUARE
    return JENSEN_SHANNON


def _test_counts(method: str, counts: _Counts) -> float:
    if method == CHISQUARE:
        return chi_squared(counts.reference, counts.current)
    if method == Z_TEST:
        # The reference's most frequent category against all the others.
        return proportion_z_test(counts.reference, counts.current, int(np.argmax(counts.reference)))
    if method == JENSEN_SHANNON:
        return jensen_shannon(counts.reference, counts.current)
    return population_stability_index(counts.reference, counts.current)


def _finish(
    column: str,
    entry: Mapping[str, Any],
    method: str,
    score: float,
    rule: FeatureRule,
    **fields: Any,
) -> FeatureDrift:
    if rule.threshold is None:
        threshold = DEFAULT_THRESHOLDS[method]
    else:
        # A threshold given without a method is checked once the method is known: a p-value
        # threshold must be below 1.
        threshold = _check_threshold(f"parameter feature_thresholds[{column!r}]", method, rule.threshold)
    drifted = is_drift(method, score, threshold)
    reasons = list(fields.pop("reasons", []))
    if drifted:
        comparison = "<" if method in P_VALUE_METHODS else ">="
        reasons.insert(0, f"{METHOD_NAMES[method]} {score:.4g} {comparison} {threshold:g}")
    return FeatureDrift(
        column=column,
        type=entry["type"],
        status=TESTED,
        drifted=drifted or bool(reasons),
        method=method,
        score=float(score),
        threshold=float(threshold),
        severity=severity(method, score, threshold),
        reasons=reasons,
        **fields,
    )


def compare_column(
    column: str,
    entry: Mapping[str, Any],
    window: ColumnWindow | None,
    rule: FeatureRule,
    max_missing_increase: float,
) -> FeatureDrift:
    """Compare one reference column (its reference.json entry) with the window's summary of the
    same column (``window.WindowAccumulator``; None when the window lacks the column)."""
    logical = entry["type"]
    kind = entry["kind"]
    ref_rows = int(entry["rows"])
    ref_missing_share = _share(int(entry["missing"]), ref_rows)
    if window is None:
        return FeatureDrift(
            column=column,
            type=logical,
            status=COLUMN_MISSING,
            drifted=True,
            reasons=["column missing from the current window"],
            reference_missing_share=ref_missing_share,
        )
    rows = window.rows
    if kind not in (NUMERIC_KIND, CATEGORICAL_KIND):
        return FeatureDrift(
            column=column,
            type=logical,
            status=NOT_TESTED,
            drifted=False,
            notes=[f"{logical} columns are not tested for drift"],
            reference_missing_share=ref_missing_share,
            current_missing_share=_share(window.missing, rows),
        )

    notes: list[str] = []
    if isinstance(window, NumericWindow):
        if window.not_numbers:
            return FeatureDrift(
                column=column,
                type=logical,
                status=TYPE_CHANGED,
                drifted=True,
                reasons=[
                    f"type changed: numeric in training, but the window has values that are not "
                    f"numbers, such as {', '.join(window.not_numbers)}"
                ],
                reference_missing_share=ref_missing_share,
            )
        if not window.numeric_dtype:
            notes.append(f"numeric in training; read from {window.dtype} values")
        current_n = window.finite
    else:
        assert isinstance(window, CategoricalWindow)
        cat_counts = window.category_counts()
        current_n = rows - window.missing
        if current_n and window.numeric_dtype and not pd.api.types.is_bool_dtype(window.dtype):
            notes.append(f"{logical} in training; the window has {window.dtype} values (compared as text)")

    cur_missing_share = _share(rows - current_n, rows)
    base = {
        "reference_missing_share": ref_missing_share,
        "current_missing_share": cur_missing_share,
        "notes": notes,
    }
    reference_n = int(entry["count"])
    if current_n == 0 or reference_n == 0:
        if current_n == 0 and reference_n == 0:
            return FeatureDrift(
                column=column,
                type=logical,
                status=NOT_TESTED,
                drifted=False,
                notes=[*notes, "no values in the training data or the current window"],
                **{k: v for k, v in base.items() if k != "notes"},
            )
        reason = (
            "all values missing" + (f" in {rows:,} rows" if rows else "")
            if current_n == 0
            else f"the training data had no values in this column; the window has {current_n:,}"
        )
        return FeatureDrift(
            column=column,
            type=logical,
            status=ALL_MISSING if current_n == 0 else NO_TRAINING_VALUES,
            drifted=True,
            reasons=[reason],
            current_n=current_n,
            **base,
        )

    reasons: list[str] = []
    if (
        cur_missing_share is not None
        and ref_missing_share is not None
        and cur_missing_share - ref_missing_share > max_missing_increase
    ):
        reasons.append(
            f"missing share rose from {_percent(ref_missing_share)} to {_percent(cur_missing_share)}"
        )

    if kind == CATEGORICAL_KIND:
        counts = _align_categories(entry["counts"], int(entry.get("other", 0)), cat_counts)
        auto = _auto_for_counts(reference_n, current_n, len(counts.labels))
        method = _choose_method(rule, (CHISQUARE, Z_TEST, JENSEN_SHANNON, PSI), auto)
        score = _test_counts(method, counts)
        basis = f"counts in each category of all {reference_n:,} training values"
        return _finish(
            column,
            entry,
            method,
            score,
            rule,
            reasons=reasons,
            reference_n=reference_n,
            current_n=current_n,
            new_categories=counts.new,
            plot=_plot(counts.labels, counts.reference, counts.current, ordered=False),
            **{**base, "notes": [*notes, basis]},
        )
    assert isinstance(window, NumericWindow)
    return _compare_numeric(column, entry, window, rule, reasons, base)


def _compare_numeric(
    column: str,
    entry: Mapping[str, Any],
    window: NumericWindow,
    rule: FeatureRule,
    reasons: list[str],
    base: dict[str, Any],
) -> FeatureDrift:
    reference_n = int(entry["count"])
    current_n = window.finite
    value_counts = entry.get("value_counts")
    by_value = None
    if value_counts is not None:
        assert window.discrete is not None
        by_value = _align_categories(value_counts, 0, window.discrete.counts())
    few_values = (
        by_value is not None
        and len(by_value.labels) <= MAX_VALUES_AS_CATEGORIES
        and NEW_VALUES not in by_value.labels  # pooled: many distinct values, not a few
    )
    if few_values:
        auto = _auto_for_counts(reference_n, current_n, len(by_value.labels))
    else:
        auto = KS if min(reference_n, current_n) <= SMALL_SAMPLE else WASSERSTEIN
    fits = (KS, WASSERSTEIN, JENSEN_SHANNON, PSI) + ((CHISQUARE, Z_TEST) if by_value is not None else ())
    method = _choose_method(rule, fits, auto)
    sample = np.asarray(entry["sample"], dtype=float)
    notes = list(base["notes"])
    binned = by_value
    if binned is None:
        assert window.bin_counts is not None
        binned = _Counts(
            labels=_bin_labels(list(entry["bin_edges"])),
            reference=np.asarray(entry["bin_counts"], dtype=float),
            current=window.bin_counts.astype(float),
            new=[],
        )

    if method in VALUE_METHODS:
        used = len(sample)
        test = "KS" if method == KS else "Wasserstein"
        if used < reference_n:
            notes.append(f"{test} on a stratified sample of {used:,} of the {reference_n:,} training values")
        else:
            notes.append(f"{test} on all {reference_n:,} training values")
        values = window.sorted_values()
        if len(values) < current_n:
            notes.append(
                f"{test} on a seeded uniform sample of {len(values):,} of the {current_n:,} current values"
            )
        if method == KS:
            _, score = _ks_sorted(sample, values)
            if used < reference_n:
                notes.append(f"p-value with n = {used:,} (the sample size), which is conservative")
            if len(values) < current_n:
                notes.append(
                    f"p-value with m = {len(values):,} (the window's sample size), which is conservative"
                )
        else:
            score = _wasserstein_sorted(sample, values) / _norm(entry["summary"]["std"])
            notes.append("normed by the standard deviation of all training values")
        ref_n_used = used
    else:
        score = _test_counts(method, binned)
        bins = "each value" if by_value is not None else f"{len(binned.labels)} quantile bins"
        notes.append(f"counts in {bins} of all {reference_n:,} training values")
        ref_n_used = reference_n
    return _finish(
        column,
        entry,
        method,
        score,
        rule,
        reasons=reasons,
        reference_n=ref_n_used,
        current_n=current_n,
        new_categories=[] if by_value is None else by_value.new,
        plot=_plot(binned.labels, binned.reference, binned.current, ordered=True),
        **{**base, "notes": notes},
    )
