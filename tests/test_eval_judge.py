"""The evaluator's judge: every verdict class from hand-made outputs, SoS reference traces judged valid,
garbage never raising, validator bugs recorded as their own class."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacot_core.evaluation.judge import VALIDATOR_ERROR, LineShapes, drop_partial_line, join_prompt, judge
from metacot_core.evaluation.runner import parse_prefix
from metacot_core.evaluation.teacher import check_tree
from metacot_core.registry import get_domain, get_format, get_search
from metacot_core.search.config import SearchConfig
from metacot_core.tokenizer import build_tokenizer
from metacot_core.traces.base import Reason, Verdict

SOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos"
MAZE = {"width": 3, "height": 3, "walls": [[1, 1]], "start": [0, 0], "goal": [2, 2]}


# --- mazes, A* format -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def maze():
    problem = get_domain("maze").from_instance(MAZE)
    fmt = get_format("astar")
    result = get_search("astar")(problem, SearchConfig(algorithm="astar"), random.Random(0))
    return problem, fmt, fmt.prompt(problem), fmt.linearize(problem, result)


def test_maze_teacher_trace_is_solved(maze):
    problem, fmt, prompt, trace = maze
    j = judge(problem, fmt, trace, truncated=False, prompt=prompt)
    assert j.label == "solved" and j.solved and j.valid
    assert j.verdict.solution == ["1,0", "2,0", "2,1", "2,2"]


@pytest.mark.parametrize(("old", "new", "label", "step"), [
    ("create 0 1 c1 c3", "create 2 2 c1 c3", "illegal_step", 2),  # not a neighbour of the closed node
    ("create 0 1 c1 c3", "create 0 1 c5 c3", "wrong_cost", 2),  # g written wrong
])
def test_maze_illegal_steps_are_classified_with_their_step(maze, old, new, label, step):
    problem, fmt, prompt, trace = maze
    j = judge(problem, fmt, trace.replace(old, new), prompt=prompt)
    assert (j.label, j.verdict.step, j.valid, j.solved) == (label, step, False, False)


def test_maze_no_goal_unparseable_and_empty(maze):
    problem, fmt, prompt, trace = maze
    head = "\n".join(trace.splitlines()[:5]) + "\n"
    assert judge(problem, fmt, head, prompt=prompt).label == "no_goal_claimed"
    assert judge(problem, fmt, "banana split", prompt=prompt).label == "unparseable"
    empty = judge(problem, fmt, "", prompt=prompt)
    assert empty.label == "empty" and empty.valid and not empty.solved  # nothing illegal was written
    assert judge(problem, fmt, " \n ", prompt=prompt).label == "empty"


def test_truncation_is_ran_out_of_tokens_unless_an_earlier_step_was_illegal(maze):
    problem, fmt, prompt, trace = maze
    cut = trace[:45]  # ends in the middle of a line
    assert judge(problem, fmt, cut, prompt=prompt).label == "unparseable"
    j = judge(problem, fmt, cut, truncated=True, prompt=prompt)
    assert j.label == "ran_out_of_tokens" and j.verdict.reason is Reason.TRUNCATED and j.truncated
    bad = trace.replace("create 0 1 c1 c3", "create 0 1 c5 c3")[:120]
    assert judge(problem, fmt, bad, truncated=True, prompt=prompt).label == "wrong_cost"
    # a complete solved trace that happened to hit the limit stays solved
    assert judge(problem, fmt, trace, truncated=True, prompt=prompt).label == "solved"


class _Raising:
    def replay(self, problem, text):
        raise RuntimeError("validator bug")


class _NotAVerdict:
    def replay(self, problem, text):
        return {"valid": True}


class _ClaimsSolved:
    """A validator that accepts anything with a made-up solution: the problem's verifier must catch it."""

    def replay(self, problem, text):
        return Verdict(valid=True, solved=True, solution=["0,1", "0,2"])


def test_validator_bugs_are_their_own_class(maze):
    problem, _, prompt, trace = maze
    j = judge(problem, _Raising(), trace, prompt=prompt)
    assert j.label == VALIDATOR_ERROR and "validator bug" in j.error and not j.solved
    assert judge(problem, _NotAVerdict(), trace).label == VALIDATOR_ERROR


class _CaughtItsOwnBug:
    def replay(self, problem, text):
        return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE,
                       detail="internal error: KeyError")


def test_validator_that_caught_its_own_bug_is_a_validator_error(maze):
    problem, _, _, trace = maze
    assert judge(problem, _CaughtItsOwnBug(), trace).label == VALIDATOR_ERROR


def test_claimed_solve_is_checked_by_the_problem_verifier(maze):
    problem, _, _, trace = maze
    j = judge(problem, _ClaimsSolved(), trace)
    assert j.label == "solution_invalid" and not j.solved


def test_join_prompt_and_partial_line():
    assert join_prompt("start 0 0", "create 0 0 c0 c4") == "start 0 0\ncreate 0 0 c0 c4"
    assert join_prompt("State: []\n", "Exploring") == "State: []\nExploring"
    assert drop_partial_line("a\nb\nc") == "a\nb\n"
    assert drop_partial_line("abc") == ""


# --- Countdown, SoS format --------------------------------------------------------------------------

def _sos_records() -> list[dict]:
    rows = []
    for name in ("train", "val", "val_target"):
        with open(SOS_DIR / f"{name}.jsonl") as fh:
            rows += [json.loads(line) for line in fh]
    return rows


def test_sos_reference_traces_judge_valid_as_model_output():
    """The 400 reference search_path traces, fed in as if a model wrote them after the prompt."""
    fmt = get_format("sos")
    domain = get_domain("countdown")
    records = _sos_records()
    assert len(records) == 400
    labels: Counter[str] = Counter()
    for rec in records:
        problem = domain.from_instance({"numbers": rec["nums"], "target": rec["target"]})
        prompt = fmt.prompt(problem)
        assert rec["search_path"].startswith(prompt)
        trace = rec["search_path"][len(prompt):]
        j = judge(problem, fmt, trace, prompt=prompt)
        assert j.valid, (rec["nums"], rec["target"], j.label, j.verdict.detail)
        if "Goal Reached" in trace:
            expected = "solved"
        else:  # SoS's DFS writes nothing after the prompt when it prunes every child of the root
            expected = "no_goal_claimed" if trace.strip() else "empty"
        assert j.label == expected, (rec["nums"], rec["target"], j.label)
        labels[expected] += 1
        # the tree walk behind the hallucination count and the alignment agrees: nothing illegal
        assert check_tree(problem, parse_prefix(fmt, rec["search_path"])).illegal == 0
    assert labels["solved"] == 224 and labels["no_goal_claimed"] + labels["empty"] == 176


@pytest.fixture(scope="module")
def countdown():
    problem = get_domain("countdown").from_instance({"numbers": [4, 6, 2], "target": 20})
    fmt = get_format("sos")
    cfg = SearchConfig(algorithm="dfs", heuristic="sum", prune_threshold=20)
    result = get_search("dfs")(problem, cfg, random.Random(0))
    assert result.solved
    return problem, fmt, fmt.prompt(problem), fmt.linearize(problem, result)


ROOT_GEN = ("Exploring Operation: 4+6=10, Resulting Numbers: [2, 10]\n"
            "Generated Node #0,0: 20:[2, 10] Operation: 4+6=10\n")


@pytest.mark.parametrize(("text", "label", "step"), [
    ("Exploring Operation: 4+6=11, Resulting Numbers: [2, 11]\n"
     "Generated Node #0,0: 20:[2, 11] Operation: 4+6=11\n", "wrong_arithmetic", 1),
    ("Exploring Operation: 4+7=11, Resulting Numbers: [2, 11]\n"
     "Generated Node #0,0: 20:[2, 11] Operation: 4+7=11\n", "unknown_number", 1),
    ("Exploring Operation: 6/4=1, Resulting Numbers: [2, 1]\n"
     "Generated Node #0,0: 20:[2, 1] Operation: 6/4=1\n", "illegal_step", 1),  # inexact division
    ("Exploring Operation: 4+6=10, Resulting Numbers: [2, 12]\n"
     "Generated Node #0,0: 20:[2, 12] Operation: 4+6=10\n", "wrong_state", 1),
    (ROOT_GEN + "Moving to Node #0,5\n", "bad_jump", 2),
    (ROOT_GEN + "Moving to Node #0,0\nCurrent State: 20:[2, 10], Operations: ['4+6=10']\n"
     "Exploring Operation: 10+2=12, Resulting Numbers: [12]\n12,20 equal: Goal Reached\n", "false_goal", 5),
    (ROOT_GEN + "banana\n", "unparseable", 2),
    (ROOT_GEN + "No solution found.", "no_goal_claimed", None),
])
def test_sos_hand_made_verdict_classes(countdown, text, label, step):
    problem, fmt, prompt, _ = countdown
    j = judge(problem, fmt, text, prompt=prompt)
    assert (j.label, j.verdict.step) == (label, step), j.verdict.detail
    assert not j.solved and j.valid == (label == "no_goal_claimed")


def test_sos_teacher_trace_solved_and_truncated(countdown):
    problem, fmt, prompt, trace = countdown
    j = judge(problem, fmt, trace, prompt=prompt)
    assert j.label == "solved" and j.verdict.solution == ["4+6=10", "2*10=20"]
    cut = trace[: trace.index("Moving to Node #0,1") + 12]  # decoding stopped inside a line
    j = judge(problem, fmt, cut, truncated=True, prompt=prompt)
    assert j.label == "ran_out_of_tokens" and j.valid


def test_cut_garbage_line_is_not_excused_with_reference_shapes(countdown):
    problem, fmt, prompt, trace = countdown
    shapes = LineShapes.from_texts([prompt + trace])
    assert shapes.could_continue("Exploring Operation: 12+3")
    assert shapes.could_continue("20,20 equal: Goal Rea")
    assert not shapes.could_continue("785785785785785785")  # digits longer than any number seen
    assert not shapes.could_continue("banana")
    cut = trace[: trace.index("Moving to Node #0,1") + 12]
    assert judge(problem, fmt, cut, truncated=True, prompt=prompt, shapes=shapes).label == "ran_out_of_tokens"
    garbage = trace[: trace.index("Moving to Node #0,1")] + "78578578578578578578"
    j = judge(problem, fmt, garbage, truncated=True, prompt=prompt, shapes=shapes)
    assert j.label == "unparseable" and not j.valid
    assert judge(problem, fmt, garbage, truncated=True, prompt=prompt).label == "ran_out_of_tokens"


PIECES = list("0123456789,:[]=+-*/# \n'") + [
    "Current State: ", "Exploring Operation: ", "Generated Node #", "Moving to Node #", " Goal Reached",
    " unequal: No Solution", ", Resulting Numbers: [", "], Operations: [", "create ", "close ", "plan ",
    "c3 ", "wall ", "No solution found.", "20,20 equal: Goal Reached\n"]
GARBAGE = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
PROBLEMS = (("countdown", {"numbers": [4, 6, 2], "target": 20}, "sos"), ("maze", MAZE, "astar"))


@settings(max_examples=150, deadline=None)
@given(text=GARBAGE, truncated=st.booleans())
def test_garbage_never_raises(text, truncated):
    for domain, instance, fmt_name in PROBLEMS:
        problem = get_domain(domain).from_instance(instance)
        fmt = get_format(fmt_name)
        j = judge(problem, fmt, text, truncated=truncated, prompt=fmt.prompt(problem))
        assert isinstance(j.label, str) and j.label != VALIDATOR_ERROR, j.error
        if j.solved:
            assert problem.verify(j.verdict.solution)


def test_random_tokens_never_raise():
    """Token soup from the word-level trace tokenizer, the way an untrained model writes."""
    tok = build_tokenizer([])
    rng = random.Random(0)
    for i in range(150):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(0, 60))]
        text = tok.decode(ids, skip_special_tokens=True)
        for domain, instance, fmt_name in PROBLEMS:
            problem = get_domain(domain).from_instance(instance)
            fmt = get_format(fmt_name)
            j = judge(problem, fmt, text, truncated=bool(i % 2), prompt=fmt.prompt(problem))
            assert not j.solved and j.label != VALIDATOR_ERROR, (text, j.error)
