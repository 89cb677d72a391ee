"""The `astar` format (Searchformer's create/close/plan): text, round trips, and the replay validator."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacot_core.domains.maze.problem import MazeConfig, MazeDomain, MazeProblem
from metacot_core.registry import get_format
from metacot_core.search.astar import astar
from metacot_core.search.bfs import bfs
from metacot_core.search.config import SearchConfig
from metacot_core.traces.astar import AstarFormat, linearize_plan, replay_plan
from metacot_core.traces.base import Reason, TraceParseError, Verdict

FMT = AstarFormat()
ASTAR = SearchConfig(algorithm="astar")


def walls_maze() -> MazeProblem:
    return MazeProblem(3, 3, [(0, 1), (1, 1)], (0, 0), (0, 2))


GOLDEN = """create 0 0 c0 c2
close 0 0 c0 c2
create 1 0 c1 c3
close 1 0 c1 c3
create 2 0 c2 c4
close 2 0 c2 c4
create 2 1 c3 c3
close 2 1 c3 c3
create 2 2 c4 c2
close 2 2 c4 c2
create 1 2 c5 c1
close 1 2 c5 c1
create 0 2 c6 c0
close 0 2 c6 c0
plan 0 0
plan 1 0
plan 2 0
plan 2 1
plan 2 2
plan 1 2
plan 0 2"""


def replay(text: str, problem: MazeProblem | None = None) -> Verdict:
    return FMT.replay(problem or walls_maze(), text)


def test_prompt_and_golden_trace():
    p = walls_maze()
    assert FMT.prompt(p) == "start 0 0 goal 0 2 wall 0 1 wall 1 1\n"
    assert FMT.linearize(p, astar(p, ASTAR)) == GOLDEN
    v = replay(GOLDEN)
    assert v.valid and v.solved and v.reason is None
    assert v.solution == ["1,0", "2,0", "2,1", "2,2", "1,2", "0,2"]
    assert v.states_visited == 7 and v.n_events == 21 and v.visited[0] == "0,0"


def test_registry_and_wrong_algorithm():
    assert get_format("astar").name == "astar" and get_format("astar").domains == ("maze",)
    p = walls_maze()
    with pytest.raises(ValueError, match="create/close"):
        FMT.linearize(p, bfs(p, SearchConfig(algorithm="bfs")))


def test_round_trip_events_text_events():
    domain = MazeDomain()
    for index in range(30):
        p = domain.make(MazeConfig(), "train", index, seed=2)
        tie = "random" if index % 2 else "deterministic"
        result = astar(p, SearchConfig(algorithm="astar", tie_breaking=tie), random.Random(index))
        text = FMT.linearize(p, result)
        assert FMT.parse(text) == result.events
        assert FMT.parse(FMT.prompt(p) + text) == result.events
        assert FMT.parse(" ".join(text.split())) == result.events  # line breaks are not significant


def test_parse_raises_on_bad_grammar():
    with pytest.raises(TraceParseError, match="unknown word"):
        FMT.parse("create 0 0 c0 c2\nopen 1 1")
    with pytest.raises(TraceParseError, match="needs 4 values"):
        FMT.parse("create 0 0 c0")


@pytest.mark.parametrize(("size", "count"), [(10, 200), (20, 60), (30, 20)])
def test_every_teacher_trace_replays_valid(size, count):
    domain = MazeDomain()
    for index in range(count):
        p = domain.make(MazeConfig(width=size, height=size), "train", index, seed=size)
        tie = "random" if index % 2 else "deterministic"
        result = astar(p, SearchConfig(algorithm="astar", tie_breaking=tie), random.Random(index))
        v = FMT.replay(p, FMT.prompt(p) + FMT.linearize(p, result))
        assert v.valid and v.solved, (index, v)
        assert v.solution == result.solution_text and v.states_visited == result.n_expanded
        plan = replay_plan(p, linearize_plan(p, result))
        assert plan.solved and plan.solution == result.solution_text


def test_unsolved_teacher_traces_are_valid_without_goal():
    rail = MazeProblem(3, 3, [(0, 1), (1, 1), (2, 1)], (0, 0), (0, 2))
    result = astar(rail, ASTAR)
    v = FMT.replay(rail, FMT.linearize(rail, result))
    assert v.valid and not v.solved and v.reason is Reason.NO_GOAL
    assert linearize_plan(rail, result) == ""
    p = MazeDomain().make(MazeConfig(width=20, height=20), "train", 0, seed=0)
    cut = astar(p, SearchConfig(algorithm="astar", node_budget=4))
    v = FMT.replay(p, FMT.linearize(p, cut))
    assert v.valid and not v.solved and v.reason is Reason.NO_GOAL and v.states_visited == 4


def edit(line_no: int, new: str | None, text: str = GOLDEN) -> str:
    lines = text.split("\n")
    if new is None:
        del lines[line_no]
    else:
        lines[line_no] = new
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("text", "reason", "step"),
    [
        ("", Reason.EMPTY, None),
        ("  \n ", Reason.EMPTY, None),
        ("start 0 0 goal 0 2 wall 0 1 wall 1 1", Reason.EMPTY, None),
        ("hello world", Reason.UNPARSEABLE, 0),
        ("create 0 0 c0 c2\nclose 0 0 c0", Reason.UNPARSEABLE, 1),
        ("create 0 0 c0 c2\nclose 0 0 0 2", Reason.UNPARSEABLE, 1),
        ("create 1 0 c1 c3", Reason.ILLEGAL_STEP, 0),  # the first create must be the start
        (edit(2, "create 0 1 c1 c1"), Reason.ILLEGAL_STEP, 2),  # into a wall
        (edit(4, "create 2 1 c2 c3"), Reason.ILLEGAL_STEP, 4),  # not a neighbour of the last closed (1,0)
        (edit(2, "create 1 0 c2 c3"), Reason.WRONG_COST, 2),  # g
        (edit(2, "create 1 0 c1 c2"), Reason.WRONG_COST, 2),  # h
        (edit(3, "close 1 0 c1 c4"), Reason.WRONG_COST, 3),
        (edit(3, "close 2 0 c2 c4"), Reason.BAD_JUMP, 3),  # never created
        (edit(3, "close 0 0 c0 c2"), Reason.ILLEGAL_STEP, 3),  # closed twice
        (edit(2, "create 0 0 c1 c2"), Reason.ILLEGAL_STEP, 2),  # re-create a closed node at a higher g
        (edit(14, "create 1 2 c7 c1"), Reason.ILLEGAL_STEP, 14),  # search goes on after the goal
        (edit(14, "plan 0 1"), Reason.ILLEGAL_STEP, 14),  # the plan must start at the start
        (edit(16, "plan 1 1"), Reason.ILLEGAL_STEP, 16),  # through a wall
        (edit(16, "plan 2 1"), Reason.ILLEGAL_STEP, 16),  # not a step
        (edit(20, None), Reason.SOLUTION_INVALID, 19),  # stops short of the goal
        (GOLDEN + "\ncreate 1 1 c0 c0", Reason.ILLEGAL_STEP, 21),
    ],
)
def test_wrong_traces_get_the_right_reason(text, reason, step):
    v = replay(text)
    assert not v.solved and v.reason is reason and v.step == step, v
    assert not v.valid or reason is Reason.EMPTY and not v.valid


def test_incomplete_but_legal_traces():
    lines = GOLDEN.split("\n")
    no_plan = "\n".join(lines[:14])
    v = replay(no_plan)
    assert v.valid and not v.solved and v.reason is Reason.SOLUTION_INVALID  # goal closed, plan missing
    v = replay("\n".join(lines[:13] + lines[14:]))  # plan written before the goal was closed
    assert v.valid and not v.solved and v.reason is Reason.NO_GOAL
    v = replay("\n".join(lines[:7]))
    assert v.valid and v.reason is Reason.NO_GOAL and v.states_visited == 3


def test_plan_cells_must_have_been_created():
    p = MazeProblem(3, 1, [], (0, 0), (2, 0))
    text = "create 0 0 c0 c2\nclose 0 0 c0 c2\nplan 0 0\nplan 1 0\nplan 2 0"
    v = FMT.replay(p, text)
    assert v.reason is Reason.BAD_JUMP and v.step == 3


def test_replay_plan_only():
    p = walls_maze()
    plan = "\n".join(GOLDEN.split("\n")[14:])
    assert linearize_plan(p, astar(p, ASTAR)) == plan
    assert replay_plan(p, plan).solved
    assert replay_plan(p, FMT.prompt(p) + plan).solved
    assert replay_plan(p, "").reason is Reason.EMPTY
    assert replay_plan(p, GOLDEN).reason is Reason.UNPARSEABLE
    assert replay_plan(p, "plan 0 0\nplan 0 1\nplan 0 2").reason is Reason.ILLEGAL_STEP
    assert replay_plan(p, "plan 0 0\nplan 1 0").reason is Reason.SOLUTION_INVALID
    assert replay_plan(p, "plan 0 0\nplan 1 0\nplan").reason is Reason.UNPARSEABLE


WORDS = st.sampled_from(["create", "close", "plan", "start", "goal", "wall", "0", "1", "2", "-1", "c0", "c1",
                         "c2", "c3", "c", "cx", "3", "99999999999", "\n", "x"])


def _never_raises(text: str) -> None:
    p = walls_maze()
    for judge in (FMT.replay, replay_plan):
        v = judge(p, text)
        assert isinstance(v, Verdict) and "internal error" not in v.detail
        assert v.solved <= v.valid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_replay_never_raises_on_any_text(text):
    _never_raises(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS, max_size=60))
def test_replay_never_raises_on_token_soup(words):
    _never_raises(" ".join(words))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_replay_never_raises_on_mutated_teacher_traces(data):
    lines = GOLDEN.split("\n")
    op = data.draw(st.sampled_from(["cut", "drop", "dup", "swap", "chars"]))
    if op == "cut":
        text = GOLDEN[: data.draw(st.integers(0, len(GOLDEN)))]
    elif op == "chars":
        i = data.draw(st.integers(0, len(GOLDEN) - 1))
        text = GOLDEN[:i] + data.draw(st.text(max_size=3)) + GOLDEN[i + 1:]
    else:
        i = data.draw(st.integers(0, len(lines) - 1))
        j = data.draw(st.integers(0, len(lines) - 1))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        text = "\n".join(lines)
    _never_raises(text)
