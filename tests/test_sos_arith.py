"""`sos-arith`: SoS traces with each operation's arithmetic written out in one-digit columns. The
columns must be true one-digit facts that add up to the right result, teacher traces must replay as
the `sos` judge replays them, and a wrong digit, a missing or mismatched `Calc:` line, or garbage must
get a verdict (never an exception)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacot_core import registry
from metacot_core.domains.countdown.problem import CountdownDomain, CountdownProblem
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.domains.countdown.sos_arith import SosArithFormat, calc_line, strip_calc_lines
from metacot_core.evaluation.answer_only import answer_solved
from metacot_core.search.config import sos_mix
from metacot_core.traces.base import Reason

ARITH = SosArithFormat()
SOS = SosFormat()
_FACT = re.compile(r"^(\d)([-+*])(\d)(?:([-+])(\d))?=(\d{1,2})(?: borrow 1)?$")


def _problems(n: int, seed: int = 0) -> list[CountdownProblem]:
    domain = CountdownDomain()
    cfg = domain.config_cls()
    return [domain.make(cfg, "train", i, seed) for i in range(n)]


def _facts(line: str) -> list[str]:
    """The one-digit steps of a Calc line (the `a*d=...`, `x+y:` and `so ...` parts dropped)."""
    body = line.split(": ", 2)[-1]
    steps = [s.strip() for part in body.split(";") for s in part.split(",")]
    return [s.split(": ")[-1] for s in steps if not s.startswith("so ")]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 99_999), st.integers(0, 9_999), st.sampled_from("+-*/"))
def test_calc_line_is_one_digit_facts_that_reach_the_true_result(a: int, b: int, op: str) -> None:
    line = calc_line(a, op, b)
    legal = {"+": True, "-": a >= b, "*": True, "/": b > 0 and a % b == 0}[op]
    if not legal:
        assert line is None
        return
    assert line is not None
    true = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
    assert line.startswith(f"Calc: {a}{op}{b}: ") and line.endswith(f", so {true}")
    for fact in _facts(line):
        m = _FACT.match(fact)
        assert m is not None, (line, fact)
        x, sign, y, sign2, z, result = m.groups()
        value = {"+": int(x) + int(y), "-": int(x) - int(y), "*": int(x) * int(y)}[sign]
        if sign2:
            value = value + int(z) if sign2 == "+" else value - int(z)
        borrow = fact.endswith("borrow 1")
        assert borrow == (value < 0), (line, fact)
        assert int(result) == value + 10 * borrow, (line, fact)


def test_the_format_is_registered_with_the_sos_stop_strings() -> None:
    from metacot_core.evaluation.generate import default_stop_strings

    assert isinstance(registry.get_format("sos-arith"), SosArithFormat)
    assert default_stop_strings("sos-arith") == default_stop_strings("sos")


def test_teacher_traces_replay_like_sos_and_strip_back_to_sos() -> None:
    rng = random.Random(5)
    mix = sos_mix()
    for p in _problems(40):
        cfg = mix.sample(rng)
        result = registry.get_search(cfg.algorithm)(p, cfg, rng)
        sos_text = SOS.linearize(p, result)
        text = ARITH.linearize(p, result)
        assert strip_calc_lines(text) == sos_text
        assert text.count("Calc: ") == sos_text.count("Exploring Operation: ")
        assert ARITH.parse(ARITH.prompt(p) + text) == result.events
        verdict = ARITH.replay(p, ARITH.prompt(p) + text)
        assert verdict.valid and verdict.solved == result.solved, verdict
        assert verdict.states_visited == SOS.replay(p, SOS.prompt(p) + sos_text).states_visited
        if result.solved:
            assert answer_solved(p, text, strict_solved=False)


P24 = CountdownProblem([4, 9, 3], 24)
GOOD = ("Calc: 9-3: 9-3=6, so 6\nExploring Operation: 9-3=6, Resulting Numbers: [4, 6]\n"
        "Generated Node #0,0: 24:[4, 6] Operation: 9-3=6\nMoving to Node #0,0\n"
        "Current State: 24:[4, 6], Operations: ['9-3=6']\n"
        "Calc: 4*6: 4*6=24, so 24\nExploring Operation: 4*6=24, Resulting Numbers: [24]\n"
        "24,24 equal: Goal Reached\n")


@pytest.mark.parametrize(("text", "reason"), [
    (GOOD.replace("4*6=24, so 24\n", "4*6=23, so 24\n"), Reason.WRONG_ARITHMETIC),  # a wrong digit fact
    (GOOD.replace("Calc: 9-3: 9-3=6, so 6\n", ""), Reason.UNPARSEABLE),               # no Calc line
    (GOOD.replace("Calc: 9-3: 9-3=6, so 6", "Calc: 9+3: 9+3=12, so 12"), Reason.UNPARSEABLE),  # other op
    (GOOD.replace("Calc: 4*6: 4*6=24, so 24\nExploring Operation: 4*6=24",
                  "Calc: 4*6: 4*6=25, so 25\nExploring Operation: 4*6=25"), Reason.WRONG_ARITHMETIC),
    ("Calc: Calc: 12\n\x00garbage", Reason.UNPARSEABLE),
])
def test_wrong_or_missing_calc_lines_get_a_reason(text: str, reason: Reason) -> None:
    verdict = ARITH.replay(P24, ARITH.prompt(P24) + text)
    assert not verdict.valid and not verdict.solved and verdict.reason == reason, verdict


def test_a_correct_hand_written_trace_is_solved_and_garbage_never_raises() -> None:
    verdict = ARITH.replay(P24, ARITH.prompt(P24) + GOOD)
    assert verdict.valid and verdict.solved and verdict.states_visited == 2
    for garbage in ("", "Calc: ", "\n" * 5, "Calc: 1+1: 1+1=2, so 2", None, 12, "Calc: 1+1: so 2\n" * 3):
        out = ARITH.replay(P24, garbage)  # type: ignore[arg-type]
        assert not out.solved
