"""pass@k curves from n samples with intervals, and coverage sets, on counts worked out by hand."""

from __future__ import annotations

import pytest

from metacot_core.evaluation.boundary import coverage, pass_curve, powers_of_two, solve_counts


def test_pass_curve_on_hand_counts() -> None:
    # Two problems, n = 4 samples each: p1 solved twice, p2 never.
    # pass@1 = (2/4 + 0) / 2 = 0.25; pass@2: p1 = 1 - C(2,2)/C(4,2) = 1 - 1/6 = 5/6, so 5/12;
    # pass@4: p1 = 1, so 0.5. Interval: sd of two values v1, v2 is |v1 - v2| / sqrt(2), so the
    # half width is 1.96 * |v1 - v2| / 2: 0.49 at k=1 -> [0, 0.74]; 0.98 * 5/6 at k=2; [0, 1] at k=4.
    counts = {"p1": (4, 2), "p2": (4, 0)}
    curve = pass_curve(counts)
    assert [p.k for p in curve] == [1, 2, 4]
    assert [p.value for p in curve] == pytest.approx([0.25, 5 / 12, 0.5])
    z = 1.959963984540054
    assert (curve[0].low, curve[0].high) == (0.0, pytest.approx(0.25 + z * 0.5 / 2))
    assert (curve[1].low, curve[1].high) == (0.0, 1.0)  # 5/12 +- 0.817, clipped to [0, 1]
    assert (curve[2].low, curve[2].high) == (0.0, 1.0)
    assert all(p.n_problems == 2 for p in curve)
    # Four problems, c = 3, 3, 1, 1 of 4: pass@1 values 0.75, 0.75, 0.25, 0.25, mean 0.5,
    # sd = sqrt(4 * 0.25^2 / 3) = 0.288675, half width 1.96 * 0.288675 / 2 = 0.28290.
    [k1] = pass_curve({"a": (4, 3), "b": (4, 3), "c": (4, 1), "d": (4, 1)}, ks=[1])
    assert k1.value == 0.5
    assert (k1.low, k1.high) == (pytest.approx(0.21710, abs=1e-5), pytest.approx(0.78290, abs=1e-5))


def test_pass_curve_edges() -> None:
    assert powers_of_two(64) == [1, 2, 4, 8, 16, 32, 64]
    assert powers_of_two(6) == [1, 2, 4, 6]
    assert pass_curve({}) == []
    same = pass_curve({"a": (8, 8), "b": (8, 8)}, ks=[1, 8, 16])  # k > n is left out
    assert [(p.k, p.value, p.low, p.high) for p in same] == [(1, 1.0, 1.0, 1.0), (8, 1.0, 1.0, 1.0)]
    [one] = pass_curve({"a": (1, 0)})
    assert (one.value, one.low, one.high) == (0.0, 0.0, 0.0)


def test_solve_counts_and_coverage_both_ways() -> None:
    recs = [{"split": "t", "instance": i, "solved": s} for i, s in
            [("x", True), ("x", False), ("y", False), ("y", False), ("z", True), ("w", False)]]
    a = solve_counts(recs)
    assert a == {("t", "x"): (2, 1), ("t", "y"): (2, 0), ("t", "z"): (1, 1), ("t", "w"): (1, 0)}
    b = {("t", "x"): (2, 0), ("t", "y"): (2, 2), ("t", "z"): (1, 1), ("t", "w"): (1, 0), ("t", "v"): (1, 1)}
    cov = coverage(a, b)
    assert cov == {"a_only": [("t", "x")], "b_only": [("t", "y")], "both": [("t", "z")],
                   "neither": [("t", "w")]}  # "v" is only in b: not compared
    back = coverage(b, a)
    assert back["a_only"] == cov["b_only"] and back["b_only"] == cov["a_only"]
