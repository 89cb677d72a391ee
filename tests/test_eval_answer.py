"""SoS's answer-only score next to the strict judge: same traces, both verdicts, by the problem's rules."""

from __future__ import annotations

import json
from pathlib import Path

from metacot_core.domains.countdown.answer import countdown_answer
from metacot_core.domains.countdown.problem import CountdownProblem
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.evaluation.answer_only import answer_solved
from metacot_core.evaluation.judge import judge
from metacot_core.evaluation.metrics import model_metrics

SOS_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos" / "val.jsonl"
PROBLEM = CountdownProblem([38, 2, 19], 57)
PROMPT = "Current State: 57:[38, 2, 19], Operations: []\n"
# One wrong explored operation (38+2=39) on a branch the search leaves, then a correct path to 57.
WANDERING = (
    "Exploring Operation: 38+2=39, Resulting Numbers: [19, 39]\n"
    "Generated Node #0,0: 57:[19, 39] Operation: 38+2=39\n"
    "Exploring Operation: 38+19=57, Resulting Numbers: [2, 57]\n"
    "Generated Node #0,1: 57:[2, 57] Operation: 38+19=57\n"
    "Moving to Node #0,1\n"
    "Current State: 57:[2, 57], Operations: ['38+19=57']\n"
    "Exploring Operation: 57/2=28, Resulting Numbers: [28]\n"
    "28,57 unequal: No Solution\n"
    "Moving to Node #0\n"
    "Current State: 57:[38, 2, 19], Operations: []\n"
    "Exploring Operation: 38/2=19, Resulting Numbers: [19, 19]\n"
    "Generated Node #0,2: 57:[19, 19] Operation: 38/2=19\n"
    "Moving to Node #0,2\n"
    "Current State: 57:[19, 19], Operations: ['38/2=19']\n"
    "Exploring Operation: 19+19=38, Resulting Numbers: [38]\n"
    "38,57 unequal: No Solution\n"
)


def test_every_solved_reference_trace_has_a_verified_answer():
    records = [json.loads(line) for line in SOS_DATA.read_text().splitlines()[:100]]
    for rec in records:
        problem = CountdownProblem(rec["nums"], rec["target"])
        ops = countdown_answer(rec["search_path"])
        assert (ops is not None) == (rec["rating"] > 0)
        if ops is not None:
            assert problem.verify(ops), ops
            assert answer_solved(problem, rec["search_path"], strict_solved=False)


def test_a_wrong_step_off_the_path_fails_the_strict_judge_but_not_the_answer():
    text = WANDERING + "Moving to Node #0\n" + (
        "Current State: 57:[38, 2, 19], Operations: []\n"
        "Exploring Operation: 38*2=76, Resulting Numbers: [19, 76]\n"
        "Generated Node #0,3: 57:[19, 76] Operation: 38*2=76\n"
        "Moving to Node #0,3\n"
        "Current State: 57:[19, 76], Operations: ['38*2=76']\n"
        "Exploring Operation: 76-19=57, Resulting Numbers: [57]\n"
        "57,57 equal: Goal Reached\n"
    )
    strict = judge(PROBLEM, SosFormat(), text, prompt=PROMPT)
    assert not strict.solved and strict.label == "wrong_arithmetic"
    assert countdown_answer(PROMPT + text) == ["38*2=76", "76-19=57"]
    assert answer_solved(PROBLEM, PROMPT + text, strict.solved)


def test_a_claimed_goal_with_a_wrong_path_is_not_an_answer():
    text = PROMPT + (
        "Exploring Operation: 38-2=24, Resulting Numbers: [19, 24]\n"
        "Generated Node #2: [19, 24] from Operation: 38-2=24\n"
        "Current State: 57:[19, 24], Operations: ['38-2=24']\n"
        "Exploring Operation: 19+24=57, Resulting Numbers: [57]\n"
        "57,57 equal: Goal Reached\n"
    )
    assert countdown_answer(text) == ["38-2=24", "19+24=57"]
    assert not answer_solved(PROBLEM, text, strict_solved=False)
    for garbage in ("", "57,57 equal: Goal Reached", "\x00\xff", "Exploring Operation: , Resulting"):
        assert not answer_solved(PROBLEM, garbage, strict_solved=False)


def test_mazes_have_no_separate_answer():
    from metacot_core.domains.maze.problem import MazeDomain

    domain = MazeDomain()
    maze = domain.make(domain.config_cls(width=10, height=10), "train", 0, 1)
    assert answer_solved(maze, "plan 1 1\n", strict_solved=False) is None
    records = [{"problem_id": "m", "sample_index": 0, "solved": False, "answer_solved": None, "valid": True,
                "label": "x"}]
    assert "answer_rate" not in model_metrics(records)


def test_answer_rate_has_its_own_interval():
    records = [{"problem_id": str(i), "sample_index": 0, "solved": i == 0, "answer_solved": i < 3,
                "valid": True, "label": "x"} for i in range(10)]
    m = model_metrics(records)
    assert m["solve_rate"] == 0.1 and m["answer_rate"] == 0.3
    assert m["answer_rate_ci_low"] < 0.3 < m["answer_rate_ci_high"]
