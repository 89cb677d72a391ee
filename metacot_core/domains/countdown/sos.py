"""Stream of Search's trace format for Countdown (Gandhi et al. 2024), writer, parser and replay judge.

The text is SoS's `search_path`, line for line (its first line is the prompt):

    Current State: 13:[43, 15, 18, 9], Operations: []            <- Expand (the prompt for the root)
    Exploring Operation: 43-15=28, Resulting Numbers: [18, 9, 28]  <- Generate ...
    Generated Node #0,0: 13:[18, 9, 28] Operation: 43-15=28      <- ... of a node that is not a leaf
    Moving to Node #0,0                                          <- Backtrack
    Exploring Operation: 16-15=1, Resulting Numbers: [1]          <- Generate of a leaf ...
    1,13 unequal: No Solution                                    <- ... DeadEnd
    13,13 equal: Goal Reached                                    <- Goal
    No solution found.                                           <- the search gave up (beam only)

Every line but a final "No solution found." ends with a newline, as in SoS.

`replay` judges any text against the rules, step by step: each operation uses numbers available in the
current state, obeys the rules (larger minus smaller, exact division) and is computed right; each
resulting list is the current one minus the two operands plus the result; each "Generated Node" is a
child of the current node and repeats that list and operation; each "Moving to Node" goes to a node
generated before, and the following "Current State" is that node's state; a goal claim is a real goal
and its operations verify with `problem.verify`. Which node a search should visit next is not checked:
a model may search in its own order and still be valid. Lists are compared as multisets (the order of
numbers is SoS's convention, not a rule). `replay` never raises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from metacot_core.ascii_text import is_ascii_digits
from metacot_core.domains.countdown.problem import apply_op
from metacot_core.problems.base import Problem
from metacot_core.search._common import GIVE_UP, LEAF
from metacot_core.search.events import Backtrack, DeadEnd, Event, Expand, Generate, Goal
from metacot_core.search.result import SearchResult
from metacot_core.traces.base import Reason, TraceParseError, Verdict, unreadable

NO_SOLUTION_LINE = "No solution found."
_INT = r"([0-9]{1,30})"  # ASCII digits: \d takes every Unicode digit
_LIST = r"\[([0-9, ]*)\]"
_OP = _INT + r"([-+*/])" + _INT + "=" + _INT
_ID = r"([0-9]{1,9}(?:,[0-9]{1,9}){0,64})"
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("state", re.compile(rf"Current State: {_INT}:{_LIST}, Operations: \[(.*)\]")),
    ("explore", re.compile(rf"Exploring Operation: {_OP}, Resulting Numbers: {_LIST}")),
    ("generated", re.compile(rf"Generated Node #{_ID}: {_INT}:{_LIST} Operation: {_OP}")),
    ("moving", re.compile(rf"Moving to Node #{_ID}")),
    ("leaf", re.compile(rf"{_INT},{_INT} unequal: No Solution")),
    ("goal", re.compile(rf"{_INT},{_INT} equal: Goal Reached")),
)
_OPS_ITEM = re.compile(r"'([^']*)'")

Nums = tuple[int, ...]
CdState = tuple[Nums, tuple[str, ...]]


class SosFormat:
    """SoS's Countdown trace text."""

    name: ClassVar[str] = "sos"
    domains: ClassVar[tuple[str, ...]] = ("countdown",)

    def prompt(self, problem: Problem) -> str:
        target, numbers = _target_numbers(problem)
        return f"Current State: {target}:{list(numbers)}, Operations: []\n"

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        """The trace after the prompt: every event's line(s), the root's first "Current State" left out."""
        events = result.events
        start = 1 if events and type(events[0]) is Expand and not events[0].state[1] else 0
        target, _ = _target_numbers(problem)
        return render_events(events, target, start)

    def parse(self, text: str) -> list[Event]:
        """Events of a SoS trace; the root's Expand is there only when the text has the prompt line."""
        lines, error = _tokenize(text)
        if error is not None:
            raise TraceParseError(error)
        events: list[Event] = []
        current: str | None = None
        current_ops: tuple[str, ...] = ()
        pending: str | None = "0"
        non_leaf: dict[str, int] = {}
        k = 0
        while k < len(lines):
            kind, g, lineno = lines[k]
            if kind == "state":
                if pending is None:
                    raise TraceParseError(f"line {lineno}: 'Current State' without 'Moving to Node'")
                current, pending = pending, None
                current_ops = _ops_tuple(g[2], lineno)
                events.append(Expand(current, (_nums(g[1]), current_ops)))
            elif kind == "explore":
                if current is None and pending == "0" and not events:
                    current = "0"  # text without the prompt line: the root is current
                if current is None:
                    raise TraceParseError(f"line {lineno}: 'Exploring Operation' before any 'Current State'")
                text_op = f"{g[0]}{g[1]}{g[2]}={g[3]}"
                state = (_nums(g[4]), current_ops + (text_op,))
                nxt = lines[k + 1] if k + 1 < len(lines) else None
                if nxt is not None and nxt[0] == "generated":
                    node = nxt[1][0]
                    non_leaf[current] = non_leaf.get(current, 0) + 1
                    events.append(Generate(node, current, text_op, state))
                    k += 2
                    continue
                node = f"{current},{non_leaf.get(current, 0)}"
                events.append(Generate(node, current, text_op, state))
                if nxt is not None and nxt[0] in ("leaf", "goal"):
                    events.append(DeadEnd(node, state, LEAF) if nxt[0] == "leaf" else Goal(node, state))
                    k += 2
                    continue
            elif kind == "moving":
                pending = g[0]
                events.append(Backtrack(g[0]))
            elif kind == "giveup":
                events.append(DeadEnd("", None, GIVE_UP))
            else:
                raise TraceParseError(f"line {lineno}: a {kind!r} line must follow 'Exploring Operation'")
            k += 1
        return events

    def replay(self, problem: Problem, text: str) -> Verdict:
        """Judge `text` (with or without the prompt line) against the Countdown rules. Never raises."""
        if (refused := unreadable(problem, text)) is not None:
            return refused
        try:
            return _SosReplay(problem).run(text)
        except Exception as err:  # noqa: BLE001 - the judge must answer on any input, a bug included
            return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE,
                           detail=f"internal error: {type(err).__name__}: {err}"[:300])


# --- writing ------------------------------------------------------------------------------------

def render_events(events: Sequence[Event], target: int, start: int = 0) -> str:
    """SoS lines for events[start:] (the hot path of trace generation).

    A list is written up to three times (explored, generated, current state) and DFS writes the same
    parent state again between siblings (the same Expand object), so both renderings are memoized.
    """
    out: list[str] = []
    add = out.append
    n = len(events)
    ending = "\n"
    lists: dict[tuple[int, ...], str] = {}
    states: dict[int, str] = {}
    for i in range(start, n):
        ev = events[i]
        cls = type(ev)
        if cls is Generate:
            key = ev.state[0]
            nums = lists.get(key)
            if nums is None:
                nums = lists[key] = str(list(key))
            add(f"Exploring Operation: {ev.action}, Resulting Numbers: {nums}")
            nxt = events[i + 1] if i + 1 < n else None
            if nxt is None or nxt.node != ev.node or (type(nxt) is not DeadEnd and type(nxt) is not Goal):
                add(f"Generated Node #{ev.node}: {target}:{nums} Operation: {ev.action}")
        elif cls is Expand:
            line = states.get(id(ev))
            if line is None:
                key, ops = ev.state
                nums = lists.get(key)
                if nums is None:
                    nums = lists[key] = str(list(key))
                line = states[id(ev)] = f"Current State: {target}:{nums}, Operations: {list(ops)}"
            add(line)
        elif cls is Backtrack:
            add(f"Moving to Node #{ev.node}")
        elif cls is DeadEnd:
            if ev.reason == GIVE_UP:
                add(NO_SOLUTION_LINE)
                if i == n - 1:
                    ending = ""
            else:
                add(f"{ev.state[0][0]},{target} unequal: No Solution")
        elif cls is Goal:
            add(f"{ev.state[0][0]},{target} equal: Goal Reached")
        else:
            raise ValueError(f"sos format: cannot write a {cls.__name__} event (DFS/beam events only)")
    return "\n".join(out) + ending if out else ""


def _target_numbers(problem: Problem) -> tuple[int, tuple[int, ...]]:
    inst = problem.to_instance()
    if "numbers" not in inst or "target" not in inst:
        raise ValueError(f"sos format: Countdown only, got a {getattr(problem, 'domain', '?')} problem")
    return int(inst["target"]), tuple(int(x) for x in inst["numbers"])


# --- reading ------------------------------------------------------------------------------------

Line = tuple[str, tuple[str, ...], int]


def _tokenize(text: str) -> tuple[list[Line], str | None]:
    """(kind, groups, line number) per non-empty line, and the first line that follows no rule."""
    if not isinstance(text, str):
        return [], f"expected text, got {type(text).__name__}"
    out: list[Line] = []
    for lineno, raw in enumerate(text.split("\n")):
        line = raw.strip()
        if not line:
            continue
        if line == NO_SOLUTION_LINE:
            out.append(("giveup", (), lineno))
            continue
        for kind, rule in _RULES:
            m = rule.fullmatch(line)
            if m is not None:
                out.append((kind, m.groups(), lineno))
                break
        else:
            return out, f"line {lineno}: follows no rule of the sos grammar: {line[:80]!r}"
    return out, None


def _nums(text: str) -> Nums:
    if not text.strip():
        return ()
    parts = text.split(", ")
    if not all(is_ascii_digits(p) for p in parts):
        raise TraceParseError(f"bad number list [{text[:60]}]")
    return tuple(int(p) for p in parts)


def _ops_tuple(text: str, lineno: int) -> tuple[str, ...]:
    ops = tuple(_OPS_ITEM.findall(text))
    if str(list(ops))[1:-1] != text:
        raise TraceParseError(f"line {lineno}: bad operations list [{text[:60]}]")
    return ops


# --- judging ------------------------------------------------------------------------------------

class _Failed(Exception):
    def __init__(self, reason: Reason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _SosReplay:
    """One pass over the lines, keeping every generated node's state(s) by id.

    SoS's beam gives all leaf children of a node the same id, so an id may name several leaves; a
    "Moving to Node" to such an id is followed by the state of one of them.
    """

    def __init__(self, problem: Problem):
        self.target, self.numbers = _target_numbers(problem)
        self.verify: Callable[[Sequence[str]], bool] = problem.verify
        root: CdState = (self.numbers, ())
        self.nodes: dict[str, list[CdState]] = {"0": [root]}
        self.expanded: set[tuple[str, CdState]] = {("0", root)}
        self.visited: list[str] = [f"{self.target}:{list(self.numbers)}"]
        self.current: tuple[str, CdState] = ("0", root)
        self.pending: str | None = None
        self.non_leaf: dict[str, int] = {}
        self.n_events = 1
        self.tail_error: str | None = None  # the first line that follows no rule, if any

    def verdict(self, valid: bool, solved: bool, reason: Reason | None, detail: str = "",
                step: int | None = None, solution: list[str] | None = None) -> Verdict:
        return Verdict(valid=valid, solved=solved, reason=reason, step=step, detail=detail,
                       states_visited=len(self.expanded), n_events=self.n_events, solution=solution,
                       visited=self.visited)

    def run(self, text: Any) -> Verdict:
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8", errors="replace")
        if not isinstance(text, str):
            return self.verdict(False, False, Reason.UNPARSEABLE, f"expected text, got {type(text).__name__}")
        if not text.strip():
            return self.verdict(False, False, Reason.EMPTY, "empty trace")
        lines, error = _tokenize(text)
        self.tail_error = error
        if lines and lines[0][0] == "state" and lines[0][1][2] == "":
            bad = self._prompt(lines[0])
            if bad is not None:
                return self.verdict(False, False, Reason.WRONG_STATE, bad, step=0)
            lines = lines[1:]
        k = 0
        try:
            while k < len(lines):
                kind, g, lineno = lines[k]
                if kind == "explore":
                    nxt = lines[k + 1] if k + 1 < len(lines) else None
                    done = self._explore(g, nxt, lineno)
                    if done is not None:
                        return done
                    k += 2
                    continue
                if kind == "state":
                    self._state(g, lineno)
                elif kind == "moving":
                    self._moving(g, lineno)
                elif kind == "giveup":
                    self.n_events += 1
                    return self.verdict(True, False, Reason.NO_GOAL, "the search gave up")
                else:
                    raise _Failed(Reason.UNPARSEABLE, f"line {lineno}: a {kind!r} line must follow "
                                  "'Exploring Operation'")
                k += 1
        except _Failed as fail:
            return self.verdict(False, False, fail.reason, fail.detail, step=self.n_events)
        except TraceParseError as err:
            return self.verdict(False, False, Reason.UNPARSEABLE, str(err), step=self.n_events)
        if error is not None:
            return self.verdict(False, False, Reason.UNPARSEABLE, error, step=self.n_events)
        return self.verdict(True, False, Reason.NO_GOAL, "no goal reached")

    def _dangling(self) -> Verdict:
        """The last parsed line is 'Exploring Operation': a clean end of text (ran out of tokens) is a
        valid unfinished search, but text that continues with garbage is not."""
        if self.tail_error is not None:
            raise _Failed(Reason.UNPARSEABLE, self.tail_error)
        return self.verdict(True, False, Reason.NO_GOAL, "trace ends after 'Exploring Operation'")

    def _prompt(self, line: Line) -> str | None:
        _, g, lineno = line
        target, nums = int(g[0]), _nums_safe(g[1])
        if target != self.target or nums is None or Counter(nums) != Counter(self.numbers):
            return (f"line {lineno}: prompt is {target}:[{g[1][:60]}], the problem is "
                    f"{self.target}:{list(self.numbers)}")
        return None

    def _state(self, g: tuple[str, ...], lineno: int) -> None:
        node = self.pending
        if node is None:
            raise _Failed(Reason.UNPARSEABLE, f"line {lineno}: 'Current State' without 'Moving to Node'")
        self.pending = None
        state = (_nums(g[1]), _ops_tuple(g[2], lineno))
        if int(g[0]) != self.target:
            raise _Failed(Reason.WRONG_STATE, f"line {lineno}: target {g[0]}, the problem's is {self.target}")
        if state not in self.nodes[node]:
            raise _Failed(Reason.WRONG_STATE, f"line {lineno}: node #{node} does not hold "
                          f"{list(state[0])} with operations {list(state[1])}")
        self.current = (node, state)
        if (node, state) not in self.expanded:
            self.expanded.add((node, state))
            self.visited.append(f"{self.target}:{list(state[0])}")
        self.n_events += 1

    def _moving(self, g: tuple[str, ...], lineno: int) -> None:
        if self.pending is not None:
            raise _Failed(Reason.UNPARSEABLE, f"line {lineno}: two 'Moving to Node' in a row")
        if g[0] not in self.nodes:
            raise _Failed(Reason.BAD_JUMP, f"line {lineno}: moves to node #{g[0]}, never generated")
        self.pending = g[0]
        self.n_events += 1

    def _explore(self, g: tuple[str, ...], nxt: Line | None, lineno: int) -> Verdict | None:
        if self.pending is not None:
            raise _Failed(Reason.UNPARSEABLE, f"line {lineno}: 'Moving to Node' must be followed by "
                          "'Current State'")
        node, (nums, ops) = self.current
        a, op, b, c = int(g[0]), g[1], int(g[2]), int(g[3])
        text_op = f"{a}{op}{b}={c}"
        left = list(nums)
        for x in (a, b):
            if x not in left:
                raise _Failed(Reason.UNKNOWN_NUMBER, f"line {lineno}: {text_op} uses {x}, not available "
                              f"in {list(nums)}")
            left.remove(x)
        value = apply_op(a, b, op)
        if value is None:
            raise _Failed(Reason.ILLEGAL_STEP, f"line {lineno}: {text_op} is not allowed (subtraction is "
                          "larger minus smaller, division must be exact)")
        if value != c:
            raise _Failed(Reason.WRONG_ARITHMETIC, f"line {lineno}: {a}{op}{b} is {value}, not {c}")
        result = _nums(g[4])
        if Counter(result) != Counter(left + [c]):
            raise _Failed(Reason.WRONG_STATE, f"line {lineno}: {text_op} on {list(nums)} leaves "
                          f"{left + [c]}, not {list(result)}")
        state = (result, ops + (text_op,))
        self.n_events += 1
        if len(result) > 1:
            if nxt is None:
                return self._dangling()
            if nxt[0] != "generated":
                raise _Failed(Reason.UNPARSEABLE, f"line {nxt[2]}: expected 'Generated Node' after "
                              "'Exploring Operation' with several numbers left")
            self._generated(node, state, nxt)
            return None
        if nxt is None:
            return self._dangling()
        if nxt[0] not in ("leaf", "goal"):
            raise _Failed(Reason.UNPARSEABLE, f"line {nxt[2]}: expected 'equal'/'unequal' after an "
                          "operation that leaves one number")
        x, t = int(nxt[1][0]), int(nxt[1][1])
        leaf_id = f"{node},{self.non_leaf.get(node, 0)}"
        if nxt[0] == "leaf":
            if x != c or t != self.target or x == self.target:
                raise _Failed(Reason.WRONG_STATE, f"line {nxt[2]}: '{x},{t} unequal' after reaching {c} "
                              f"with target {self.target}")
            self.nodes.setdefault(leaf_id, []).append(state)
            self.n_events += 1
            return None
        self.n_events += 1
        if x != c or t != self.target or c != self.target:
            return self.verdict(False, False, Reason.FALSE_GOAL, f"line {nxt[2]}: claims the goal with "
                                f"{c} (written {x},{t}), target {self.target}", step=self.n_events - 1)
        solution = list(state[1])
        if not self.verify(solution):
            return self.verdict(False, False, Reason.SOLUTION_INVALID, f"solution {solution} does not verify",
                                step=self.n_events - 1, solution=solution)
        return self.verdict(True, True, None, "goal reached", solution=solution)

    def _generated(self, parent: str, state: CdState, line: Line) -> None:
        g, lineno = line[1], line[2]
        node = g[0]
        head, _, _ = node.rpartition(",")
        if head != parent:
            raise _Failed(Reason.WRONG_STATE, f"line {lineno}: node #{node} is not a child of the current "
                          f"node #{parent}")
        written_op = f"{g[3]}{g[4]}{g[5]}={g[6]}"
        if int(g[1]) != self.target or _nums(g[2]) != state[0] or written_op != state[1][-1]:
            raise _Failed(Reason.WRONG_STATE, f"line {lineno}: node #{node} repeats {g[1]}:[{g[2][:60]}] "
                          f"{written_op}, the operation gave {self.target}:{list(state[0])} {state[1][-1]}")
        self.nodes.setdefault(node, []).append(state)
        self.non_leaf[parent] = self.non_leaf.get(parent, 0) + 1


def _nums_safe(text: str) -> Nums | None:
    try:
        return _nums(text)
    except TraceParseError:
        return None
