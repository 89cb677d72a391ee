"""Problem-clustered intervals of pooled shares (metacot_core/evaluation/clustered.py).

The reference is a bootstrap over problems, the interval RESULTS 8 first used: on 60 problems of 16
samples each the delta-method interval must land within a few hundredths of it, and it must be wider
than the i.i.d. Wilson interval when one problem's samples agree with each other.
"""

from __future__ import annotations

import math
import random

import pytest

from metacot_core.evaluation.clustered import ratio, ratio_shift
from metacot_core.evaluation.metrics import wilson_interval


def _problems(seed: int, n_problems: int = 60, n: int = 16) -> dict[int, tuple[float, float]]:
    """Per-problem (successes, samples) where each problem has its own rate (a Beta draw)."""
    rng = random.Random(seed)
    out = {}
    for i in range(n_problems):
        rate = rng.betavariate(0.6, 0.9)
        out[i] = (float(sum(rng.random() < rate for _ in range(n))), float(n))
    return out


def _bootstrap(groups: dict[int, tuple[float, float]], resamples: int = 4000) -> tuple[float, float]:
    rng = random.Random(0)
    keys = list(groups)
    stats = []
    for _ in range(resamples):
        pick = [groups[rng.choice(keys)] for _ in keys]
        stats.append(sum(x for x, _ in pick) / sum(m for _, m in pick))
    stats.sort()
    return stats[int(0.025 * resamples)], stats[int(0.975 * resamples) - 1]


def test_clustered_interval_matches_a_problem_bootstrap_and_is_wider_than_iid() -> None:
    groups = _problems(1)
    est = ratio(groups)
    assert est is not None and est.n_problems == 60
    low, high = _bootstrap(groups)
    assert est.low == pytest.approx(low, abs=0.03) and est.high == pytest.approx(high, abs=0.03)
    successes, outputs = sum(x for x, _ in groups.values()), sum(m for _, m in groups.values())
    w_low, w_high = wilson_interval(successes, int(outputs))
    assert est.high - est.low > 1.5 * (w_high - w_low)  # 16 correlated samples are not 16 draws


def test_a_paired_shift_is_narrower_than_the_two_intervals_combined() -> None:
    a = _problems(2)
    # B solves what A solves plus one more sample where it can: the problems carry most of the spread.
    b = {k: (min(m, x + 1.0), m) for k, (x, m) in a.items()}
    shift = ratio_shift(a, b)
    ea, eb = ratio(a), ratio(b)
    assert shift is not None and ea is not None and eb is not None
    assert shift.value == pytest.approx(eb.value - ea.value)
    unpaired = math.hypot(ea.high - ea.value, eb.high - eb.value)
    assert 0.0 < shift.high - shift.value < 0.5 * unpaired
    assert shift.low > 0.0  # every problem moved the same way


def test_ratio_edge_cases() -> None:
    assert ratio({}) is None and ratio({"p": (0.0, 0.0)}) is None  # nothing in the denominator
    one = ratio({"p": (3.0, 4.0), "q": (0.0, 0.0)})  # q wrote no search: not among the problems
    assert one is not None and one.value == 0.75 and one.n_problems == 1 and math.isnan(one.low)
    flat = ratio({"p": (2.0, 4.0), "q": (1.0, 2.0)})  # every problem at the pooled rate: no spread
    assert flat is not None and (flat.low, flat.high) == pytest.approx((0.5, 0.5))
    mean = ratio({"p": (9.0, 3.0), "q": (3.0, 3.0)}, clip=None)  # a mean above 1 is not clipped
    assert mean is not None and mean.value == 2.0 and mean.high > 3.0
    assert ratio_shift({"p": (1.0, 2.0)}, {"q": (1.0, 2.0)}) is None  # no common problem
