"""The trace grammar is ASCII: a solved teacher trace with a non-ASCII decimal digit (Arabic-Indic,
Devanagari, fullwidth...) or an invisible format character (zero-width space/joiner, BOM, word joiner)
put into it must not be judged valid and solved. Python's `\\d`, `int()` and `str.isdigit()` accept
every Unicode digit, so a judge built on them accepted such rewritten traces."""

from __future__ import annotations

import random
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacot_core.domains.countdown.problem import CountdownProblem, parse_step
from metacot_core.domains.maze.problem import MazeProblem, parse_cell
from metacot_core.evaluation.answer_only import answer_solved
from metacot_core.registry import get_format, get_search
from metacot_core.search.config import SearchConfig

NON_ASCII_DIGITS = [chr(c) for c in range(sys.maxunicode + 1)
                    if unicodedata.category(chr(c)) == "Nd" and c > 127]
INVISIBLE = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
ARABIC_INDIC = {str(d): chr(0x0660 + d) for d in range(10)}

COUNTDOWN = CountdownProblem([12, 3, 5, 2], 26)
MAZE = MazeProblem(4, 4, [(1, 1), (2, 1), (1, 2)], (0, 0), (3, 3))
# (problem, format, search algorithm): the teacher traces of every built-in format and domain
CASES = [
    (COUNTDOWN, "sos", "dfs"), (COUNTDOWN, "sos-arith", "dfs"), (COUNTDOWN, "mcts", "mcts"),
    (COUNTDOWN, "solution", "dfs"),
    (MAZE, "astar", "astar"), (MAZE, "mcts", "mcts"), (MAZE, "solution", "astar"),
]


def _arabic_indic(text: str) -> str:
    return "".join(ARABIC_INDIC.get(c, c) for c in text)


def _teacher(problem, fmt_name: str, algorithm: str) -> str:
    fmt = get_format(fmt_name)
    result = get_search(algorithm)(problem, SearchConfig(algorithm=algorithm), random.Random(0))
    return fmt.prompt(problem) + fmt.linearize(problem, result)


TRACES = {(p.domain, f): (p, get_format(f), _teacher(p, f, a)) for p, f, a in CASES}
IDS = [f"{d}-{f}" for d, f in TRACES]
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_teacher_traces_are_valid_and_solved() -> None:
    for problem, fmt, text in TRACES.values():  # else the properties below would hold trivially
        verdict = fmt.replay(problem, text)
        assert verdict.valid and verdict.solved, (fmt.name, verdict)


def _solved(problem, fmt, text: str) -> bool:
    verdict = fmt.replay(problem, text)
    return verdict.valid and verdict.solved


@pytest.mark.parametrize("key", list(TRACES), ids=IDS)
@SETTINGS
@given(data=st.data())
def test_a_non_ascii_digit_in_place_of_an_ascii_one_is_not_solved(key, data) -> None:
    problem, fmt, text = TRACES[key]
    where = [i for i, ch in enumerate(text) if ch.isascii() and ch.isdigit()]
    i = data.draw(st.sampled_from(where))
    digit = data.draw(st.sampled_from([d for d in NON_ASCII_DIGITS if unicodedata.digit(d) == int(text[i])]))
    assert not _solved(problem, fmt, text[:i] + digit + text[i + 1:])


@pytest.mark.parametrize("key", list(TRACES), ids=IDS)
@SETTINGS
@given(data=st.data())
def test_an_inserted_digit_or_invisible_character_is_not_solved(key, data) -> None:
    problem, fmt, text = TRACES[key]
    i = data.draw(st.integers(0, len(text)))
    ch = data.draw(st.sampled_from(NON_ASCII_DIGITS + INVISIBLE))
    assert not _solved(problem, fmt, text[:i] + ch + text[i:])


@pytest.mark.parametrize("key", list(TRACES), ids=IDS)
def test_every_digit_of_the_trace_rewritten_in_arabic_indic_is_not_solved(key) -> None:
    problem, fmt, text = TRACES[key]
    lines = text.rstrip("\n").split("\n")
    for n in (1, 2, len(lines)):  # the case: the last operation and goal line rewritten
        tail = [_arabic_indic(line) for line in lines[-n:]]
        assert not _solved(problem, fmt, "\n".join(lines[:-n] + tail) + "\n")


@given(st.sampled_from(NON_ASCII_DIGITS))
def test_solution_steps_parse_only_ascii_digits(digit) -> None:
    assert parse_step(f"72-48=2{digit}") is None
    assert parse_step(f"7{digit}-48=24") is None
    assert parse_cell(f"3,{digit}") is None
    assert parse_cell("\u200b3,4") is None
    assert parse_cell(" 3,4") == (3, 4)  # ASCII blanks around a step stay fine


def test_an_answer_with_arabic_indic_digits_is_not_a_right_answer() -> None:
    text = TRACES[("countdown", "sos")][2]
    assert answer_solved(COUNTDOWN, text, strict_solved=False) is True
    assert answer_solved(COUNTDOWN, _arabic_indic(text), strict_solved=False) is False


@pytest.mark.parametrize("key", list(TRACES), ids=IDS)
def test_the_parsers_read_no_arabic_indic_number(key) -> None:
    """The root fix, below the replay's character check: no grammar rule reads a non-ASCII digit."""
    problem, fmt, text = TRACES[key]
    fmt.parse(text)
    with pytest.raises(ValueError):  # TraceParseError is a ValueError
        fmt.parse(_arabic_indic(text))
