"""The exploration boundary: pass@k curves from n samples per problem, and the coverage sets of two models.

Does training widen what a model can reach, or only sharpen pass@1 (Yue et al. 2025)? Sampling n = 64
completions per problem at temperature 1.0 gives, per problem, c of n solved; pass@k for k = 1, 2, 4,
..., n is the mean over problems of the unbiased estimator 1 - C(n - c, k) / C(n, k)
(metrics.pass_at_k). A curve that ends higher at k = 64 reaches more problems; one that starts higher
but meets the other only sharpens.

Intervals: the problems are the sample (each problem's pass@k is already an unbiased estimate from
its n draws), so the 95% interval is the normal one over problems, mean +- 1.96 * sd / sqrt(P),
clipped to [0, 1]; the sampling noise inside each problem adds to that spread and is counted in it.

The shift from model A to model B at each k is paired on the problems both hold (each problem's
pass@k difference; clustered.ratio_shift with one unit per problem), so a widening is tested on the
same problems rather than by two overlapping intervals.

Coverage: problems a model solves in at least one of its n samples. `coverage` gives the problems
model A solves at some k and model B never solves in its n samples, and the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metacot_core.evaluation.clustered import Estimate, ratio_shift
from metacot_core.evaluation.metrics import Z95, pass_at_k

Counts = Mapping[Hashable, tuple[int, int]]  # problem -> (n samples, c solved)


@dataclass(frozen=True, slots=True)
class PassPoint(Estimate):
    """pass@k over `n_problems` problems, with its 95% interval."""

    k: int


def solve_counts(records: Iterable[Mapping[str, Any]], key: str | Sequence[str] = ("split", "instance")
                 ) -> dict[Hashable, tuple[int, int]]:
    """(n, c) per problem from per-completion records (one per sample)."""
    names = (key,) if isinstance(key, str) else tuple(key)
    out: dict[Hashable, list[int]] = {}
    for rec in records:
        k = tuple(rec[name] for name in names) if len(names) > 1 else rec[names[0]]
        n_c = out.setdefault(k, [0, 0])
        n_c[0] += 1
        n_c[1] += bool(rec["solved"])
    return {k: (n, c) for k, (n, c) in out.items()}


def powers_of_two(n: int) -> list[int]:
    """1, 2, 4, ... up to n (and n itself when it is not a power of two)."""
    if n < 1:
        return []
    ks = [2 ** i for i in range(int(math.log2(n)) + 1)]
    return ks if ks[-1] == n else [*ks, n]


def pass_curve(counts: Counts, ks: Sequence[int] | None = None, z: float = Z95) -> list[PassPoint]:
    """pass@k with intervals for each k (default: powers of two up to the smallest n)."""
    if not counts:
        return []
    n_min = min(n for n, _ in counts.values())
    ks = powers_of_two(n_min) if ks is None else [k for k in ks if 1 <= k <= n_min]
    out = []
    for k in ks:
        values = [pass_at_k(n, c, k) for n, c in counts.values()]
        out.append(_point(k, values, z))
    return out


def _point(k: int, values: Sequence[float], z: float) -> PassPoint:
    p = len(values)
    mean = sum(values) / p
    if p < 2:
        return PassPoint(mean, 0.0 if mean < 1 else 1.0, 1.0 if mean > 0 else 0.0, p, k=k)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (p - 1))
    half = z * sd / math.sqrt(p)
    return PassPoint(mean, max(0.0, mean - half), min(1.0, mean + half), p, k=k)


def coverage(a: Counts, b: Counts) -> dict[str, list[Hashable]]:
    """Problems both hold, split by who solves them in at least one sample: a_only, b_only, both, neither."""
    common = [k for k in a if k in b]
    out: dict[str, list[Hashable]] = {"a_only": [], "b_only": [], "both": [], "neither": []}
    for k in common:
        sa, sb = a[k][1] > 0, b[k][1] > 0
        out["both" if sa and sb else "a_only" if sa else "b_only" if sb else "neither"].append(k)
    return out


def pass_shift(a: Counts, b: Counts, ks: Sequence[int], z: float = Z95) -> dict[int, Estimate]:
    """pass@k of B minus A on the problems both hold, with the paired 95% interval, for each k both reach."""
    common = [key for key in a if key in b]
    out: dict[int, Estimate] = {}
    for k in ks:
        if not common or k > min(min(a[key][0], b[key][0]) for key in common):
            continue
        ga = {key: (pass_at_k(a[key][0], a[key][1], k), 1.0) for key in common}
        gb = {key: (pass_at_k(b[key][0], b[key][1], k), 1.0) for key in common}
        est = ratio_shift(ga, gb, z)
        if est is not None:
            out[k] = est
    return out
