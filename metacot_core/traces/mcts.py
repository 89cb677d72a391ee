"""The `mcts` trace format: Monte Carlo tree search written out step by step, and its replay validator.

No public system linearizes MCTS, so this grammar is ours. It aims to be learnable (each line is one
decision with the numbers it needs) and checkable (every line can be verified from the problem's rules
and the lines before it). One line per event; the root is always `n0`; values have 3 decimals:

    expand <id> <state>                    expand a node (its state as problem.render_state writes it)
    child <id> <parent> <action> -> <state>  a generated child: action (render_action) and resulting state
    rollout <id> <a1> | <a2> | ... => <r>  a random rollout from <id>: its actions and reward (no actions:
                                           the child itself was evaluated)
    backup <id> <visits> <value>           statistics of <id> after adding the iteration's reward
    back <id>                              the search jumps back to <id> (the root) for a new iteration
    select <id> <visits> <value>           the tree policy moves to child <id> (statistics before the move)
    deadend <id>                           the expanded node has no new child; its subtree is exhausted
    goal <id>                              <id> holds a goal state; the search stops

Example (maze from (0,0) to (2,0), wall at (1,0); `search/mcts.py` defines the iteration and reward):

    expand n0 0,0
    child n1 n0 0,1 -> 0,1
    rollout n1 1,1 | 2,1 => 1.000
    backup n1 1 1.000
    backup n0 1 1.000
    back n0
    select n1 1 1.000
    expand n1 0,1
    child n2 n1 0,2 -> 0,2
    child n3 n1 1,1 -> 1,1
    ...

Prompt: the problem's `instance_prompt()` (mazes: Searchformer's `start x y goal x y wall x y ...`);
a domain without one writes its canonical instance as `problem <key> <values...> ...` (Countdown:
`problem numbers 43 15 18 9 target 13`, see problems.base.generic_prompt).

`replay` is generic over any Problem and needs no state parser: for each `child` line it finds the
legal action of the parent state whose rendering matches the written action, applies it, and compares
the written state with `render_state` of the result. It also checks the order of lines within an
iteration, that rollout actions are legal and the reward is the rule's, that backups add one visit and
update the mean exactly (within 0.001), that selects move to a child of the current node with the
statistics it has, that jumps go to known nodes, and that a goal claim is a real goal whose path from
the root verifies. Which child UCT should select is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from metacot_core.ascii_text import is_ascii_digits
from metacot_core.problems.base import Problem, instance_prompt
from metacot_core.search.events import (
    Backtrack,
    Backup,
    DeadEnd,
    Event,
    Expand,
    Generate,
    Goal,
    Rollout,
    Select,
)
from metacot_core.search.mcts import ROOT, mean_milli, rollout_reward_milli
from metacot_core.search.result import SearchResult
from metacot_core.traces.astar import internal_error
from metacot_core.traces.base import Reason, TraceParseError, Verdict, foreign_characters

VALUE_TOLERANCE = 0.001 + 1e-9
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # how values are written ({:.3f}), ASCII only
_KEYWORDS = ("expand", "child", "rollout", "backup", "back", "select", "deadend", "goal")
_PROMPT_STARTS = ("problem ", "start ")


class MctsFormat:
    """Explicit MCTS traces for any domain (see the module docstring for the grammar)."""

    name: ClassVar[str] = "mcts"
    domains: ClassVar[tuple[str, ...]] = ("countdown", "maze")

    def prompt(self, problem: Problem) -> str:
        return instance_prompt(problem)

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        return format_events(render_events(problem, result.events))

    def parse(self, text: str) -> list[Event]:
        """Events with actions and states as written (strings); raises TraceParseError."""
        events, error = parse_lines(text)
        if error is not None:
            raise TraceParseError(error)
        return events

    def replay(self, problem: Problem, text: str) -> Verdict:
        if (foreign := foreign_characters(text)) is not None:
            return foreign
        try:
            return _replay(problem, text)
        except Exception as err:  # noqa: BLE001 - replay judges any text; a bug must not crash evaluation
            return internal_error(err)


def render_events(problem: Problem, events: Sequence[Event]) -> list[Event]:
    """The events as `parse` gives them back: actions and states as text, DeadEnd/Goal without state."""
    states: dict[str, Any] = {}
    out: list[Event] = []
    for event in events:
        if isinstance(event, Expand):
            states[event.node] = event.state
            out.append(Expand(node=event.node, state=problem.render_state(event.state)))
        elif isinstance(event, Generate):
            states[event.node] = event.state
            action = problem.render_action(states[event.parent], event.action)
            out.append(Generate(node=event.node, parent=event.parent, action=action,
                                state=problem.render_state(event.state)))
        elif isinstance(event, Rollout):
            state, written = states[event.node], []
            for action in event.actions:
                written.append(problem.render_action(state, action))
                state = problem.apply(state, action)
            out.append(Rollout(node=event.node, actions=tuple(written), reward=event.reward))
        elif isinstance(event, DeadEnd):
            out.append(DeadEnd(node=event.node, state=""))  # the lines name the node only
        elif isinstance(event, Goal):
            out.append(Goal(node=event.node, state=""))
        elif isinstance(event, Select | Backup | Backtrack):
            out.append(event)
        else:
            raise ValueError(f"mcts format: cannot write a {type(event).__name__} event (use algorithm mcts)")
    return out


def format_events(events: Sequence[Event]) -> str:
    """Text of rendered events, one line each."""
    return "\n".join(_line(e) for e in events)


def _line(e: Event) -> str:
    if isinstance(e, Expand):
        return f"expand {e.node} {e.state}"
    if isinstance(e, Generate):
        return f"child {e.node} {e.parent} {e.action} -> {e.state}"
    if isinstance(e, Rollout):
        actions = " | ".join(e.actions)
        return f"rollout {e.node}{' ' + actions if actions else ''} => {e.reward:.3f}"
    if isinstance(e, Backup):
        return f"backup {e.node} {e.visits} {e.value:.3f}"
    if isinstance(e, Select):
        return f"select {e.node} {e.visits} {e.value:.3f}"
    if isinstance(e, Backtrack):
        return f"back {e.node}"
    if isinstance(e, DeadEnd):
        return f"deadend {e.node}"
    if isinstance(e, Goal):
        return f"goal {e.node}"
    raise ValueError(f"mcts format: cannot write a {type(e).__name__} event")


def parse_lines(text: str) -> tuple[list[Event], str | None]:
    """Events from the lines of `text` (a leading prompt line is skipped) and the first grammar error.

    On an error the events before it are still returned, so replay can judge the valid prefix first.
    DeadEnd and Goal carry state "" (their state is the node's, known from earlier lines).
    """
    if not isinstance(text, str):
        return [], f"expected text, got {type(text).__name__}"
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if lines and lines[0].startswith(_PROMPT_STARTS):
        lines = lines[1:]
    events: list[Event] = []
    for line in lines:
        try:
            events.append(_parse_line(line))
        except ValueError as err:
            return events, f"line {len(events)}: {err}"
    return events, None


def _parse_line(line: str) -> Event:
    word, _, rest = line.partition(" ")
    if word not in _KEYWORDS:
        raise ValueError(f"unknown line {line[:40]!r}")
    if word == "expand":
        node, _, state = rest.partition(" ")
        return Expand(node=_node_id(node), state=state)
    if word == "child":
        parts = rest.split(" ", 2)
        if len(parts) < 3 or " -> " not in f" {parts[2]}":
            raise ValueError("child needs: child <id> <parent> <action> -> <state>")
        action, _, state = f" {parts[2]}".partition(" -> ")
        node, parent = _node_id(parts[0]), _node_id(parts[1])
        return Generate(node=node, parent=parent, action=action.strip(), state=state)
    if word == "rollout":
        head, sep, reward = rest.rpartition("=>")
        if not sep:
            raise ValueError("rollout needs: rollout <id> <actions> => <reward>")
        node, _, actions = head.strip().partition(" ")
        acts = tuple(a.strip() for a in actions.split(" | ")) if actions.strip() else ()
        if any(not a for a in acts):
            raise ValueError("rollout: empty action between '|'")
        return Rollout(node=_node_id(node), actions=acts, reward=_number(reward))
    parts = rest.split()
    if word in ("backup", "select"):
        if len(parts) != 3:
            raise ValueError(f"{word} needs: {word} <id> <visits> <value>")
        cls = Backup if word == "backup" else Select
        return cls(node=_node_id(parts[0]), visits=_count(parts[1]), value=_number(parts[2]))
    if len(parts) != 1:
        raise ValueError(f"{word} needs exactly one node id")
    node = _node_id(parts[0])
    if word == "back":
        return Backtrack(node=node)
    if word == "deadend":
        return DeadEnd(node=node, state="")
    return Goal(node=node, state="")


def _node_id(token: str) -> str:
    if not token or any(ch.isspace() for ch in token):
        raise ValueError(f"bad node id {token!r}")
    return token


def _count(token: str) -> int:
    if not is_ascii_digits(token) or len(token) > 12:
        raise ValueError(f"{token!r} is not a visit count")
    return int(token)


def _number(token: str) -> float:
    token = token.strip()
    if _DECIMAL.fullmatch(token) is None:  # float() takes every Unicode digit, "1_0", "nan", "1e9"
        raise ValueError(f"{token!r} is not a number")
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{token!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{token!r} is not a finite number")
    return value


@dataclass(slots=True)
class _Node:
    state: Any
    parent: str | None
    action: Any = None
    children: list[str] | None = None
    visits: int = 0
    total_milli: int = 0


@dataclass
class _MctsReplay:
    """The tree as the trace has built it so far, and where the iteration stands."""

    problem: Problem
    nodes: dict[str, _Node] = field(default_factory=dict)
    seen: set = field(default_factory=set)
    current: str = ROOT
    expanded: str | None = None  # node whose children are being generated
    phase: str = "select"  # select -> generate -> rollout -> backup -> select
    rollout_node: str | None = None
    rollout_rewards: list[int] = field(default_factory=list)
    backup_next: str | None = None  # node the next backup line must name
    backup_reward: int = 0
    goal: str | None = None
    n_expanded: int = 0
    visited: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        state = self.problem.initial_state()
        self.nodes[ROOT] = _Node(state=state, parent=None)
        self.seen.add(state)

    def step(self, e: Event) -> tuple[Reason, str] | None:
        if self.goal is not None:
            return Reason.ILLEGAL_STEP, "a line after the goal"
        if isinstance(e, Goal):
            return self.on_goal(e)
        if self.phase == "backup" and not isinstance(e, Backup):
            return Reason.ILLEGAL_STEP, f"backup stopped at {self.backup_next} before reaching the root"
        handler = {Select: self.on_select, Expand: self.on_expand, Generate: self.on_child,
                   DeadEnd: self.on_deadend, Rollout: self.on_rollout, Backup: self.on_backup,
                   Backtrack: self.on_back}[type(e)]
        return handler(e)

    def on_select(self, e: Select) -> tuple[Reason, str] | None:
        if self.phase != "select":
            return Reason.ILLEGAL_STEP, f"select during the {self.phase} phase"
        if e.node not in self.nodes:
            return Reason.BAD_JUMP, f"select {e.node}: unknown node"
        if self.nodes[e.node].parent != self.current:
            return Reason.ILLEGAL_STEP, f"select {e.node}: not a child of the current node {self.current}"
        bad = self._stats(e.node, e.visits, e.value, "select")
        if bad is None:
            self.current = e.node
        return bad

    def _stats(self, node: str, visits: int, value: float, what: str) -> tuple[Reason, str] | None:
        n = self.nodes[node]
        if visits != n.visits:
            return Reason.WRONG_ARITHMETIC, f"{what} {node}: {visits} visits written, {n.visits} expected"
        want = mean_milli(n.total_milli, n.visits)
        if abs(value - want) > VALUE_TOLERANCE:
            return Reason.WRONG_ARITHMETIC, f"{what} {node}: value {value:.3f} written, {want:.3f} expected"
        return None

    def on_expand(self, e: Expand) -> tuple[Reason, str] | None:
        if self.phase != "select":
            return Reason.ILLEGAL_STEP, f"expand during the {self.phase} phase"
        if e.node not in self.nodes:
            return Reason.BAD_JUMP, f"expand {e.node}: unknown node"
        if e.node != self.current:
            return Reason.ILLEGAL_STEP, f"expand {e.node}: the current node is {self.current}"
        n = self.nodes[e.node]
        if n.children is not None:
            return Reason.ILLEGAL_STEP, f"expand {e.node}: already expanded"
        if e.state != self.problem.render_state(n.state):
            want = self.problem.render_state(n.state)
            return Reason.WRONG_STATE, f"expand {e.node}: state {e.state!r} is not {want!r}"
        n.children = []
        self.expanded, self.phase = e.node, "generate"
        self.n_expanded += 1
        self.visited.append(e.state)
        return None

    def on_child(self, e: Generate) -> tuple[Reason, str] | None:
        if self.phase != "generate" or e.parent != self.expanded:
            return Reason.ILLEGAL_STEP, f"child {e.node}: its parent {e.parent} is not being expanded"
        if e.node in self.nodes:
            return Reason.ILLEGAL_STEP, f"child {e.node}: id already used"
        parent = self.nodes[e.parent]
        results = self._results(parent.state, e.action)
        if not results:
            return Reason.ILLEGAL_STEP, f"child {e.node}: {e.action!r} is not a legal action"
        # Equal renderings may hide different actions (Countdown with a repeated number): any one whose
        # result is the written state will do.
        found = next(((a, st) for a, st in results if self.problem.render_state(st) == e.state), None)
        if found is None:
            want = self.problem.render_state(results[0][1])
            return Reason.WRONG_STATE, f"child {e.node}: state {e.state!r} is not {want!r}"
        action, state = found
        if state in self.seen:
            return Reason.ILLEGAL_STEP, f"child {e.node}: state {e.state!r} is already in the tree"
        self.seen.add(state)
        self.nodes[e.node] = _Node(state=state, parent=e.parent, action=action)
        parent.children.append(e.node)
        return None

    def on_deadend(self, e: DeadEnd) -> tuple[Reason, str] | None:
        if self.phase != "generate" or e.node != self.expanded:
            return Reason.ILLEGAL_STEP, f"deadend {e.node}: not the node just expanded"
        if self.nodes[e.node].children:
            return Reason.ILLEGAL_STEP, f"deadend {e.node}: it has children"
        self.phase = "select"
        return None

    def on_rollout(self, e: Rollout) -> tuple[Reason, str] | None:
        if self.phase == "generate":
            if e.node not in (self.nodes[self.expanded].children or []):
                return Reason.ILLEGAL_STEP, f"rollout {e.node}: not a child of the expanded {self.expanded}"
            self.phase, self.rollout_node, self.rollout_rewards = "rollout", e.node, []
        elif self.phase != "rollout" or e.node != self.rollout_node:
            return Reason.ILLEGAL_STEP, f"rollout {e.node} during the {self.phase} phase"
        # Every state the written actions may have led to (equal renderings can hide different actions).
        states = [self.nodes[e.node].state]
        for action in e.actions:
            live = [st for st in states if not self.problem.is_goal(st)]
            if not live:
                return Reason.ILLEGAL_STEP, f"rollout {e.node}: continues past a goal"
            states = _unique(st for s in live for _, st in self._results(s, action))
            if not states:
                return Reason.ILLEGAL_STEP, f"rollout {e.node}: {action!r} is not a legal action there"
        rewards = [rollout_reward_milli(self.problem, st) for st in states]
        want = min(rewards, key=lambda r: abs(e.reward - r / 1000.0))
        if abs(e.reward - want / 1000.0) > VALUE_TOLERANCE:
            return Reason.WRONG_ARITHMETIC, f"rollout {e.node}: reward {e.reward:.3f}, not {want / 1000:.3f}"
        self.rollout_rewards.append(want)
        return None

    def _results(self, state: Any, text: str) -> list[tuple[Any, Any]]:
        """(action, resulting state) for each legal action of `state` written as `text`."""
        return [(a, self.problem.apply(state, a)) for a in self.problem.actions(state)
                if self.problem.render_action(state, a) == text]

    def on_backup(self, e: Backup) -> tuple[Reason, str] | None:
        if self.phase == "rollout":
            self.phase, self.backup_next = "backup", self.rollout_node
            self.backup_reward = round(sum(self.rollout_rewards) / len(self.rollout_rewards))
        elif self.phase != "backup":
            return Reason.ILLEGAL_STEP, f"backup {e.node} without a rollout"
        if e.node != self.backup_next:
            return Reason.ILLEGAL_STEP, f"backup {e.node}: the backup path is at {self.backup_next}"
        n = self.nodes[e.node]
        n.visits += 1
        n.total_milli += self.backup_reward
        bad = self._stats(e.node, e.visits, e.value, "backup")
        if bad is not None:
            return bad
        self.backup_next = n.parent
        if n.parent is None:
            self.phase, self.current = "select", e.node
        return None

    def on_back(self, e: Backtrack) -> tuple[Reason, str] | None:
        if self.phase != "select":
            return Reason.ILLEGAL_STEP, f"back {e.node} during the {self.phase} phase"
        if e.node not in self.nodes:
            return Reason.BAD_JUMP, f"back {e.node}: unknown node"
        self.current = e.node
        return None

    def on_goal(self, e: Goal) -> tuple[Reason, str] | None:
        if e.node not in self.nodes:
            return Reason.BAD_JUMP, f"goal {e.node}: unknown node"
        if not self.problem.is_goal(self.nodes[e.node].state):
            return Reason.FALSE_GOAL, f"goal {e.node}: not a goal state"
        self.goal = e.node
        return None

    def solution(self) -> list[str]:
        steps, node = [], self.goal
        while node is not None and self.nodes[node].parent is not None:
            n = self.nodes[node]
            steps.append(self.problem.render_action(self.nodes[n.parent].state, n.action))
            node = n.parent
        return steps[::-1]


def _unique(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _replay(problem: Problem, text: str) -> Verdict:
    events, error = parse_lines(text)
    if not events and error is None:
        return Verdict(valid=False, solved=False, reason=Reason.EMPTY, detail="no lines")
    run = _MctsReplay(problem)

    def verdict(valid: bool, solved: bool = False, **kw: Any) -> Verdict:
        return Verdict(valid=valid, solved=solved, states_visited=run.n_expanded, n_events=len(events),
                       visited=run.visited, **kw)

    for k, event in enumerate(events):
        bad = run.step(event)
        if bad is not None:
            return verdict(False, reason=bad[0], step=k, detail=bad[1])
    if error is not None:
        return verdict(False, reason=Reason.UNPARSEABLE, step=len(events), detail=error)
    if run.goal is None:
        return verdict(True, reason=Reason.NO_GOAL, detail="no goal claimed")
    solution = run.solution()
    if not problem.verify(solution):
        return verdict(False, reason=Reason.SOLUTION_INVALID, step=len(events) - 1,
                       detail="path does not verify", solution=solution)
    return verdict(True, solved=True, solution=solution)
