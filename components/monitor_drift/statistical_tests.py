"""The two-sample tests and distances the drift monitor scores a column with."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.reference import (
    value_counts_sorted,
)
from mlstages.components.monitor_drift.config import _TINY_P, P_VALUE_METHODS, PSI_EMPTY_SHARE


def ks_test(reference_values: np.ndarray, current_values: np.ndarray) -> tuple[float, float]:
    """Two-sample two-sided Kolmogorov-Smirnov test: (statistic D, p-value).

    The same as ``scipy.stats.ks_2samp(reference_values, current_values)`` (method "auto"): its
    exact distribution when both samples have at most 10,000 values, else Smirnov's asymptotic
    one, ``kstwo.sf(D, round(n m / (n + m)))``; there D is computed here from the sorted samples
    without scipy's sort of the concatenated data, which is what makes a million-row window fast.
    """
    return _ks_sorted(_sorted(reference_values), _sorted(current_values))


def _sorted(values: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=float))


def _ks_sorted(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    n, m = len(u), len(v)
    if n == 0 or m == 0:
        raise InputDataError("the Kolmogorov-Smirnov test needs values in both samples")
    if max(n, m) <= 10_000:
        result = stats.ks_2samp(u, v)
        return float(result.statistic), float(result.pvalue)
    # D = sup |F_u - F_v|, reached at a data point; evaluate both CDFs at every distinct value.
    u_values, u_counts = value_counts_sorted(u)
    v_values, v_counts = value_counts_sorted(v)
    at_u = np.abs(np.cumsum(u_counts) / n - np.searchsorted(v, u_values, side="right") / m)
    at_v = np.abs(np.searchsorted(u, v_values, side="right") / n - np.cumsum(v_counts) / m)
    d = float(max(at_u.max(), at_v.max()))
    big, small = max(n, m), min(n, m)
    p_value = float(stats.kstwo.sf(d, np.round(big * small / (big + small))))
    return d, min(max(p_value, 0.0), 1.0)


def wasserstein_distance(u: np.ndarray, v: np.ndarray) -> float:
    """The first Wasserstein distance between two samples: ``scipy.stats.wasserstein_distance``.

    Computed as the integral of |F_u^-1(t) - F_v^-1(t)| over t in [0, 1] on the merged grid of both
    quantile steps (integers on the scale n m, so the grid is exact), which needs each sample sorted
    once rather than an argsort of their concatenation.
    """
    return _wasserstein_sorted(_sorted(u), _sorted(v))


def _wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    if len(u) == 0 or len(v) == 0:
        raise InputDataError("the Wasserstein distance needs values in both samples")
    if len(u) > len(v):
        u, v = v, u
    n, m = len(u), len(v)  # n <= m: at most one step of u falls inside each step of v
    # On the scale n m, step j of v covers [j n, (j + 1) n) and step i of u covers [i m, (i + 1) m).
    # Step j of v starts inside step (j n) // m of u; u's step i starts as many v steps as there
    # are multiples of n in [i m, (i + 1) m).
    starts = -((-np.arange(n + 1, dtype=np.int64) * m) // n)  # ceil(i m / n)
    u_at_start = np.repeat(u, np.diff(starts))
    total = float(n) * float(np.abs(v - u_at_start).sum())
    # Steps of v that a step boundary i m of u cuts in two: after the cut v_j pairs with u_i,
    # not u_(i-1).
    i = np.arange(1, n, dtype=np.int64)
    boundaries = i * m
    cut = boundaries % n != 0
    i, boundaries = i[cut], boundaries[cut]
    j = boundaries // n
    after = ((j + 1) * n - boundaries).astype(float)
    total += float(np.dot(after, np.abs(v[j] - u[i]) - np.abs(v[j] - u[i - 1])))
    return total / (n * m)


def wasserstein_normed(
    reference_values: np.ndarray, current_values: np.ndarray, reference_std: float
) -> float:
    """Wasserstein distance divided by the reference's standard deviation (at least 0.001, as
    Evidently), so that one threshold fits every scale."""
    return _wasserstein_sorted(_sorted(reference_values), _sorted(current_values)) / _norm(reference_std)


def _norm(reference_std: float) -> float:
    return max(float(reference_std), 0.001)


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        raise InputDataError("a binned test needs at least one value in each sample")
    return counts / total


def jensen_shannon(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Jensen-Shannon distance (natural log, so at most sqrt(ln 2) = 0.83) between two count or
    share vectors over the same bins: ``scipy.spatial.distance.jensenshannon``."""
    from scipy.spatial import distance

    return float(distance.jensenshannon(_shares(reference_counts), _shares(current_counts)))


def population_stability_index(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """PSI = sum over bins of (c - r) ln(c / r), shares r and c; an empty bin counts as 0.0001."""
    r = np.maximum(_shares(reference_counts), PSI_EMPTY_SHARE)
    c = np.maximum(_shares(current_counts), PSI_EMPTY_SHARE)
    return float(np.sum((c - r) * np.log(c / r)))


def _two_row_table(reference_counts: Sequence[float], current_counts: Sequence[float]) -> np.ndarray:
    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)])
    if table[0].sum() <= 0 or table[1].sum() <= 0:
        raise InputDataError("a test on counts needs at least one value in each sample")
    return table[:, table.sum(axis=0) > 0]


def chi_squared(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """p-value of the chi-squared test of homogeneity of two count vectors over the same
    categories (``scipy.stats.chi2_contingency`` on the 2 x k table, no continuity correction).

    A two-sample test: unlike a goodness-of-fit test against the reference shares, it treats the
    reference as a sample too, so a category the reference lacks does not make the p-value zero.
    """
    from scipy import stats

    table = _two_row_table(reference_counts, current_counts)
    if table.shape[1] < 2:
        return 1.0  # one category in both samples: nothing differs
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def proportion_z_test(
    reference_counts: Sequence[float], current_counts: Sequence[float], category: int = 0
) -> float:
    """Two-sided p-value of the pooled two-proportion Z-test on the share of ``category`` (an index
    into the count vectors) against all the others."""
    from scipy import stats

    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)])
    n, m = table[0].sum(), table[1].sum()
    if n <= 0 or m <= 0:
        raise InputDataError("the Z-test needs at least one value in each sample")
    p1, p2 = table[0, category] / n, table[1, category] / m
    pooled = (table[0, category] + table[1, category]) / (n + m)
    if pooled <= 0 or pooled >= 1:
        return 1.0  # the category is in every row of both samples, or in none
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return float(2 * stats.norm.sf(abs(z)))


def severity(method: str, score: float, threshold: float) -> float:
    """How far a score is towards (1.0) or past (> 1) its threshold, comparable across tests:
    distances score / threshold; p-values log(p) / log(threshold)."""
    if method in P_VALUE_METHODS:
        return abs(math.log(min(max(score, _TINY_P), 1.0)) / math.log(threshold))
    return score / threshold


def is_drift(method: str, score: float, threshold: float) -> bool:
    return score < threshold if method in P_VALUE_METHODS else score >= threshold
