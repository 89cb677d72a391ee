"""The replay judges never raise: any string (empty, binary garbage, truncated or mangled traces)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metacot_core.domains.countdown.problem import CountdownProblem
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.search.beam import beam
from metacot_core.search.config import SearchConfig
from metacot_core.search.dfs import dfs
from metacot_core.traces.base import Reason, Verdict
from metacot_core.traces.solution_only import SolutionFormat

SOS = SosFormat()
SOL = SolutionFormat()
P = CountdownProblem([43, 15, 18, 9], 13)
TRACES = [
    SOS.prompt(P) + SOS.linearize(P, dfs(P, SearchConfig(algorithm="dfs", heuristic="sum"))),
    SOS.prompt(P) + SOS.linearize(P, beam(P, SearchConfig(algorithm="beam", beam_width=3), random.Random(1))),
    SOL.prompt(P) + SOL.linearize(P, dfs(P, SearchConfig())),
]
WORDS = ["Current State: ", "13:[", "Exploring Operation: ", ", Resulting Numbers: [", "Generated Node #",
         "Moving to Node #", " unequal: No Solution", " equal: Goal Reached", "No solution found.",
         "Operation: ", ", Operations: [", "'", "]", "\n", ",", "0", "1", "13", "43-15=28", "9", "*", "/",
         "270", "99999999999999999999999999999999999", "-", "=", " "]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _judge_all(text: str) -> None:
    for fmt in (SOS, SOL):
        verdict = fmt.replay(P, text)
        assert isinstance(verdict, Verdict)
        assert verdict.solved is False or verdict.valid  # solved implies valid
        if verdict.solved:
            assert P.verify(verdict.solution)
        # A caught exception's detail starts "internal error:"; the input itself may say "internal error"
        # (hypothesis once drew exactly that text, which the grammar message quotes).
        assert not verdict.detail.startswith("internal error"), verdict.detail


@SETTINGS
@given(st.text())
@example(text="internal error")
def test_random_text(text):
    _judge_all(text)


@SETTINGS
@given(st.binary())
def test_binary_garbage(data):
    _judge_all(data.decode("latin-1"))
    assert isinstance(SOS.replay(P, data), Verdict)  # bytes are judged too (decoded), never raise


@SETTINGS
@given(st.lists(st.sampled_from(WORDS), max_size=60))
def test_grammar_soup(words):
    _judge_all("".join(words))


@SETTINGS
@given(st.sampled_from(TRACES), st.data())
def test_truncated_traces(trace, data):
    cut = data.draw(st.integers(0, len(trace)))
    _judge_all(trace[:cut])


@SETTINGS
@given(st.sampled_from(TRACES), st.data())
def test_mangled_lines(trace, data):
    lines = trace.split("\n")
    i = data.draw(st.integers(0, len(lines) - 1))
    op = data.draw(st.sampled_from(["drop", "dup", "swap", "edit"]))
    if op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(i, lines[i])
    elif op == "swap":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        k = data.draw(st.integers(0, max(0, len(lines[i]) - 1)))
        lines[i] = lines[i][:k] + data.draw(st.sampled_from(["7", "", "x", "13"])) + lines[i][k + 1:]
    _judge_all("\n".join(lines))


def test_fixed_garbage():
    long_id = "Moving to Node #" + "0," * 5000 + "0"
    huge_ops = "Current State: 13:[43, 15, 18, 9], Operations: ['" + "a" * 10_000
    for text in ["", "\x00\x01\xff", "\n" * 1000, "Current State: 13:[", long_id,
                 "Exploring Operation: 9" * 1000, huge_ops]:
        _judge_all(text)
    assert SOS.replay(P, "").reason == Reason.EMPTY
    assert SOS.replay(P, None).reason == Reason.UNPARSEABLE  # type: ignore[arg-type]
    assert SOL.replay(P, b"\xff\xfe").reason == Reason.UNPARSEABLE


def test_garbage_after_a_dangling_operation_is_unparseable_but_a_clean_cut_is_not():
    """A model that stops mid-search (out of tokens) wrote a valid unfinished search; one that goes on
    with text outside the grammar did not, even when the last parsed line is an operation."""
    problem = CountdownProblem([38, 29, 40], 27)
    fmt = SosFormat()
    step = "Exploring Operation: 38+29=67, Resulting Numbers: [40, 67]\n"
    clean = fmt.replay(problem, fmt.prompt(problem) + step)
    assert clean.valid and clean.reason == Reason.NO_GOAL
    garbage = fmt.replay(problem, fmt.prompt(problem) + step + "blah blah")
    assert not garbage.valid and garbage.reason == Reason.UNPARSEABLE
    assert "blah blah" in garbage.detail
