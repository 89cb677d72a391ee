"""Sokoban's plan metrics (numbers worked by hand), per-output fields, the A* reference, and its configs."""

from __future__ import annotations

import pytest
from metacot_core.experiment_config import load_experiment

from metacot_core.config import load_config
from metacot_core.data.config import GenerateConfig
from metacot_core.data.generate import generate_shard
from metacot_core.domains.sokoban.level import Level, border
from metacot_core.domains.sokoban.metrics import completion_fields, plan_metrics, reference
from metacot_core.domains.sokoban.problem import SokobanProblem


def corridor() -> SokobanProblem:
    return SokobanProblem(Level.build(7, 3, border(7, 3), [(2, 1)], [(4, 1)], (1, 1)))


def rec(pid, solved, plan, optimal, tokens, ref_tokens, deadlocks, steps, ref_steps, sample=0):
    return {"problem_id": pid, "sample_index": sample, "solved": solved, "plan_length": plan,
            "optimal_length": optimal, "n_tokens": tokens, "astar_tokens": ref_tokens, "deadlocks": deadlocks,
            "search_steps": steps, "astar_steps": ref_steps}


def test_plan_metrics_worked_by_hand():
    records = [
        rec("a", True, 10, 10, 500, 1000, 0, 40, 50),
        rec("a", False, None, 10, 9, 1000, 5, 1, 50, sample=1),  # a second sample: ignored (first only)
        rec("b", True, 12, 10, 800, 400, 1, 30, 20),
        rec("c", False, None, 8, 900, 600, 2, 100, 60),
    ]
    out = plan_metrics(records)
    assert out["n_levels"] == 3
    assert out["optimal_rate"] == pytest.approx(1 / 3)  # only a is optimal
    assert out["swc"] == pytest.approx((1 + 10 / 12 + 0) / 3)  # c * l* / max(l, l*)
    assert out["ilr"] == pytest.approx((1000 / 500 + 400 / 800 + 0) / 3)  # c * t* / t
    assert out["deadlocks_per_trace"] == pytest.approx((0 + 1 + 2) / 3)
    assert out["deadlock_trace_share"] == pytest.approx(2 / 3)
    # search steps over the optimally solved levels only (a): 40 / 50
    assert out["search_steps_ratio"] == pytest.approx(0.8)
    assert out["fewer_steps_share"] == 1.0 and out["n_optimal_with_steps"] == 1
    assert plan_metrics([]) == {}
    assert "search_steps_ratio" not in plan_metrics([rec("c", False, None, 8, 900, 600, 2, 100, 60)])


def test_reference_is_the_deterministic_astar_teacher():
    # the golden corridor trace (test_sokoban_traces.py): 7 create/close lines of 9 words, 3 plan lines of 3
    ref = reference(corridor(), count_tokens=lambda text: len(text.split()))
    assert ref == {"optimal_length": 2, "astar_closes": 3, "astar_steps": 7, "astar_tokens": 7 * 9 + 3 * 3}
    stuck = SokobanProblem(Level.build(7, 7, border(7, 7), [(1, 3)], [(3, 3)], (3, 1)))
    assert reference(stuck) == {}  # no plan exists: no reference


def test_completion_fields_count_deadlocks_and_search_steps():
    p = corridor()
    assert completion_fields(p, "create worker 1 1 box 2 1 c0 c2 close worker 1 1 box 2 1 c0 c2") == \
        {"deadlocks": 0, "search_steps": 2}
    # (4,1) is the dock; a box on (5,1) (the right end of the corridor) can never come back: a deadlock,
    # written in a create and again in a close (one state, counted once)
    text = "create worker 4 1 box 5 1 c3 c1 close worker 4 1 box 5 1 c3 c1 bogus"
    assert completion_fields(p, text) == {"deadlocks": 1, "search_steps": 2}
    room = SokobanProblem(Level.build(7, 7, border(7, 7), [(2, 2)], [(4, 4)], (2, 3)))
    assert completion_fields(room, "plan 2 3 plan 1 3 plan 1 2") == {"deadlocks": 0, "search_steps": 0}
    assert completion_fields(room, "plan 2 3 plan 2 2")["deadlocks"] == 1  # box pushed to (2,1), on the wall
    assert completion_fields(room, "plan 2 3 plan 2 2 plan 2 1")["deadlocks"] == 1  # then blocked: stops
    for junk in ("", "create worker 99 99 box 1 1 c0 c0", "create worker 1 1 c0 c0", None):
        assert set(completion_fields(p, junk)) == {"deadlocks", "search_steps"}  # type: ignore[arg-type]


def test_problem_hooks_delegate_to_the_metrics():
    p = corridor()
    assert p.eval_reference()["optimal_length"] == 2
    assert p.completion_fields("plan 1 1")["search_steps"] == 0
    assert SokobanProblem.plan_metrics([rec("a", True, 2, 2, 10, 20, 0, 3, 7)])["optimal_rate"] == 1.0
    assert p.row_fields() == {"optimal_length": None}


def test_generate_config_makes_rows_in_both_formats():
    for fmt in ("sokoban-astar", "sokoban-solution"):
        overrides = [f"format={fmt}", "counts.train=2"]
        cfg = load_config(GenerateConfig, "configs/sokoban/generate-cpu.yaml", overrides)
        rows = list(generate_shard(cfg, "train", 0, 2))
        assert [r["domain"] for r in rows] == ["sokoban", "sokoban"] and all(r["solved"] for r in rows)
        assert all(r["prompt"].startswith("worker ") for r in rows)


@pytest.mark.parametrize("path", ["configs/sokoban/astar-vs-solution-cpu.yaml",
                                  "configs/sokoban/astar-vs-solution-gpu.yaml"])
def test_experiment_configs_resolve_every_arm(path):
    exp = load_experiment(path)
    assert len(exp.arms) == 3
    formats = {a.label: a.pipeline.config.generate.overrides[-1] for a in exp.arms}
    assert any("sokoban-solution" in f for f in formats.values())
