"""Efficiency against the teacher on a toy table: ratios to the best strategy and the mix's mean,
and the problems beyond the teacher."""

from __future__ import annotations

import pytest

from metacot_core.evaluation.efficiency import (
    TeacherRun,
    problem_efficiency,
    summarize,
    teacher_runs_from_json,
    teacher_runs_from_rows,
)


def _sample(solved: bool, states: int, text: str = "") -> dict:
    return {"problem_id": "p", "solved": solved, "expanded": [str(i) for i in range(states)],
            "completion": text}


def test_efficiency_on_a_toy_table() -> None:
    runs = [TeacherRun("dfs", True, 12, weight=5.0), TeacherRun("beam1", True, 4),
            TeacherRun("beam2", False, 30)]
    # Two solving samples with 6 and 10 states: model 8. Best solving strategy: beam1 with 4 -> ratio 2.
    # Mix mean: (5 * 12 + 4 + 30) / 7 = 94 / 7 -> ratio 8 / (94 / 7) = 56 / 94.
    p1 = problem_efficiency("k1", [_sample(True, 6), _sample(False, 50), _sample(True, 10)], runs)
    assert (p1.model_states, p1.best_strategy, p1.best_states) == (8.0, "beam1", 4)
    assert p1.mix_mean_states == pytest.approx(94 / 7)
    assert p1.ratio_best == 2.0 and p1.ratio_mix == pytest.approx(56 / 94) and not p1.beyond_teacher
    # Solved by the model, by no strategy: beyond the teacher, with its trace.
    nobody = [TeacherRun("dfs", False, 20), TeacherRun("beam1", False, 3)]
    p2 = problem_efficiency("k2", [_sample(False, 1), _sample(True, 3, "the trace")], nobody)
    assert p2.beyond_teacher and p2.solving_trace == "the trace" and p2.ratio_best is None
    assert p2.ratio_mix == pytest.approx(3 / 11.5)
    p3 = problem_efficiency("k3", [_sample(False, 5)], runs)  # unsolved: no ratio
    assert p3.model_states is None and p3.ratio_best is None and not p3.beyond_teacher
    s = summarize([p1, p2, p3])
    assert (s["n_problems"], s["n_solved"]) == (3, 2)
    assert s["ratio_best_median"] == 2.0 and s["fewer_than_best_share"] == 0.0
    assert s["ratio_mix_median"] == pytest.approx((56 / 94 + 3 / 11.5) / 2)
    assert s["beyond_teacher_ids"] == ["p"] and s["beyond_teacher_share"] == pytest.approx(1 / 3)
    assert summarize([])["n_problems"] == 0


def test_teacher_runs_from_both_table_kinds() -> None:
    rows = [{"strategy": "dfs", "solved": True, "expanded": ["a", "b"], "weight": 5.0}]
    assert teacher_runs_from_rows(rows) == [TeacherRun("dfs", True, 2, 5.0)]
    old = teacher_runs_from_json({"bfs": {"solved": False, "n_expanded": 7}})
    assert old == [TeacherRun("bfs", False, 7)]
