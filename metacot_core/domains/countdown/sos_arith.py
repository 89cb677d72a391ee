"""Stream of Search's Countdown trace with the arithmetic written out (`sos-arith`).

Every model trained here on `sos` traces fails first on two-number arithmetic: with one token per
number, `38-2=36` is a fact to memorize among ~10^4, and the first "Exploring Operation" line is
already wrong (RESULTS.md). This format is the issue's idea of a trace that is easier to learn: the
`sos` text, with a `Calc:` line before every "Exploring Operation" line that computes the result in
columns, units first, from one-digit facts only:

    Calc: 47+38: 7+8=15, 4+3+1=8, so 85
    Calc: 52-17: 2-7=5 borrow 1, 5-1-1=3, so 35
    Calc: 47*38: 7*8=56, 4*8+5=37, so 47*8=376; 7*3=21, 4*3+2=14, so 47*3=141; 376+1410: 6+0=6,
          7+1=8, 3+4=7, 0+1=1, so 1786                                      (one line in the trace)
    Calc: 84/7: 2*7=14, 1*7+1=8, so 12*7=84, so 12

(a product adds its partial products, each shifted by its place, with the same column addition; a
quotient is written as the product that checks it). Digits are read from the numbers' decimal
places, units first; a column's digit past a number's length is 0.

The judge: each `Calc:` line must be followed by the "Exploring Operation" line of the same operation
and result, and, for an operation the rules allow, must be exactly the column computation above
(there is one: any other text has a wrong digit or a wrong form), else `wrong_arithmetic`; an
"Exploring Operation" line without its `Calc:` line is `unparseable`. The text without the `Calc:`
lines is judged by the `sos` judge, which checks the rules, states, moves and goal (its line numbers
count the lines without `Calc:`); a `Calc:` problem is the verdict's reason when there is one, with
the sos judge's states visited kept. `replay` never raises.
"""

from __future__ import annotations

import re
from typing import ClassVar

from metacot_core.domains.countdown.sos import _INT, _OP, SosFormat
from metacot_core.problems.base import Problem
from metacot_core.search.events import Event
from metacot_core.search.result import SearchResult
from metacot_core.traces.base import Reason, Verdict, unreadable

CALC_PREFIX = "Calc: "
_EXPLORE_OP = re.compile(rf"Exploring Operation: {_OP}, ")  # a, op, b, result, as in the sos grammar
_CALC_HEAD = re.compile(rf"Calc: {_INT}([-+*/]){_INT}: .*, so {_INT}")


def _digits(n: int) -> list[int]:
    """Decimal digits, units first."""
    return [int(c) for c in reversed(str(n))]


def add_columns(a: int, b: int) -> str:
    """Column addition, units first: `7+8=15, 4+3+1=8` for 47+38."""
    da, db = _digits(a), _digits(b)
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        total = x + y + carry
        steps.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={total}")
        carry = total // 10
    return ", ".join(steps)


def sub_columns(a: int, b: int) -> str:
    """Column subtraction (a >= b), units first: `2-7=5 borrow 1, 5-1-1=3` for 52-17."""
    da, db = _digits(a), _digits(b)
    steps, borrow = [], 0
    for i in range(len(da)):
        x, y = da[i], db[i] if i < len(db) else 0
        diff = x - y - borrow
        new_borrow = 1 if diff < 0 else 0
        steps.append(f"{x}-{y}" + (f"-{borrow}" if borrow else "") + f"={diff + 10 * new_borrow}"
                     + (" borrow 1" if new_borrow else ""))
        borrow = new_borrow
    return ", ".join(steps)


def mul_digit(a: int, d: int) -> str:
    """a times one digit in columns: `7*8=56, 4*8+5=37` for 47*8."""
    steps, carry = [], 0
    for x in _digits(a):
        total = x * d + carry
        steps.append(f"{x}*{d}" + (f"+{carry}" if carry else "") + f"={total}")
        carry = total // 10
    return ", ".join(steps)


def mul_columns(a: int, b: int) -> str:
    """a times one digit in columns; for a longer b, the partial products by each digit of b (units
    first), then their column sum. The result itself is left to the caller's `so ...`."""
    digits = _digits(b)
    if len(digits) == 1:
        return mul_digit(a, b)
    parts, partials = [], []
    for place, d in enumerate(digits):
        parts.append(f"{mul_digit(a, d)}, so {a}*{d}={a * d}")
        partials.append(a * d * 10 ** place)
    total = partials[0]
    for k, shifted in enumerate(partials[1:], start=2):
        step = f"{total}+{shifted}: {add_columns(total, shifted)}"
        total += shifted
        parts.append(step if k == len(partials) else f"{step}, so {total}")
    return "; ".join(parts)


def calc_line(a: int, op: str, b: int) -> str | None:
    """The `Calc:` line of an operation the Countdown rules allow, else None."""
    if op == "+":
        body, result = add_columns(a, b), a + b
    elif op == "-" and a >= b:
        body, result = sub_columns(a, b), a - b
    elif op == "*":
        body, result = mul_columns(a, b), a * b
    elif op == "/" and b > 0 and a % b == 0:
        q = a // b
        body, result = f"{mul_columns(q, b)}, so {q}*{b}={a}", q
    else:
        return None
    return f"{CALC_PREFIX}{a}{op}{b}: {body}, so {result}"


def add_calc_lines(sos_text: str) -> str:
    """The `sos` text with each "Exploring Operation" line preceded by its `Calc:` line."""
    out = []
    for line in sos_text.split("\n"):
        m = _EXPLORE_OP.match(line)
        if m is not None:
            calc = calc_line(int(m.group(1)), m.group(2), int(m.group(3)))
            if calc is not None:
                out.append(calc)
        out.append(line)
    return "\n".join(out)


def strip_calc_lines(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not line.startswith(CALC_PREFIX))


def check_calc_lines(text: str) -> Verdict | None:
    """The first `Calc:` problem as a verdict (see the module docstring), or None when all are right."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        explore = _EXPLORE_OP.match(line)
        previous = lines[i - 1] if i > 0 else ""
        if line.startswith(CALC_PREFIX):
            head = _CALC_HEAD.fullmatch(line)
            nxt = _EXPLORE_OP.match(lines[i + 1]) if i + 1 < len(lines) else None
            if head is None or nxt is None or head.groups() != nxt.groups():
                return _bad(Reason.UNPARSEABLE, f"line {i + 1}: a Calc: line must be followed by "
                                                f"the 'Exploring Operation' line of its operation and result")
            expected = calc_line(int(head.group(1)), head.group(2), int(head.group(3)))
            if expected is not None and line != expected:
                return _bad(Reason.WRONG_ARITHMETIC, f"line {i + 1}: the columns of "
                                                     f"{head.group(1)}{head.group(2)}{head.group(3)} are "
                                                     f"{expected[len(CALC_PREFIX):]!r}"[:300])
        elif explore is not None and not previous.startswith(CALC_PREFIX):
            a, op, b = int(explore.group(1)), explore.group(2), int(explore.group(3))
            if calc_line(a, op, b) is not None:
                return _bad(Reason.UNPARSEABLE, f"line {i + 1}: 'Exploring Operation' without its Calc: line")
    return None


def _bad(reason: Reason, detail: str) -> Verdict:
    return Verdict(valid=False, solved=False, reason=reason, detail=detail)


class SosArithFormat(SosFormat):
    """`sos` with the arithmetic of every explored operation written out in columns."""

    name: ClassVar[str] = "sos-arith"
    stop_strings: ClassVar[tuple[str, ...]] = ("Goal Reached", "No solution found.")

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        return add_calc_lines(super().linearize(problem, result))

    def parse(self, text: str) -> list[Event]:
        return super().parse(strip_calc_lines(text))

    def replay(self, problem: Problem, text: str) -> Verdict:
        """The `Calc:` lines first, then the `sos` judge on the rest. Never raises."""
        if (refused := unreadable(problem, text)) is not None:
            return refused
        try:
            bad = check_calc_lines(text) if isinstance(text, str) else None
        except Exception as err:  # noqa: BLE001 - the judge must answer on any input
            bad = _bad(Reason.UNPARSEABLE, f"internal error: {type(err).__name__}: {err}"[:300])
        verdict = super().replay(problem, strip_calc_lines(text) if isinstance(text, str) else text)
        if bad is None:
            return verdict
        # the search-shape figures (states visited, events) still come from the sos judge
        return Verdict(valid=False, solved=False, reason=bad.reason, step=verdict.step, detail=bad.detail,
                       states_visited=verdict.states_visited, n_events=verdict.n_events,
                       visited=verdict.visited)
