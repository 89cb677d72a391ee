"""Searchformer's Sokoban A* trace (Lehnert et al. 2024): writer, parser and replay validator.

Prompt (problem.searchformer_prompt): `worker x y box x y ... dock x y ... wall x y ...` on one line.
Trace, one step per line, as Searchformer's `WithBoxSokobanTokenizer` writes it: the state (player,
then the boxes), the cost so far and the heuristic as `c<int>` tokens; then the plan, the player's
cells from the start to the goal, the start included:

    create worker 3 1 box 3 2 box 2 3 c0 c4
    close worker 3 1 box 3 2 box 2 3 c0 c4
    create worker 3 2 box 3 3 box 2 3 c1 c3
    ...
    plan 3 1
    plan 3 2
    ...

One deliberate difference: Searchformer leaves out boxes already on a dock, which makes a state
ambiguous when several docks are free; every box is written here, so a line names exactly one state.

Events in: the Create/Close/Goal events of search/astar.py (states as problem.py's `(player, boxes)`).
Text in: `replay` checks each step against the rules and the lines before it: the first create is the
start with c0; every later create is one legal move from the node closed last (a push into a wall or
another box, a move through a wall, a push onto a dead corner are each rejected), with g one more than
its parent's and h the default heuristic, and it is new or cheaper than before; a close takes an open
node with the same g and h; nothing but plan steps follows the close of a goal; the plan starts on the
start cell, moves one cell at a time by the rules through created states and ends on the goal, and
`problem.verify` accepts it. Which open node is closed (least f) is not checked: a trace may deviate
from the teacher's order and still be a legal search. Whitespace, line breaks included, is not
significant. Texts longer than MAX_TRACE_CHARS are refused before they are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from metacot_core.domains.sokoban.level import MAX_BOXES, State, parse_state_tokens, state_text
from metacot_core.search.events import Close, Create, Event, Goal
from metacot_core.search.result import SearchResult
from metacot_core.traces.astar import AstarReplay
from metacot_core.traces.base import Reason, TraceParseError, Verdict

if TYPE_CHECKING:  # annotations only: problem.py's hooks import the modules that import this one
    from metacot_core.domains.sokoban.problem import SokobanProblem

MAX_TRACE_CHARS = 4_000_000  # ~400k tokens: far beyond any 7x7 A* trace, small enough to judge quickly
_PROMPT_WORDS = ("worker", "box", "dock", "wall")


@dataclass(frozen=True, slots=True)
class Step:
    """One parsed step: kind "create", "close" or "plan"; `state` for create/close, `cell` for plan."""

    kind: str
    state: State | None = None
    g: int | None = None
    h: int | None = None
    cell: tuple[int, int] | None = None


class SokobanAstarFormat:
    """`create worker x y box x y ... cG cH` / `close ...` / `plan x y` (see the module docstring)."""

    name: ClassVar[str] = "sokoban-astar"
    domains: ClassVar[tuple[str, ...]] = ("sokoban",)

    def prompt(self, problem: SokobanProblem) -> str:
        return problem.searchformer_prompt()

    def linearize(self, problem: SokobanProblem, result: SearchResult) -> str:
        lines = []
        for event in result.events:
            if isinstance(event, Create | Close):
                kind = "create" if isinstance(event, Create) else "close"
                words = problem.state_tokens(event.state)
                lines.append(f"{kind} {' '.join(words)} c{_int_cost(event.g)} c{_int_cost(event.h)}")
        if result.events and not lines:
            raise ValueError(f"sokoban astar format: result of {result.algorithm!r} has no create/close "
                             "events")
        plan = linearize_plan(problem, result)
        return "\n".join(lines + ([plan] if plan else []))

    def parse(self, text: str) -> list[Event]:
        """Create/Close events (Create.parent = the node closed last), then Goal on the last closed node
        when a plan follows."""
        steps, error = parse_steps(text)
        if error is not None:
            raise TraceParseError(error)
        events: list[Event] = []
        last_closed: tuple[str, State] | None = None
        planned = False
        for step in steps:
            if step.kind == "plan":
                planned = True
                continue
            assert step.state is not None and step.g is not None and step.h is not None
            node = state_text(step.state)
            if step.kind == "create":
                parent = last_closed[0] if last_closed else None
                events.append(Create(node=node, state=step.state, g=float(step.g), h=float(step.h),
                                     parent=parent))
            else:
                events.append(Close(node=node, state=step.state, g=float(step.g), h=float(step.h)))
                last_closed = (node, step.state)
        if planned and last_closed is not None:
            events.append(Goal(node=last_closed[0], state=last_closed[1]))
        return events

    def replay(self, problem: SokobanProblem, text: str) -> Verdict:
        try:
            return replay_text(problem, text, plan_only=False)
        except Exception as err:  # noqa: BLE001 - replay judges any text; a bug must not crash evaluation
            return internal_error(err)


def linearize_plan(problem: SokobanProblem, result: SearchResult) -> str:
    """`plan x y` lines, the player's cells from the start to the goal (empty without a solution)."""
    if result.solution is None:
        return ""
    state = problem.initial_state()
    cells = [state[0]]
    for action in result.solution:
        state = problem.apply(state, action)
        cells.append(state[0])
    return "\n".join(f"plan {x} {y}" for x, y in cells)


def internal_error(err: Exception) -> Verdict:
    """The verdict for a validator bug: the trace is not accepted, and the detail says why."""
    return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE, detail=f"internal error: {err!r}")


def parse_steps(text: Any) -> tuple[list[Step], str | None]:
    """Steps from a token stream (a leading prompt is skipped) and the first grammar error, if any.

    On an error the steps before it are still returned, so replay can judge the valid prefix first.
    """
    if not isinstance(text, str):
        return [], f"expected text, got {type(text).__name__}"
    if len(text) > MAX_TRACE_CHARS:
        return [], f"trace of {len(text)} characters exceeds MAX_TRACE_CHARS ({MAX_TRACE_CHARS})"
    tokens = text.split()
    i = prompt_length(tokens)
    steps: list[Step] = []
    while i < len(tokens):
        kind = tokens[i]
        try:
            if kind == "plan":
                if len(tokens) < i + 3:
                    raise ValueError("plan needs 2 values")
                steps.append(Step("plan", cell=(_coord(tokens[i + 1]), _coord(tokens[i + 2]))))
                i += 3
            elif kind in ("create", "close"):
                step, i = _parse_node_step(tokens, i)
                steps.append(step)
            else:
                raise ValueError(f"unknown word {kind[:30]!r}")
        except ValueError as err:
            return steps, f"step {len(steps)}: {err}"
    return steps, None


def prompt_length(tokens: Sequence[str]) -> int:
    """How many leading tokens are a prompt (`worker x y`, `box x y`, ... triples)."""
    i = 0
    while i < len(tokens) and tokens[i] in _PROMPT_WORDS:
        i += 3
    return min(i, len(tokens))


def _parse_node_step(tokens: Sequence[str], i: int) -> tuple[Step, int]:
    """`create|close worker x y (box x y)* cG cH` starting at tokens[i]; returns the step and next index."""
    end = i + 4
    while end < len(tokens) and tokens[end] == "box" and end - i < 4 + 3 * MAX_BOXES:
        end += 3
    state = parse_state_tokens(tokens[i + 1:end])
    if len(tokens) < end + 2:
        raise ValueError(f"{tokens[i]} needs cG cH after the state")
    return Step(tokens[i], state=state, g=_parse_cost(tokens[end]), h=_parse_cost(tokens[end + 1])), end + 2


def _coord(token: str) -> int:
    if not token.isdigit() or len(token) > 3:
        raise ValueError(f"{token[:20]!r} is not a coordinate")
    return int(token)


def _parse_cost(token: str) -> int:
    if len(token) < 2 or token[0] != "c" or not token[1:].isdigit() or len(token) > 10:
        raise ValueError(f"{token[:20]!r} is not a cost token c<int>")
    return int(token[1:])


def _int_cost(value: float) -> int:
    if value != int(value):
        raise ValueError(f"sokoban astar format: cost {value} is not an integer")
    return int(value)


def describe_move(problem: SokobanProblem, before: State, after: State) -> tuple[Reason, str] | None:
    """Why `after` is not one legal, non-deadlocking move from `before` (None when it is)."""
    shown = problem.render_state
    dx, dy = after[0][0] - before[0][0], after[0][1] - before[0][1]
    if abs(dx) + abs(dy) != 1:
        return Reason.ILLEGAL_STEP, f"{shown(after)}: the player is not one cell from {shown(before)}"
    target = after[0]
    if not problem.level.is_floor(target):
        return Reason.ILLEGAL_STEP, f"{shown(after)}: the player moves into a wall at {list(target)}"
    nxt = problem.step_toward(before, target)
    if nxt is None:
        behind = [target[0] + dx, target[1] + dy]
        return Reason.ILLEGAL_STEP, f"{shown(after)}: the box at {list(target)} cannot be pushed to {behind}"
    if nxt != after:
        return Reason.WRONG_STATE, f"{shown(after)}: that move from {shown(before)} gives {shown(nxt)}"
    if problem.pushes_into_dead_corner(before, after):
        return Reason.ILLEGAL_STEP, f"{shown(after)}: deadlock, a box pushed into a dead corner"
    return None


def astar_replay(problem: SokobanProblem) -> AstarReplay:
    """The generic A* replay bookkeeping, with Sokoban's words for a state and for an illegal move."""
    def step(last: State, state: State) -> float | tuple[Reason, str]:
        return describe_move(problem, last, state) or 1.0  # every Sokoban move costs 1

    return AstarReplay(problem, label=state_text, check_move=step)


def replay_plan_cells(problem: SokobanProblem, cells: Sequence[tuple[int, int]],
                      created: AstarReplay | None) -> tuple[list[State], tuple[Reason, int, str] | None]:
    """The states a plan walks through, and the first problem (reason, index in the plan, detail).

    The plan starts on the start cell; each cell is one legal move by the plain rules; with `created`
    (a full trace), each state must have been created; the last state must be the goal.
    """
    state = problem.initial_state()
    states = [state]
    if not cells or cells[0] != state[0]:
        return states, (Reason.ILLEGAL_STEP, 0, f"the plan must start on the player's cell {list(state[0])}")
    for k, cell in enumerate(cells[1:], start=1):
        nxt = problem.step_toward(state, cell)
        if nxt is None:
            return states, (Reason.ILLEGAL_STEP, k, f"plan {cell[0]} {cell[1]}: not a legal move from "
                                                    f"{state_text(state)}")
        if created is not None and not created.seen(nxt):
            return states, (Reason.ILLEGAL_STEP, k, f"plan {cell[0]} {cell[1]}: state {state_text(nxt)} "
                                                    "was never created")
        state = nxt
        states.append(state)
    if not problem.is_goal(state):
        return states, (Reason.SOLUTION_INVALID, len(cells) - 1, "the plan does not end on the goal")
    return states, None


def replay_text(problem: SokobanProblem, text: Any, plan_only: bool) -> Verdict:
    """The verdict on a full A* trace, or on a plan alone (`plan_only`); see the module docstring."""
    if not isinstance(text, str):
        return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE,
                       detail=f"expected text, got {type(text).__name__}")
    steps, error = parse_steps(text)
    if not steps and error is None:
        return Verdict(valid=False, solved=False, reason=Reason.EMPTY, detail="no steps")
    tokens = text.split()
    prompt = tokens[:prompt_length(tokens)]
    if prompt and prompt != problem.searchformer_prompt().split():
        return Verdict(valid=False, solved=False, reason=Reason.WRONG_STATE, step=0,
                       detail="the prompt describes another level")
    run = astar_replay(problem)

    def verdict(valid: bool, solved: bool = False, **kw: Any) -> Verdict:
        return Verdict(valid=valid, solved=solved, states_visited=len(run.visited), n_events=len(steps),
                       visited=run.visited, **kw)

    plan: list[tuple[int, int]] = []
    plan_at = 0
    for k, step in enumerate(steps):
        if step.kind == "plan":
            plan_at = plan_at if plan else k
            assert step.cell is not None
            plan.append(step.cell)
            continue
        if plan or plan_only:
            where = "in a plan-only text" if plan_only else "after the plan"
            return verdict(False, reason=Reason.UNPARSEABLE if plan_only else Reason.ILLEGAL_STEP, step=k,
                           detail=f"{step.kind} step {where}")
        assert step.state is not None and step.g is not None and step.h is not None
        act = run.create if step.kind == "create" else run.close
        bad = act(step.state, step.g, step.h)
        if bad is not None:
            return verdict(False, reason=bad[0], step=k, detail=bad[1])
    if error is not None:
        return verdict(False, reason=Reason.UNPARSEABLE, step=len(steps), detail=error)
    if not plan:
        if run.goal_closed:
            return verdict(False, reason=Reason.SOLUTION_INVALID, detail="goal closed, no plan")
        return verdict(True, reason=Reason.NO_GOAL, detail="no goal closed")
    if not plan_only and not run.goal_closed:
        return verdict(False, reason=Reason.FALSE_GOAL, step=plan_at,
                       detail="a plan before the goal was closed")
    _, bad_plan = replay_plan_cells(problem, plan, None if plan_only else run)
    solution = [f"{x},{y}" for x, y in plan[1:]]
    if bad_plan is not None:
        reason, index, detail = bad_plan
        return verdict(False, reason=reason, step=plan_at + index, detail=detail, solution=solution)
    if not problem.verify(solution):
        return verdict(False, reason=Reason.SOLUTION_INVALID, step=plan_at, detail="plan does not verify",
                       solution=solution)
    return verdict(True, solved=True, solution=solution, detail="goal reached")
