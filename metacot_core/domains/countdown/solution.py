"""Countdown's optimal-path control: the solution alone, written in the search format's words.

Stream of Search's `optimal_path` (`CountDown.convert_to_path`): the prompt, then for each
step "Exploring Operation", "Generated Node #k: [...] from Operation: ..." (k from 2) and the new
"Current State", and "t,t equal: Goal Reached" at the end. The solution is SoS's generator solution,
the first one its exhaustive search finds (every Countdown solution has N-1 steps, so "optimal" means
"no search"), whatever search produced the `SearchResult` passed in.

One deliberate difference from SoS: SoS computes each new list by removing *every* number equal to an
operand (`nums[k] != i and nums[k] != j`), which drops duplicates (`[5, 5, 3]` and `5+3=8` give `[8]`).
We remove one occurrence per operand, the numbers the reference search actually combined, so the
control never writes an illegal state. `sos_optimal_path(..., duplicate_bug=True)` reproduces SoS's
text byte for byte (the fixture test uses it).

The generic `solution` format (traces/solution_only.py) hands Countdown problems to
`CountdownSolutionFormat`, which `CountdownDomain.solution_format` names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from metacot_core.ascii_text import is_ascii_digits
from metacot_core.domains.countdown.problem import apply_op, parse_step, reference_solution
from metacot_core.problems.base import Problem, UnsolvableProblemError
from metacot_core.search.events import Event, Expand, Generate, Goal
from metacot_core.search.result import SearchResult
from metacot_core.traces.base import Reason, TraceParseError, Verdict, unreadable

_STATE = re.compile(r"Current State: ([0-9]{1,30}):\[([0-9, ]*)\], Operations: \[(.*)\]")
_EXPLORE = re.compile(r"Exploring Operation: (\S{1,100}), Resulting Numbers: \[([0-9, ]*)\]")
_GENERATED = re.compile(r"Generated Node #([0-9]{1,9}): \[([0-9, ]*)\] from Operation: (\S{1,100})")
_GOAL = re.compile(r"([0-9]{1,30}),([0-9]{1,30}) equal: Goal Reached")


class CountdownSolutionFormat:
    """SoS's optimal path: the solution-only control for Countdown (the `solution` format asks for it)."""

    name: ClassVar[str] = "solution"
    domains: ClassVar[tuple[str, ...]] = ("countdown",)

    def claims(self, text: str) -> bool:
        """Whether `text` is written in this format's words (the `solution` format parses without a
        problem, so it asks each domain's writer)."""
        return text.lstrip().startswith(("Current State:", "Exploring Operation:"))

    def prompt(self, problem: Problem) -> str:
        target, numbers = _countdown(problem)
        return f"Current State: {target}:{list(numbers)}, Operations: []\n"

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        target, numbers = _countdown(problem)
        steps = reference_solution(numbers, target)
        if steps is None:
            raise UnsolvableProblemError(f"countdown: {list(numbers)} cannot make {target}")
        return sos_optimal_path(target, numbers, steps)[len(self.prompt(problem)):]

    def parse(self, text: str) -> list[Event]:
        """Events of a solution text: Expand per state, Generate per step, Goal at the end."""
        if not isinstance(text, str):
            raise TraceParseError(f"expected text, got {type(text).__name__}")
        return _parse_countdown(text)

    def replay(self, problem: Problem, text: str) -> Verdict:
        if (refused := unreadable(problem, text)) is not None:
            return refused
        try:
            return _replay_countdown(problem, text)
        except TraceParseError as err:
            return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE, detail=str(err)[:300])
        except Exception as err:  # noqa: BLE001 - the judge must answer on any input
            return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE,
                           detail=f"internal error: {type(err).__name__}: {err}"[:300])


def sos_optimal_path(target: int, numbers: Sequence[int], steps: Sequence[str],
                     duplicate_bug: bool = False) -> str:
    """SoS's `convert_to_path` text (prompt included) for `steps`; see the module doc for `duplicate_bug`."""
    nums = [int(x) for x in numbers]
    ops: list[str] = []
    out = [f"Current State: {target}:{nums}, Operations: {ops}"]
    node_index = 1
    for step in steps:
        parsed = parse_step(step)
        if parsed is None:
            raise ValueError(f"solution: cannot read step {step!r}")
        a, op, b, c = parsed
        nums = _after_step(nums, a, b, c, duplicate_bug)
        out.append(f"Exploring Operation: {step}, Resulting Numbers: {nums}")
        if len(nums) == 1:
            out.append(f"{nums[0]},{target} equal: Goal Reached")
        else:
            node_index += 1
            out.append(f"Generated Node #{node_index}: {nums} from Operation: {step}")
            ops.append(step)
            out.append(f"Current State: {target}:{nums}, Operations: {ops}")
    return "\n".join(out) + "\n"


def _after_step(nums: list[int], a: int, b: int, c: int, duplicate_bug: bool) -> list[int]:
    if duplicate_bug:
        return [x for x in nums if x != a and x != b] + [c]
    left = list(nums)
    for x in (a, b):
        if x in left:
            left.remove(x)
    return left + [c]


def solution_events(problem: Problem, steps: Sequence[str]) -> list[Event]:
    """The events a solution-only trace stands for (what `parse` returns for its text)."""
    target, numbers = _countdown(problem)
    nums = list(numbers)
    ops: tuple[str, ...] = ()
    events: list[Event] = [Expand("0", (tuple(nums), ops))]
    parent = "0"
    for k, step in enumerate(steps):
        parsed = parse_step(step)
        if parsed is None:
            raise ValueError(f"solution: cannot read step {step!r}")
        a, _, b, c = parsed
        nums = _after_step(nums, a, b, c, duplicate_bug=False)
        ops = ops + (step,)
        node = str(k + 2)
        state = (tuple(nums), ops)
        events.append(Generate(node, parent, step, state))
        events.append(Goal(node, state) if len(nums) == 1 else Expand(node, state))
        parent = node
    return events


def _countdown(problem: Problem) -> tuple[int, tuple[int, ...]]:
    inst = problem.to_instance()
    if "numbers" not in inst or "target" not in inst:
        raise ValueError(f"solution format: no Countdown instance in {problem!r}")
    return int(inst["target"]), tuple(int(x) for x in inst["numbers"])


def _nums(text: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    parts = text.split(", ")
    if not all(is_ascii_digits(p) for p in parts):
        raise TraceParseError(f"bad number list [{text[:60]}]")
    return tuple(int(p) for p in parts)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _parse_countdown(text: str) -> list[Event]:
    events: list[Event] = []
    lines = _lines(text)
    ops: tuple[str, ...] = ()
    parent = "0"
    k = 0
    if lines and (m := _STATE.fullmatch(lines[0])) and m.group(3) == "":
        events.append(Expand("0", (_nums(m.group(2)), ())))
        k = 1
    while k < len(lines):
        m = _EXPLORE.fullmatch(lines[k])
        if m is None:
            raise TraceParseError(f"line {k}: expected 'Exploring Operation', got {lines[k][:80]!r}")
        step, nums = m.group(1), _nums(m.group(2))
        ops = ops + (step,)
        nxt = lines[k + 1] if k + 1 < len(lines) else ""
        if _GOAL.fullmatch(nxt) is not None:
            node = str(int(parent) + 2 if parent == "0" else int(parent) + 1)
            events.append(Generate(node, parent, step, (nums, ops)))
            events.append(Goal(node, (nums, ops)))
            k += 2
            continue
        g2 = _GENERATED.fullmatch(nxt)
        state_line = lines[k + 2] if k + 2 < len(lines) else ""
        m3 = _STATE.fullmatch(state_line)
        if g2 is None or m3 is None:
            raise TraceParseError(f"line {k + 1}: expected 'Generated Node' and 'Current State' lines")
        node = g2.group(1)
        events.append(Generate(node, parent, step, (nums, ops)))
        events.append(Expand(node, (_nums(m3.group(2)), ops)))
        parent = node
        k += 3
    return events


def _replay_countdown(problem: Problem, text: Any) -> Verdict:
    """Each step legal from the current list, each written list right, the last one the target."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return Verdict(False, False, Reason.UNPARSEABLE, detail=f"expected text, got {type(text).__name__}")
    if not text.strip():
        return Verdict(False, False, Reason.EMPTY, detail="empty trace")
    target, numbers = _countdown(problem)
    lines = _lines(text)
    if (m := _STATE.fullmatch(lines[0])) and m.group(3) == "":
        if int(m.group(1)) != target or Counter(_nums(m.group(2))) != Counter(numbers):
            return Verdict(False, False, Reason.WRONG_STATE, step=0, detail="prompt is another problem")
        lines = lines[1:]
    nums = list(numbers)
    steps: list[str] = []
    k = 0

    def fail(reason: Reason, detail: str) -> Verdict:
        return Verdict(False, False, reason, step=len(steps), detail=detail, n_events=len(steps))

    while k < len(lines):
        m = _EXPLORE.fullmatch(lines[k])
        parsed = parse_step(m.group(1)) if m else None
        if m is None or parsed is None:
            return fail(Reason.UNPARSEABLE, f"expected 'Exploring Operation: a?b=c, ...', "
                                            f"got {lines[k][:80]!r}")
        a, op, b, c = parsed
        left = list(nums)
        for x in (a, b):
            if x not in left:
                return fail(Reason.UNKNOWN_NUMBER, f"{m.group(1)} uses {x}, not available in {nums}")
            left.remove(x)
        value = apply_op(a, b, op)
        if value is None:
            return fail(Reason.ILLEGAL_STEP, f"{m.group(1)} is not allowed")
        if value != c:
            return fail(Reason.WRONG_ARITHMETIC, f"{a}{op}{b} is {value}, not {c}")
        nums = left + [c]
        if Counter(_nums(m.group(2))) != Counter(nums):
            return fail(Reason.WRONG_STATE, f"{m.group(1)} leaves {nums}, not [{m.group(2)[:60]}]")
        steps.append(m.group(1))
        nxt = lines[k + 1] if k + 1 < len(lines) else ""
        if (g := _GOAL.fullmatch(nxt)) is not None:
            if len(nums) != 1 or nums[0] != target or int(g.group(1)) != target or int(g.group(2)) != target:
                return fail(Reason.FALSE_GOAL, f"claims the goal with {nums}, target {target}")
            if not problem.verify(steps):
                return fail(Reason.SOLUTION_INVALID, f"solution {steps} does not verify")
            return Verdict(True, True, None, detail="goal reached", solution=steps, n_events=len(steps),
                           states_visited=len(steps))
        g2 = _GENERATED.fullmatch(nxt)
        m3 = _STATE.fullmatch(lines[k + 2]) if k + 2 < len(lines) else None
        if g2 is None or m3 is None:
            if not nxt:
                break
            return fail(Reason.UNPARSEABLE,
                        f"expected 'Generated Node' and 'Current State' after {m.group(1)}")
        if Counter(_nums(g2.group(2))) != Counter(nums) or Counter(_nums(m3.group(2))) != Counter(nums):
            return fail(Reason.WRONG_STATE, f"node #{g2.group(1)} does not hold {nums}")
        if g2.group(3) != m.group(1) or int(m3.group(1)) != target:
            return fail(Reason.WRONG_STATE, f"node #{g2.group(1)} repeats another operation or target")
        k += 3
    return Verdict(True, False, Reason.NO_GOAL, detail="no goal reached", n_events=len(steps),
                   states_visited=len(steps))
