"""The `mcts` format: golden text, round trips, teacher traces valid on mazes and Countdown, wrong traces."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacot_core.domains.countdown.problem import CountdownConfig, CountdownDomain, CountdownProblem
from metacot_core.domains.maze.problem import MazeConfig, MazeDomain, MazeProblem
from metacot_core.registry import get_format
from metacot_core.search.astar import astar
from metacot_core.search.config import SearchConfig
from metacot_core.search.mcts import mcts
from metacot_core.traces.base import Reason, TraceParseError, Verdict
from metacot_core.traces.mcts import MctsFormat, format_events, render_events

FMT = MctsFormat()


def cfg(**kw) -> SearchConfig:
    return SearchConfig(algorithm="mcts", **kw)


def tiny_maze() -> MazeProblem:
    return MazeProblem(3, 2, [(1, 0)], (0, 0), (2, 0))


# The seeded trace of tests/test_search_mcts.py::test_golden_seeded_trace, as text.
GOLDEN = """expand n0 0,0
child n1 n0 0,1 -> 0,1
rollout n1 1,1 | 0,1 | 1,1 => 0.167
backup n1 1 0.167
backup n0 1 0.167
back n0
select n1 1 0.167
expand n1 0,1
child n2 n1 1,1 -> 1,1
rollout n2 2,1 | 1,1 | 2,1 => 0.250
backup n2 1 0.250
backup n1 2 0.208
backup n0 2 0.208
back n0
select n1 2 0.208
select n2 1 0.250
expand n2 1,1
child n3 n2 2,1 -> 2,1
rollout n3 2,0 => 1.000
backup n3 1 1.000
backup n2 2 0.625
backup n1 3 0.472
backup n0 3 0.472
back n0
select n1 3 0.472
select n2 2 0.625
select n3 1 1.000
expand n3 2,1
child n4 n3 2,0 -> 2,0
goal n4"""


def replay(text: str) -> Verdict:
    return FMT.replay(tiny_maze(), text)


def test_golden_text_and_prompts():
    p = tiny_maze()
    assert FMT.linearize(p, mcts(p, cfg(rollout_depth=3), random.Random(0))) == GOLDEN
    assert FMT.prompt(p) == "start 0 0 goal 2 0 wall 1 0\n"
    assert FMT.prompt(CountdownProblem([43, 15, 18, 9], 13)) == "problem numbers 43 15 18 9 target 13\n"
    v = replay(GOLDEN)
    assert v.valid and v.solved and v.solution == ["0,1", "1,1", "2,1", "2,0"]
    assert v.states_visited == 4 and v.visited == ["0,0", "0,1", "1,1", "2,1"] and v.n_events == 30
    assert get_format("mcts").name == "mcts" and set(get_format("mcts").domains) == {"countdown", "maze"}


def test_cannot_write_other_algorithms():
    p = tiny_maze()
    with pytest.raises(ValueError, match="mcts"):
        FMT.linearize(p, astar(p, SearchConfig(algorithm="astar")))


def _problems():
    maze, countdown = MazeDomain(), CountdownDomain()
    for index in range(40):
        yield maze.make(MazeConfig(), "train", index, seed=9), cfg(rollouts=index % 3)
    for index in range(40):
        yield countdown.make(CountdownConfig(), "train", index, seed=9), cfg(node_budget=40 + index * 5)


def test_round_trip_events_text_events():
    for index, (p, c) in enumerate(_problems()):
        result = mcts(p, c, random.Random(index))
        text = FMT.linearize(p, result)
        parsed = FMT.parse(FMT.prompt(p) + "\n" + text)
        assert parsed == render_events(p, result.events)
        assert format_events(parsed) == text


def test_every_teacher_trace_replays_valid():
    outcomes = set()
    maze, countdown = MazeDomain(), CountdownDomain()
    cases = [(maze.make(MazeConfig(), "train", i, seed=11), cfg(rollouts=i % 3, rollout_depth=10 + i))
             for i in range(100)]
    cases += [(maze.make(MazeConfig(width=15, height=15), "test", i, seed=11), cfg(node_budget=30))
              for i in range(30)]
    cases += [(countdown.make(CountdownConfig(), "train", i, seed=11), cfg(node_budget=20 + 3 * i))
              for i in range(100)]
    for index, (p, c) in enumerate(cases):
        result = mcts(p, c, random.Random(index))
        v = FMT.replay(p, FMT.prompt(p) + "\n" + FMT.linearize(p, result))
        assert v.valid and v.solved == result.solved, (index, v)
        assert v.states_visited == result.n_expanded
        if result.solved:
            assert v.solution == result.solution_text and p.verify(v.solution)
        else:
            assert v.reason is Reason.NO_GOAL
        outcomes.add((p.domain, result.solved))
    assert outcomes == {("maze", True), ("maze", False), ("countdown", True), ("countdown", False)}


def test_unsolvable_maze_trace_is_valid():
    rail = MazeProblem(3, 3, [(0, 1), (1, 1), (2, 1)], (0, 0), (0, 2))
    text = FMT.linearize(rail, mcts(rail, cfg(), random.Random(0)))
    assert text.endswith("deadend n2")
    v = FMT.replay(rail, text)
    assert v.valid and not v.solved and v.reason is Reason.NO_GOAL


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
        ("start 0 0 goal 2 0 wall 1 0\n", Reason.EMPTY, None),
        ("explore n0", Reason.UNPARSEABLE, 0),
        (edit(3, "backup n1 one 0.167"), Reason.UNPARSEABLE, 3),
        (edit(2, "rollout n1 1,1 | 0,1 | 1,1"), Reason.UNPARSEABLE, 2),
        (edit(0, "expand n0 1,1"), Reason.WRONG_STATE, 0),
        (edit(1, "child n1 n0 1,0 -> 1,0"), Reason.ILLEGAL_STEP, 1),  # into the wall
        (edit(1, "child n1 n0 0,1 -> 0,2"), Reason.WRONG_STATE, 1),
        (edit(1, "child n1 n7 0,1 -> 0,1"), Reason.ILLEGAL_STEP, 1),  # parent not being expanded
        (edit(8, "child n1 n1 1,1 -> 1,1"), Reason.ILLEGAL_STEP, 8),  # id reused
        (edit(8, "child n2 n1 0,0 -> 0,0"), Reason.ILLEGAL_STEP, 8),  # state already in the tree
        (edit(2, "rollout n1 2,1 => 0.250"), Reason.ILLEGAL_STEP, 2),  # not a neighbour
        (edit(2, "rollout n1 1,1 | 0,1 | 1,1 => 0.300"), Reason.WRONG_ARITHMETIC, 2),
        (edit(2, "rollout n0 => 0.250"), Reason.ILLEGAL_STEP, 2),  # the root is not a new child
        (edit(18, "rollout n3 2,0 | 2,1 => 0.250"), Reason.ILLEGAL_STEP, 18),  # past the goal
        (edit(3, "backup n1 2 0.167"), Reason.WRONG_ARITHMETIC, 3),
        (edit(11, "backup n1 2 0.250"), Reason.WRONG_ARITHMETIC, 11),
        (edit(11, "backup n0 2 0.208"), Reason.ILLEGAL_STEP, 11),  # skips n1 on the way up
        (edit(12, None), Reason.ILLEGAL_STEP, 12),  # backup stops before the root
        (edit(5, "back n9"), Reason.BAD_JUMP, 5),
        (edit(6, "select n9 1 0.167"), Reason.BAD_JUMP, 6),
        (edit(14, "select n2 1 0.250"), Reason.ILLEGAL_STEP, 14),  # not a child of the current node
        (edit(6, "select n1 2 0.167"), Reason.WRONG_ARITHMETIC, 6),
        (edit(6, "select n1 1 0.500"), Reason.WRONG_ARITHMETIC, 6),
        (edit(7, "expand n0 0,0"), Reason.ILLEGAL_STEP, 7),  # the current node is n1
        (edit(29, "goal n3"), Reason.FALSE_GOAL, 29),
        (edit(29, "goal n8"), Reason.BAD_JUMP, 29),
        (GOLDEN + "\nback n0", Reason.ILLEGAL_STEP, 30),
        (edit(2, "deadend n0"), Reason.ILLEGAL_STEP, 2),  # n0 has a child
    ],
)
def test_wrong_traces_get_the_right_reason(text, reason, step):
    v = replay(text)
    assert not v.valid and not v.solved and v.reason is reason and v.step == step, v


def test_truncated_trace_is_valid_but_unsolved():
    v = replay(edit(29, None))
    assert v.valid and not v.solved and v.reason is Reason.NO_GOAL and v.states_visited == 4


def test_countdown_steps_are_checked_by_the_rules():
    p = CountdownProblem([43, 15, 18, 9], 13)
    good = "expand n0 13:[43, 15, 18, 9]\nchild n1 n0 43-15=28 -> 13:[18, 9, 28]"
    assert replay_on(p, good).valid
    assert replay_on(p, good.replace("43-15=28 ->", "43-15=27 ->")).reason is Reason.ILLEGAL_STEP
    assert replay_on(p, good.replace("[18, 9, 28]", "[9, 18, 28]")).reason is Reason.WRONG_STATE
    # A repeated number: "52+88=140" is two different actions; the written state says which one.
    q = CountdownProblem([52, 83, 52, 88], 99)
    text = "expand n0 99:[52, 83, 52, 88]\nchild n1 n0 52+88=140 -> 99:[52, 83, 140]"
    assert replay_on(q, text).valid
    assert replay_on(q, text.replace("[52, 83, 140]", "[83, 52, 140]")).valid


def replay_on(p, text: str) -> Verdict:
    return FMT.replay(p, text)


def test_parse_raises_on_bad_grammar():
    with pytest.raises(TraceParseError, match="line 1"):
        FMT.parse("expand n0 0,0\nchild n1 n0 0,1")


def _never_raises(text: str) -> None:
    for p in (tiny_maze(), CountdownProblem([3, 5, 7], 8)):
        v = FMT.replay(p, text)
        assert isinstance(v, Verdict) and "internal error" not in v.detail
        assert v.solved <= v.valid


WORDS = st.sampled_from(["expand", "child", "rollout", "backup", "back", "select", "deadend", "goal", "n0",
                         "n1", "n2", "0,1", "1,1", "->", "=>", "|", "1", "0.5", "nan", "inf", "\n", "8:[8]",
                         "3+5=8", "problem", "start"])


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
    v = replay(text)
    assert isinstance(v, Verdict) and "internal error" not in v.detail
    if v.solved:
        assert tiny_maze().verify(v.solution)
