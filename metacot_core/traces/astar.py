"""Searchformer's A* trace format (Lehnert et al. 2024), and its replay validator.

Prompt: the problem's `instance_prompt()` (mazes, one line, walls in order of y, then x):
    start 0 0 goal 2 2 wall 1 1 wall 0 2
Trace (one step per line; `cG cH` are the cost so far and the heuristic as `c<int>` tokens), then the
plan: every cell of the path, the start included:
    create 0 0 c0 c4
    close 0 0 c0 c4
    create 1 0 c1 c3
    ...
    close 2 2 c4 c0
    plan 0 0
    plan 1 0
    ...
The parser reads whitespace-separated tokens, so line breaks are not significant (as in Searchformer's
token sequences). `replay` checks each step against A*'s rules: the first step creates the start with
g 0; every later create is a free neighbour of the most recently closed node with g = g(parent) + 1
and h = Manhattan distance, and is new or cheaper than before; a close takes an open node with the
same g and h; nothing but plan steps follows the close of the goal; the plan walks from the start to
the goal through created cells, and `problem.verify` accepts it. Which open node is closed (least f)
is not checked: a trace may deviate from the teacher's order and still be a legal search.

`linearize_plan` / `replay_plan` write and judge the plan alone; `PlanFormat` is the solution-only
control of a domain whose Domain names it as its `solution_format` (mazes).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar

from metacot_core.ascii_text import is_ascii_digits
from metacot_core.problems.base import Problem, instance_prompt
from metacot_core.search.events import Close, Create, Event, Goal
from metacot_core.search.result import SearchResult
from metacot_core.traces.base import Reason, TraceParseError, Verdict, unreadable

_ARITY = {"create": 4, "close": 4, "plan": 2}
_PROMPT_WORDS = ("start", "goal", "wall")

Step = tuple[str, int, int, int | None, int | None]  # (kind, x, y, g, h); g, h None for plan


class AstarFormat:
    """`create x y cG cH` / `close x y cG cH` / `plan x y`, as Searchformer tokenizes maze traces."""

    name: ClassVar[str] = "astar"
    domains: ClassVar[tuple[str, ...]] = ("maze",)

    def prompt(self, problem: Problem) -> str:
        return instance_prompt(problem)

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        lines = []
        for event in result.events:
            if isinstance(event, Create | Close):
                kind = "create" if isinstance(event, Create) else "close"
                x, y = event.state
                lines.append(f"{kind} {x} {y} c{_int_cost(event.g)} c{_int_cost(event.h)}")
        if result.events and not lines:
            raise ValueError(f"astar format: result of {result.algorithm!r} has no create/close events")
        plan = linearize_plan(problem, result)
        return "\n".join(lines + ([plan] if plan else []))

    def parse(self, text: str) -> list[Event]:
        """Create/Close events (Create.parent = the node closed last), then Goal on the plan's last cell."""
        steps, error = parse_steps(text)
        if error is not None:
            raise TraceParseError(error)
        events: list[Event] = []
        last_closed: str | None = None
        plan: list[tuple[int, int]] = []
        for kind, x, y, g, h in steps:
            node = f"{x},{y}"
            if kind == "create":
                events.append(Create(node=node, state=(x, y), g=float(g), h=float(h), parent=last_closed))
            elif kind == "close":
                events.append(Close(node=node, state=(x, y), g=float(g), h=float(h)))
                last_closed = node
            else:
                plan.append((x, y))
        if plan:
            events.append(Goal(node=f"{plan[-1][0]},{plan[-1][1]}", state=plan[-1]))
        return events

    def replay(self, problem: Problem, text: str) -> Verdict:
        if (refused := unreadable(problem, text)) is not None:
            return refused
        try:
            return _replay(problem, text, plan_only=False)
        except Exception as err:  # noqa: BLE001 - replay judges any text; a bug must not crash evaluation
            return internal_error(err)


def linearize_plan(problem: Problem, result: SearchResult) -> str:
    """`plan x y` lines from the start to the goal (empty when the search found no solution)."""
    if result.solution is None:
        return ""
    state = problem.initial_state()
    cells = [state]
    for action in result.solution:
        state = problem.apply(state, action)
        cells.append(state)
    return "\n".join(f"plan {x} {y}" for x, y in cells)


def replay_plan(problem: Problem, text: str) -> Verdict:
    """Judge a plan-only text (`plan x y` steps, optionally after the prompt). Never raises."""
    if (refused := unreadable(problem, text)) is not None:
        return refused
    try:
        return _replay(problem, text, plan_only=True)
    except Exception as err:  # noqa: BLE001
        return internal_error(err)


class PlanFormat:
    """The plan alone (`plan x y` lines after the prompt): the solution-only control of a grid domain.

    The plan comes from A* (optimal), run here when the result passed in is not already an A* solution.
    """

    name: ClassVar[str] = "solution"
    domains: ClassVar[tuple[str, ...]] = ("maze",)

    def claims(self, text: str) -> bool:
        """Whether `text` is written in this format's words (see SolutionFormat.parse)."""
        return text.lstrip().startswith(("plan", *_PROMPT_WORDS))

    def prompt(self, problem: Problem) -> str:
        return instance_prompt(problem)

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        return linearize_plan(problem, _optimal(problem, result))

    def parse(self, text: str) -> list[Event]:
        return AstarFormat().parse(text)

    def replay(self, problem: Problem, text: str) -> Verdict:
        return replay_plan(problem, text)


def _optimal(problem: Problem, result: SearchResult) -> SearchResult:
    if result.solved and result.algorithm.startswith("astar"):
        return result
    from metacot_core.registry import get_search

    return get_search("astar")(problem, _astar_config(), None)


@lru_cache(maxsize=1)
def _astar_config() -> Any:
    from metacot_core.search.config import SearchConfig

    return SearchConfig(algorithm="astar")


def internal_error(err: Exception) -> Verdict:
    """The verdict for a validator bug: the trace is not accepted, and the detail says why."""
    return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE, detail=f"internal error: {err!r}")


def parse_steps(text: str) -> tuple[list[Step], str | None]:
    """Steps from a token stream (a leading prompt is skipped) and the first grammar error, if any.

    On an error the steps before it are still returned, so replay can judge the valid prefix first.
    """
    if not isinstance(text, str):
        return [], f"expected text, got {type(text).__name__}"
    tokens = text.split()
    i = 0
    while i < len(tokens) and tokens[i] in _PROMPT_WORDS:
        i += 3
    steps: list[Step] = []
    while i < len(tokens):
        kind = tokens[i]
        arity = _ARITY.get(kind)
        if arity is None:
            return steps, f"step {len(steps)}: unknown word {kind!r}"
        args = tokens[i + 1 : i + 1 + arity]
        if len(args) < arity:
            return steps, f"step {len(steps)}: {kind} needs {arity} values, got {len(args)}"
        try:
            x, y = _parse_int(args[0]), _parse_int(args[1])
            g = _parse_cost(args[2]) if arity == 4 else None
            h = _parse_cost(args[3]) if arity == 4 else None
        except ValueError as err:
            return steps, f"step {len(steps)}: {err}"
        steps.append((kind, x, y, g, h))
        i += 1 + arity
    return steps, None


def _parse_int(token: str) -> int:
    if not is_ascii_digits(token.removeprefix("-")) or len(token) > 9:
        raise ValueError(f"{token!r} is not a coordinate")
    return int(token)


def _parse_cost(token: str) -> int:
    if len(token) < 2 or token[0] != "c" or not is_ascii_digits(token[1:]) or len(token) > 10:
        raise ValueError(f"{token!r} is not a cost token c<int>")
    return int(token[1:])


def _int_cost(value: float) -> int:
    if value != int(value):
        raise ValueError(f"astar format: cost {value} is not an integer")
    return int(value)


# (last closed, created) -> the step's cost when the move is legal, else (reason, detail)
MoveCheck = Callable[[Any, Any], "float | tuple[Reason, str]"]


class AstarReplay:
    """The state of one A* replay: open and closed nodes with their (g, h), the last closed node.

    Generic over the problem: a created node must be a successor of the last closed one (by the
    problem's actions), g the parent's g plus the step cost, h the problem's heuristic; a node is closed
    only after it was created, with the same g and h. `label` writes a state in the reasons (default:
    as Python prints it); `check_move(last, state)` replaces the generic successor check for a domain that
    can say why a move is illegal in its own words (Sokoban: a push into a wall or another box, a
    deadlock): it returns the step's cost, or (reason, detail).
    """

    def __init__(self, problem: Problem, label: Callable[[Any], str] = str,
                 check_move: MoveCheck | None = None):
        self.problem = problem
        self.label = label
        self.check_move = check_move
        self.start = problem.initial_state()
        self.open: dict[Any, tuple[int, int]] = {}
        self.closed: dict[Any, tuple[int, int]] = {}
        self.last_closed: Any = None
        self.goal_closed = False
        self.created_any = False
        self.n_closed = 0
        self.visited: list[str] = []
        self._moves: dict[Any, Any] | None = None  # of the last closed node: its creates all ask

    def moves(self, cell: Any) -> dict[Any, Any]:
        """Legal successor state -> the action reaching it."""
        return {self.problem.apply(cell, a): a for a in self.problem.actions(cell)}

    def seen(self, state: Any) -> bool:
        return state in self.open or state in self.closed

    def _parent_g(self, state: Any) -> tuple[int | None, tuple[Reason, str] | None]:
        """g of the step from the last closed node to `state`, or why there is no such step."""
        last, label = self.last_closed, self.label
        if self.check_move is not None:
            step = self.check_move(last, state)
            if isinstance(step, tuple):
                return None, step
            return int(self.closed[last][0] + step), None
        if self._moves is None:
            self._moves = self.moves(last)
        moves = self._moves
        if state not in moves:
            return None, (Reason.ILLEGAL_STEP,
                          f"{label(state)}: not a free neighbour of last closed {label(last)}")
        return int(self.closed[last][0] + self.problem.cost(last, moves[state])), None

    def create(self, cell: Any, g: int, h: int) -> tuple[Reason, str] | None:
        label = self.label
        if self.goal_closed:
            return Reason.ILLEGAL_STEP, "create after the goal was closed"
        if self.last_closed is None:
            if self.created_any:
                return Reason.ILLEGAL_STEP, f"create {label(cell)} before the start was closed"
            if cell != self.start:
                return (Reason.ILLEGAL_STEP,
                        f"the first create must be the start {label(self.start)}, got {label(cell)}")
            want_g = 0
        else:
            parent_g, bad = self._parent_g(cell)
            if bad is not None:
                return bad
            want_g = int(parent_g or 0)
        if g != want_g:
            return Reason.WRONG_COST, f"create {label(cell)}: g is {g}, should be {want_g}"
        want_h = self.problem.heuristic(cell)
        if h != want_h:
            return Reason.WRONG_COST, f"create {label(cell)}: h is {h}, should be {want_h:g}"
        known = self.open.get(cell) or self.closed.get(cell)
        if known is not None and known[0] <= g:
            where = "open" if cell in self.open else "closed"
            return Reason.ILLEGAL_STEP, f"create {label(cell)}: already {where} with g {known[0]} <= {g}"
        self.closed.pop(cell, None)
        self.open[cell] = (g, h)
        self.created_any = True
        return None

    def close(self, cell: Any, g: int, h: int) -> tuple[Reason, str] | None:
        label = self.label
        if self.goal_closed:
            return Reason.ILLEGAL_STEP, "close after the goal was closed"
        if cell not in self.open:
            if cell in self.closed:
                return Reason.ILLEGAL_STEP, f"close {label(cell)}: already closed"
            return Reason.BAD_JUMP, f"close {label(cell)}: never created"
        if self.open[cell] != (g, h):
            og, oh = self.open[cell]
            return Reason.WRONG_COST, f"close {label(cell)}: written c{g} c{h}, created with c{og} c{oh}"
        self.closed[cell] = self.open.pop(cell)
        self.last_closed = cell
        self._moves = None
        self.n_closed += 1
        self.visited.append(self.problem.render_state(cell))
        self.goal_closed = bool(self.problem.is_goal(cell))
        return None


def _replay(problem: Problem, text: str, plan_only: bool) -> Verdict:
    steps, error = parse_steps(text)
    if not steps and error is None:
        return Verdict(valid=False, solved=False, reason=Reason.EMPTY, detail="no steps")
    state = AstarReplay(problem)
    plan: list[tuple[int, int]] = []
    plan_at = 0

    def fail(reason: Reason, step: int, detail: str) -> Verdict:
        return Verdict(valid=False, solved=False, reason=reason, step=step, detail=detail,
                       states_visited=state.n_closed, n_events=len(steps), visited=state.visited)

    for k, (kind, x, y, g, h) in enumerate(steps):
        cell = (x, y)
        if kind == "plan":
            if not plan:
                plan_at = k
            plan.append(cell)
            continue
        if plan or plan_only:
            return fail(Reason.UNPARSEABLE if plan_only else Reason.ILLEGAL_STEP, k,
                        f"{kind} step {'in a plan-only text' if plan_only else 'after the plan'}")
        problem_found = state.create(cell, g, h) if kind == "create" else state.close(cell, g, h)
        if problem_found is not None:
            return fail(problem_found[0], k, problem_found[1])
    if error is not None:
        return fail(Reason.UNPARSEABLE, len(steps), error)
    done = dict(valid=True, states_visited=state.n_closed, n_events=len(steps), visited=state.visited)
    if not plan:
        if state.goal_closed:
            return Verdict(solved=False, reason=Reason.SOLUTION_INVALID, detail="goal closed, no plan",
                           **done)
        return Verdict(solved=False, reason=Reason.NO_GOAL, detail="no goal closed, no plan", **done)
    bad = _check_plan(problem, plan, None if plan_only else state)
    if bad is not None:
        return fail(bad[0], plan_at + bad[1], bad[2])
    solution = [problem.render_state(c) for c in plan[1:]]
    if not problem.verify(solution):
        return fail(Reason.SOLUTION_INVALID, plan_at + len(plan) - 1, "the plan does not verify")
    if not plan_only and not state.goal_closed:
        return Verdict(solved=False, reason=Reason.NO_GOAL, solution=solution,
                       detail="plan written but the goal was never closed", **done)
    return Verdict(solved=True, solution=solution, **done)


def _check_plan(
    problem: Problem, plan: list[tuple[int, int]], state: AstarReplay | None
) -> tuple[Reason, int, str] | None:
    """(reason, index in plan, detail) of the first wrong plan step; with `state`, cells must be created."""
    start = problem.initial_state()
    if plan[0] != start:
        return Reason.ILLEGAL_STEP, 0, f"the plan starts at {plan[0]}, not at the start {start}"
    for i in range(1, len(plan)):
        moves = [problem.apply(plan[i - 1], a) for a in problem.actions(plan[i - 1])]
        if plan[i] not in moves:
            return Reason.ILLEGAL_STEP, i, f"plan step {plan[i - 1]} -> {plan[i]} is not a legal move"
        if state is not None and plan[i] not in state.closed and plan[i] not in state.open:
            return Reason.BAD_JUMP, i, f"plan cell {plan[i]} was never created"
    if not problem.is_goal(plan[-1]):
        return Reason.SOLUTION_INVALID, len(plan) - 1, f"the plan ends at {plan[-1]}, not at the goal"
    return None
