"""Intervals for shares and means over outputs that come n to a problem, and for their shift.

The fingerprint's shares (closest strategy, novel, algorithm undecided) and means (order similarity)
pool every output of every problem. The n samples of one problem are not independent draws (a short
search is short for all of them), so, as in boundary.py, the problems are the sample. A pooled share
is a ratio R = sum_i x_i / sum_i m_i over problems i, where x_i counts (or sums the value of) problem
i's outputs and m_i is how many of them the denominator holds. Its 95% interval is the linearized
(delta-method) one of the ratio estimator, clustered by problem (Cochran 1977, ch. 6):

    var(R) = P / (P - 1) * sum_i (x_i - R m_i)^2 / (sum_i m_i)^2

The shift R_B - R_A is paired on the problems both evaluations hold: problem i contributes
d_i = (xB_i - R_B mB_i) / M_B - (xA_i - R_A mA_i) / M_A, and var = P / (P - 1) * sum_i d_i^2.
With fewer than two problems there is no spread to measure, and the bounds are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from metacot_core.evaluation.metrics import Z95

Groups = Mapping[Hashable, tuple[float, float]]  # problem -> (x: what counts, m: outputs in the denominator)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A pooled ratio (or a shift of two) with its 95% interval over `n_problems` problems."""

    value: float
    low: float
    high: float
    n_problems: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _estimate(value: float, terms: list[float], z: float, clip: tuple[float, float] | None) -> Estimate:
    p = len(terms)
    if p < 2:
        return Estimate(value, math.nan, math.nan, p)
    half = z * math.sqrt(p / (p - 1) * sum(t * t for t in terms))
    low, high = value - half, value + half
    if clip is not None:
        low, high = max(clip[0], low), min(clip[1], high)
    return Estimate(value, low, high, p)


def _ratio_terms(groups: Groups) -> tuple[float, float, dict[Hashable, float]] | None:
    """R, the denominator's total and each problem's linearized term; None when nothing is counted."""
    total = sum(m for _, m in groups.values())
    if total <= 0:
        return None
    r = sum(x for x, _ in groups.values()) / total
    return r, total, {k: (x - r * m) / total for k, (x, m) in groups.items() if m > 0}


def ratio(groups: Groups, z: float = Z95, clip: tuple[float, float] | None = (0.0, 1.0)) -> Estimate | None:
    """sum(x) / sum(m) with its problem-clustered interval (clipped to `clip`); None if sum(m) is 0.

    Problems with m = 0 (no output in the denominator, e.g. no search written) add nothing to the
    ratio and are not counted among its problems."""
    parts = _ratio_terms(groups)
    if parts is None:
        return None
    r, _, terms = parts
    return _estimate(r, list(terms.values()), z, clip)


def ratio_shift(a: Groups, b: Groups, z: float = Z95) -> Estimate | None:
    """R_B - R_A on the problems both hold, with the paired interval; None if either ratio is empty."""
    common = a.keys() & b.keys()
    pa = _ratio_terms({k: a[k] for k in common})
    pb = _ratio_terms({k: b[k] for k in common})
    if pa is None or pb is None:
        return None
    terms = [pb[2].get(k, 0.0) - pa[2].get(k, 0.0) for k in common
             if a[k][1] > 0 or b[k][1] > 0]
    return _estimate(pb[0] - pa[0], terms, z, None)
