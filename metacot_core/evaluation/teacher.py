"""The symbolic strategies the model is compared with, run on the evaluated problems.

Each strategy of the teacher mix (Stream of Search's 12 by default) searches every problem at the same
node budget; the comparison needs, per problem and strategy, whether it solved the problem, how many
nodes it expanded, and the set of states it visited (for the SoS state alignment).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from metacot_core.problems.base import Problem
from metacot_core.search.config import SearchConfig, StrategyMix
from metacot_core.search.events import Close, Create, DeadEnd, Event, Expand, Generate, Goal


def _countdown_numbers(state: Any) -> Any:
    """A Countdown state `(numbers, operations)` (or bare numbers) -> its numbers as a sorted tuple."""
    if isinstance(state, tuple | list) and state and isinstance(state[0], tuple | list):
        state = state[0]
    return tuple(sorted(state))


# Per-domain identity of a node for alignment and legality checks. Countdown follows Stream of
# Search: two nodes are the same node when they hold the same numbers, whatever their order and
# whatever operations led there (the domain's own states include the operations written so far).
STATE_KEYS: dict[str, Any] = {"countdown": _countdown_numbers}


@dataclass(slots=True)
class StrategyRun:
    """One strategy on one problem."""

    label: str
    solved: bool
    n_expanded: int
    states: frozenset = field(default_factory=frozenset)
    error: str = ""


@dataclass(slots=True)
class TreeCheck:
    """States of a trace that follow the rules, and the written states that do not (hallucinated)."""

    states: set = field(default_factory=set)
    illegal: int = 0
    checked: int = 0


def state_key(problem: Problem, state: Any) -> Any:
    """A hashable identity of a state, equal for states the domain considers the same node."""
    if isinstance(state, list):
        state = tuple(state)
    canon = STATE_KEYS.get(getattr(problem, "domain", ""))
    if canon is not None:
        try:
            return canon(state)
        except TypeError:
            pass
    try:
        hash(state)
    except TypeError:
        return repr(state)
    return state


def _successor_keys(problem: Problem, state: Any) -> set:
    try:
        return {state_key(problem, problem.apply(state, a)) for a in problem.actions(state)}
    except Exception:  # noqa: BLE001 - a parsed state the rules cannot handle has no legal children
        return set()


def check_tree(problem: Problem, events: Iterable[Event]) -> TreeCheck:
    """Walk a trace's events as a tree; keep the states that follow the rules, count those that do not.

    A generated (or A*-created) node is legal when its parent was seen and its state is one of the
    parent's successors under the rules. Unlike replay, this does not stop at the first error: it is
    the count of hallucinated states per trace and the state set of the SoS alignment (which likewise
    drops erroneous nodes and keeps the rest). Event kinds without states (MCTS) are skipped.
    """
    out = TreeCheck()
    nodes: dict[str, tuple[Any, Any] | None] = {}  # node id -> (key, state) when legal, else None
    successors: dict[Any, set] = {}
    start = problem.initial_state()
    root = state_key(problem, start)
    out.states.add(root)
    for ev in events:
        if isinstance(ev, Generate | Create):
            key = state_key(problem, ev.state)
            parent = nodes.get(ev.parent) if ev.parent is not None else None
            out.checked += 1
            if ev.parent is None:
                legal = key == root  # A* creates the start node without a parent
            elif parent is None:
                legal = False
            else:
                if parent[0] not in successors:
                    successors[parent[0]] = _successor_keys(problem, parent[1])
                legal = key in successors[parent[0]]
            nodes[ev.node] = (key, ev.state) if legal else None
            if legal:
                out.states.add(key)
            else:
                out.illegal += 1
        elif isinstance(ev, Expand | Close | DeadEnd | Goal):
            key = state_key(problem, ev.state)
            if ev.node not in nodes:
                # the root, or a node the trace never generated: legal only if it is the start state
                nodes[ev.node] = (key, start) if key == root else None
                if key != root:
                    out.checked += 1
                    out.illegal += 1
            elif nodes[ev.node] is not None and key != nodes[ev.node][0]:
                out.checked += 1
                out.illegal += 1  # the state written for a known node is not that node's state
    return out


def run_strategies(problem: Problem, mix: StrategyMix, seed: int = 0,
                   search: Any = None) -> list[StrategyRun]:
    """Every strategy of `mix` on `problem` (each seeded alike); a strategy that raises is recorded."""
    if search is None:
        from metacot_core.registry import get_search

        search = get_search
    runs = []
    for cfg in mix.strategies:
        runs.append(_run_one(problem, cfg, seed, search))
    return runs


def _run_one(problem: Problem, cfg: SearchConfig, seed: int, search: Any) -> StrategyRun:
    try:
        result = search(cfg.algorithm)(problem, cfg, random.Random(seed))
    except Exception as err:  # noqa: BLE001 - one broken strategy must not stop the evaluation
        return StrategyRun(cfg.label, False, 0, frozenset(), f"{type(err).__name__}: {err}")
    states = frozenset(check_tree(problem, result.events).states)
    return StrategyRun(cfg.label, bool(result.solved), int(result.n_expanded), states)
