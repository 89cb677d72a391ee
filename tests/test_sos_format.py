"""sos and solution formats: round trips events -> text -> events, and each Reason of the replay judge."""

from __future__ import annotations

import random

import pytest

from metacot_core import registry
from metacot_core.domains.countdown.problem import CountdownDomain, CountdownProblem
from metacot_core.domains.countdown.solution import solution_events, sos_optimal_path
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.search.beam import beam
from metacot_core.search.config import SearchConfig, sos_mix
from metacot_core.search.dfs import dfs
from metacot_core.traces.base import Reason, TraceParseError
from metacot_core.traces.solution_only import SolutionFormat

SOS = SosFormat()
SOL = SolutionFormat()
P24 = CountdownProblem([4, 9, 3], 24)


def _problems(n: int, seed: int = 0) -> list[CountdownProblem]:
    domain = CountdownDomain()
    cfg = domain.config_cls()
    return [domain.make(cfg, "train", i, seed) for i in range(n)]


def test_registry_finds_formats():
    assert isinstance(registry.get_format("sos"), SosFormat)
    assert isinstance(registry.get_format("solution"), SolutionFormat)


def test_sos_round_trip_events_text_events():
    rng = random.Random(3)
    mix = sos_mix()
    for p in _problems(40):
        cfg = mix.sample(rng)
        result = registry.get_search(cfg.algorithm)(p, cfg, rng)
        text = SOS.linearize(p, result)
        assert SOS.parse(SOS.prompt(p) + text) == result.events
        assert SOS.parse(text) == result.events[1:]  # without the prompt line: no root Expand
        verdict = SOS.replay(p, SOS.prompt(p) + text)
        assert verdict.valid and verdict.solved == result.solved, verdict
        if text:  # a DFS whose root children are all pruned writes nothing after the prompt
            assert SOS.replay(p, text).solved == result.solved
        assert verdict.states_visited == result.n_expanded
        if result.solved:
            assert verdict.solution == result.solution_text


def test_solution_round_trip_and_verdict():
    for p in _problems(20, seed=1):
        steps = p.reference_solution()
        text = SOL.linearize(p, beam(p, SearchConfig(algorithm="beam"), random.Random(0)))
        full = SOL.prompt(p) + text
        assert full == sos_optimal_path(p.target, p.numbers, steps)
        assert SOL.parse(full) == solution_events(p, steps)
        assert SOL.parse(text) == solution_events(p, steps)[1:]
        verdict = SOL.replay(p, text)
        assert verdict.valid and verdict.solved and verdict.solution == steps


def test_solution_format_duplicate_numbers_stay_legal():
    # SoS's convert_to_path drops every copy of an operand; ours drops one, so the state stays legal.
    p = CountdownProblem([5, 5, 3, 7], 25)
    steps = p.reference_solution()
    assert SOL.replay(p, SOL.linearize(p, dfs(p, SearchConfig()))).solved
    buggy = sos_optimal_path(25, [5, 5, 3, 7], steps, duplicate_bug=True)
    if buggy != SOL.prompt(p) + SOL.linearize(p, dfs(p, SearchConfig())):
        assert not SOL.replay(p, buggy).solved


def test_parse_rejects_garbage():
    with pytest.raises(TraceParseError):
        SOS.parse("Current State: 24:[4, 9, 3], Operations: []\nhello world\n")
    with pytest.raises(TraceParseError):
        SOS.parse("24,24 equal: Goal Reached\n")
    with pytest.raises(TraceParseError):
        SOL.parse("Exploring Operation: 9-3=6, Resulting Numbers: [4, 6]\nnonsense\n")


GOOD = """Current State: 24:[4, 9, 3], Operations: []
Exploring Operation: 9+3=12, Resulting Numbers: [4, 12]
Generated Node #0,0: 24:[4, 12] Operation: 9+3=12
Exploring Operation: 9-3=6, Resulting Numbers: [4, 6]
Generated Node #0,1: 24:[4, 6] Operation: 9-3=6
Moving to Node #0,1
Current State: 24:[4, 6], Operations: ['9-3=6']
Exploring Operation: 4*6=24, Resulting Numbers: [24]
24,24 equal: Goal Reached
"""


def _bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(("text", "reason"), [
    ("", Reason.EMPTY),
    ("   \n\n", Reason.EMPTY),
    (_bad("Moving to Node #0,1", "Teleporting to #0,1"), Reason.UNPARSEABLE),
    (_bad("9+3=12, Resulting Numbers: [4, 12]", "9+3=13, Resulting Numbers: [4, 13]"),
     Reason.WRONG_ARITHMETIC),
    (_bad("9+3=12, Resulting Numbers: [4, 12]", "9+8=17, Resulting Numbers: [4, 17]"), Reason.UNKNOWN_NUMBER),
    (_bad("9-3=6, Resulting Numbers: [4, 6]", "3-9=6, Resulting Numbers: [4, 6]"), Reason.ILLEGAL_STEP),
    (_bad("Resulting Numbers: [4, 6]", "Resulting Numbers: [4, 7]"), Reason.WRONG_STATE),
    (_bad("Current State: 24:[4, 6], Operations: ['9-3=6']",
          "Current State: 24:[4, 12], Operations: ['9+3=12']"), Reason.WRONG_STATE),
    (_bad("Generated Node #0,1: 24:[4, 6]", "Generated Node #0,1: 24:[4, 5]"), Reason.WRONG_STATE),
    (_bad("Moving to Node #0,1", "Moving to Node #0,7"), Reason.BAD_JUMP),
    (_bad("4*6=24, Resulting Numbers: [24]\n24,24 equal", "4+6=10, Resulting Numbers: [10]\n10,24 equal"),
     Reason.FALSE_GOAL),
    (_bad("4*6=24, Resulting Numbers: [24]\n24,24 equal: Goal Reached",
          "4+6=10, Resulting Numbers: [10]\n10,24 unequal: No Solution"), Reason.NO_GOAL),
    (GOOD[:GOOD.index("Moving")], Reason.NO_GOAL),
])
def test_each_reason(text, reason):
    verdict = SOS.replay(P24, text)
    assert verdict.reason == reason, verdict
    assert verdict.solved is False
    assert verdict.valid == (reason == Reason.NO_GOAL)


def test_good_trace_and_prompt_checks():
    verdict = SOS.replay(P24, GOOD)
    assert verdict.valid and verdict.solved and verdict.reason is None
    assert verdict.solution == ["9-3=6", "4*6=24"] and verdict.states_visited == 2
    assert SOS.replay(P24, GOOD[GOOD.index("\n") + 1:]).solved  # without the prompt line
    other = CountdownProblem([4, 9, 3], 25)
    assert SOS.replay(other, GOOD).reason == Reason.WRONG_STATE  # prompt of another problem


def test_solution_invalid_reason():
    # A goal reached legally, but the problem's verifier disagrees (here: a problem whose verify is
    # stricter than the trace's rules; SOLUTION_INVALID is the judge's last line of defence).
    class Strict(CountdownProblem):
        def verify(self, solution):
            return False

    assert SOS.replay(Strict([4, 9, 3], 24), GOOD).reason == Reason.SOLUTION_INVALID


@pytest.mark.parametrize(("text", "reason"), [
    ("Exploring Operation: 9-3=7, Resulting Numbers: [4, 7]\n", Reason.WRONG_ARITHMETIC),
    ("Exploring Operation: 9-2=7, Resulting Numbers: [4, 7]\n", Reason.UNKNOWN_NUMBER),
    ("Exploring Operation: 9-3=6, Resulting Numbers: [4, 7]\n", Reason.WRONG_STATE),
    ("Exploring Operation: 9-3=6, Resulting Numbers: [4, 6]\n"
     "Generated Node #2: [4, 6] from Operation: 9-3=6\n"
     "Current State: 24:[4, 6], Operations: ['9-3=6']\nExploring Operation: 4+6=10, Resulting Numbers: [10]\n"
     "10,24 equal: Goal Reached\n", Reason.FALSE_GOAL),
    ("nonsense", Reason.UNPARSEABLE),
    ("", Reason.EMPTY),
])
def test_solution_format_reasons(text, reason):
    assert SOL.replay(P24, text).reason == reason


def test_linearize_rejects_other_domains():
    class Maze:
        domain = "maze"

        def to_instance(self):
            return {"width": 2}

    with pytest.raises(ValueError, match="Countdown only"):
        SOS.prompt(Maze())
