"""Sokoban A* and plan-only formats: golden trace, round trips, the replay validator's rejections,
teacher traces, single-token corruptions and garbage (hypothesis)."""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacot_core.domains.sokoban.astar_trace import MAX_TRACE_CHARS, SokobanAstarFormat
from metacot_core.domains.sokoban.generate import SokobanConfig, SokobanDomain
from metacot_core.domains.sokoban.level import Level, border
from metacot_core.domains.sokoban.problem import SokobanProblem
from metacot_core.domains.sokoban.solution_trace import SokobanSolutionFormat
from metacot_core.search.astar import astar
from metacot_core.search.bfs import bfs
from metacot_core.search.config import SearchConfig
from metacot_core.traces.base import Reason, TraceParseError, Verdict

FMT = SokobanAstarFormat()
PLAN = SokobanSolutionFormat()
ASTAR = SearchConfig(algorithm="astar")
FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def corridor() -> SokobanProblem:
    """#######
       #@$ . #
       #######"""
    return SokobanProblem(Level.build(7, 3, border(7, 3), [(2, 1)], [(4, 1)], (1, 1)))


# Worked by hand: h = distance of the box to the dock. From the start only "right" is legal (a push);
# from (2,1) "left" (g 2, h 1, f 3) and "right" (push onto the dock: g 2, h 0, f 2) are created in
# the canonical order, and the lower f is closed: the goal.
GOLDEN = """create worker 1 1 box 2 1 c0 c2
close worker 1 1 box 2 1 c0 c2
create worker 2 1 box 3 1 c1 c1
close worker 2 1 box 3 1 c1 c1
create worker 1 1 box 3 1 c2 c1
create worker 3 1 box 4 1 c2 c0
close worker 3 1 box 4 1 c2 c0
plan 1 1
plan 2 1
plan 3 1"""


def test_golden_trace_prompt_and_verdict():
    p = corridor()
    assert FMT.prompt(p).startswith("worker 1 1 box 2 1 dock 4 1 wall 0 0 ")
    assert FMT.linearize(p, astar(p, ASTAR)) == GOLDEN
    v = FMT.replay(p, FMT.prompt(p) + GOLDEN)
    assert v.valid and v.solved and v.reason is None
    assert v.solution == ["2,1", "3,1"] and v.states_visited == 3 and v.n_events == 10
    assert v.visited == ["1,1/2,1", "2,1/3,1", "3,1/4,1"]
    assert PLAN.linearize(p, bfs(p, SearchConfig(algorithm="bfs"))) == "plan 1 1\nplan 2 1\nplan 3 1"
    assert PLAN.replay(p, PLAN.prompt(p) + "plan 1 1 plan 2 1 plan 3 1").solved
    other = FMT.prompt(p).replace("dock 4 1", "dock 5 1")
    assert FMT.replay(p, other + GOLDEN).reason == Reason.WRONG_STATE  # the prompt of another level


def test_parse_round_trips_the_search_events():
    domain, cfg = SokobanDomain(), SokobanConfig()
    for index in range(6):
        p = domain.make(cfg, "train", index, seed=4)
        tie = "random" if index % 2 else "deterministic"
        result = astar(p, SearchConfig(algorithm="astar", tie_breaking=tie), random.Random(index))
        text = FMT.linearize(p, result)
        assert FMT.parse(text) == result.events
        assert FMT.parse(FMT.prompt(p) + text) == result.events
        assert FMT.parse(" ".join(text.split())) == result.events
    with pytest.raises(TraceParseError):
        FMT.parse("create worker 1 1 c0")
    with pytest.raises(ValueError, match="create/close"):
        FMT.linearize(p, bfs(p, SearchConfig(algorithm="bfs")))


def test_deterministic_astar_is_reproducible():
    p = SokobanDomain().make(SokobanConfig(), "train", 2, seed=0)
    assert FMT.linearize(p, astar(p, ASTAR)) == FMT.linearize(p, astar(p, ASTAR))


def room() -> SokobanProblem:
    """Player (2,3); boxes (3,3) and (4,3) side by side to its right; a wall (2,4) below the player;
    docks (1,1) and (5,5)."""
    return SokobanProblem(Level.build(7, 7, [*border(7, 7), (2, 4)], [(3, 3), (4, 3)], [(1, 1), (5, 5)],
                                      (2, 3)))


START = "create worker 2 3 box 3 3 box 4 3 c0 c{h} close worker 2 3 box 3 3 box 4 3 c0 c{h} "


def judge(text: str, problem: SokobanProblem | None = None) -> Verdict:
    p = problem or room()
    h = int(p.heuristic(p.initial_state()))
    return FMT.replay(p, text.replace("{h}", str(h)))


def test_room_start_heuristic_by_hand():
    # (3,3) -> nearest of (1,1), (5,5): 2 + 2 = 4; (4,3) -> (5,5): 1 + 2 = 3
    assert room().heuristic(room().initial_state()) == 7.0


@pytest.mark.parametrize("tail, reason, detail", [
    # push into another box: (3,3) cannot go to (4,3)
    ("create worker 3 3 box 4 3 box 5 3 c1 c5", Reason.ILLEGAL_STEP, "cannot be pushed"),
    # move through a wall: (2,4) is a wall
    ("create worker 2 4 box 3 3 box 4 3 c1 c7", Reason.ILLEGAL_STEP, "into a wall"),
    # two cells at once
    ("create worker 2 1 box 3 3 box 4 3 c1 c7", Reason.ILLEGAL_STEP, "not one cell"),
    # a box that moved without a push
    ("create worker 2 2 box 3 2 box 4 3 c1 c7", Reason.WRONG_STATE, "gives"),
    # close of a node never created
    ("close worker 1 3 box 3 3 box 4 3 c1 c7", Reason.BAD_JUMP, "never created"),
    # wrong g, wrong h
    ("create worker 2 2 box 3 3 box 4 3 c2 c7", Reason.WRONG_COST, "g is 2"),
    ("create worker 2 2 box 3 3 box 4 3 c1 c6", Reason.WRONG_COST, "h is 6"),
    # closed with other costs than created
    ("create worker 2 2 box 3 3 box 4 3 c1 c7 close worker 2 2 box 3 3 box 4 3 c1 c8", Reason.WRONG_COST,
     "created with"),
    # created twice at the same cost
    ("create worker 2 2 box 3 3 box 4 3 c1 c7 create worker 2 2 box 3 3 box 4 3 c1 c7", Reason.ILLEGAL_STEP,
     "already open"),
    # the start closed twice
    ("close worker 2 3 box 3 3 box 4 3 c0 c7", Reason.ILLEGAL_STEP, "already closed"),
    # a plan before the goal was closed
    ("plan 2 3 plan 2 2", Reason.FALSE_GOAL, "before the goal"),
    # a step that follows no rule of the grammar
    ("create worker 2 2 box 3 3 box 4 3 c1", Reason.UNPARSEABLE, "cG cH"),
    ("move 2 2", Reason.UNPARSEABLE, "unknown word"),
])
def test_replay_rejects_each_illegal_step(tail, reason, detail):
    v = judge(START + tail)
    assert not v.valid and not v.solved and v.reason == reason and detail in v.detail
    assert v.step is not None


def test_first_create_must_be_the_start_with_cost_zero():
    assert judge("create worker 1 3 box 3 3 box 4 3 c0 c7").reason == Reason.ILLEGAL_STEP
    assert judge("create worker 2 3 box 3 3 box 4 3 c1 c7").reason == Reason.WRONG_COST
    assert judge("create worker 2 3 box 3 3 box 4 3 c0 c7 create worker 2 2 box 3 3 box 4 3 c1 c7").reason \
        == Reason.ILLEGAL_STEP  # a child before the start was closed


def test_push_into_a_dead_corner_is_rejected_as_a_deadlock():
    # box (4,1) pushed right from (3,1) would sit on (5,1): walls above and to the right, no dock
    p = SokobanProblem(Level.build(7, 7, border(7, 7), [(4, 1)], [(4, 4)], (3, 1)))
    h = int(p.heuristic(p.initial_state()))
    text = (f"create worker 3 1 box 4 1 c0 c{h} close worker 3 1 box 4 1 c0 c{h} "
            "create worker 4 1 box 5 1 c1 c4")
    v = FMT.replay(p, text)
    assert v.reason == Reason.ILLEGAL_STEP and "deadlock" in v.detail


def test_plans_that_do_not_reach_the_goal_or_break_the_rules_are_rejected():
    p = corridor()
    head = GOLDEN.split("plan")[0]
    assert FMT.replay(p, head + "plan 1 1 plan 2 1").reason == Reason.SOLUTION_INVALID
    assert FMT.replay(p, head + "plan 2 1 plan 3 1").reason == Reason.ILLEGAL_STEP  # not from the start
    assert FMT.replay(p, head + "plan 1 1 plan 1 0").reason == Reason.ILLEGAL_STEP  # into a wall
    assert FMT.replay(p, head + "plan 1 1 plan 2 1 plan 3 1 close worker 3 1 box 4 1 c2 c0").reason \
        == Reason.ILLEGAL_STEP  # a step after the plan
    assert FMT.replay(p, head).reason == Reason.SOLUTION_INVALID  # goal closed, no plan
    partial = "\n".join(GOLDEN.splitlines()[:4])
    v = FMT.replay(p, partial)
    assert v.valid and not v.solved and v.reason == Reason.NO_GOAL
    assert PLAN.replay(p, "plan 1 1 plan 2 1").reason == Reason.SOLUTION_INVALID
    assert PLAN.replay(p, GOLDEN).reason == Reason.UNPARSEABLE  # search steps in a plan-only text
    assert PLAN.replay(p, "").reason == Reason.EMPTY


def test_plan_states_must_have_been_created():
    # a correct plan after a search that never created the plan's middle state
    p = corridor()
    text = ("create worker 1 1 box 2 1 c0 c2 close worker 1 1 box 2 1 c0 c2 "
            "create worker 2 1 box 3 1 c1 c1 close worker 2 1 box 3 1 c1 c1 "
            "create worker 3 1 box 4 1 c2 c0 close worker 3 1 box 4 1 c2 c0 plan 1 1 plan 2 1 plan 3 1")
    assert FMT.replay(p, text).solved
    v = FMT.replay(p, text.replace("create worker 2 1 box 3 1 c1 c1 close worker 2 1 box 3 1 c1 c1 ", ""))
    assert not v.solved


def test_too_long_texts_are_refused_before_reading():
    v = FMT.replay(corridor(), "x" * (MAX_TRACE_CHARS + 1))
    assert v.reason == Reason.UNPARSEABLE and "MAX_TRACE_CHARS" in v.detail


@cache
def teacher(index: int, tie: str) -> tuple[SokobanProblem, str]:
    p = SokobanDomain().make(SokobanConfig(), "train", index, seed=7)
    result = astar(p, SearchConfig(algorithm="astar", tie_breaking=tie), random.Random(index))
    return p, FMT.prompt(p) + FMT.linearize(p, result)


@FAST
@given(index=st.integers(0, 7), tie=st.sampled_from(["deterministic", "random"]))
def test_every_teacher_trace_replays_valid_and_optimal(index, tie):
    p, text = teacher(index, tie)
    v = FMT.replay(p, text)
    assert v.valid and v.solved and len(v.solution) == p.optimal_length
    plan = "\n".join(line for line in text.splitlines() if line.startswith("plan"))
    assert PLAN.replay(p, plan).solved


VOCAB = ["create", "close", "plan", "worker", "box", "dock", "wall", "c0", "c1", "c3", "c9", "c12",
         *map(str, range(8)), "x", "-1", "c-1"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 3), where=st.floats(0, 1, exclude_max=True), token=st.sampled_from(VOCAB))
def test_single_token_corruptions_are_rejected_or_stay_consistent(index, where, token):
    p, text = teacher(index, "deterministic")
    tokens = text.split()
    k = int(where * len(tokens))
    if tokens[k] == token:
        return
    corrupted = " ".join([*tokens[:k], token, *tokens[k + 1:]])
    v = FMT.replay(p, corrupted)
    assert isinstance(v, Verdict)
    if v.solved:  # a corruption that still reads as a legal, solved search must really solve the level
        assert v.valid and p.verify(v.solution)
        again = FMT.replay(p, corrupted)
        assert again.solved and again.solution == v.solution


@settings(max_examples=40, deadline=None)
@given(text=st.one_of(st.text(max_size=300),
                      st.lists(st.sampled_from(VOCAB), max_size=80).map(" ".join)))
def test_garbage_gets_a_verdict_never_an_exception(text):
    p = corridor()
    for fmt in (FMT, PLAN):
        v = fmt.replay(p, text)
        assert isinstance(v, Verdict) and not (v.solved and not p.verify(v.solution))
    for junk in (None, b"plan 1 1", 3):
        for fmt in (FMT, PLAN):
            v = fmt.replay(p, junk)  # type: ignore[arg-type]
            assert v.reason == Reason.UNPARSEABLE and "expected text" in v.detail
