"""The symbolic strategies the model is compared with, and the states a trace visits.

Each strategy of the teacher mix (Stream of Search's 12 by default) searches every problem at the same
node budget; the comparison needs, per problem and strategy, whether it solved the problem, how many
nodes it expanded, and the set of states it visited (for the SoS state alignment).

States come from events on both sides (the model's parsed trace, the strategy's SearchResult) through
one key function, rather than from `Verdict.visited`: the strategies have no rendered list, Countdown
nodes must compare as number multisets (SoS's definition, the problem's `state_key`; rendered lists
keep the order), and replay
stops at the first error while SoS's alignment keeps the valid nodes written after it.

The same walk also keeps the *order* of expansion (`TreeCheck.expanded`, `StrategyRun.expanded`):
the algorithm fingerprint (fingerprint.py) compares orders, which the state set cannot see.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from metacot_core.problems.base import Problem
from metacot_core.search.config import SearchConfig, StrategyMix
from metacot_core.search.events import Close, Create, DeadEnd, Event, Expand, Generate, Goal


@dataclass(slots=True)
class StrategyRun:
    """One strategy on one problem."""

    label: str
    solved: bool
    n_expanded: int
    states: frozenset = field(default_factory=frozenset)
    error: str = ""
    expanded: tuple = ()  # state keys in the order they were first expanded
    weight: float = 1.0  # the strategy's weight in the mix (for the mix's mean)
    algorithm: str = ""


@dataclass(slots=True)
class TreeCheck:
    """States of a trace that follow the rules, and the written states that do not (hallucinated)."""

    states: set = field(default_factory=set)
    illegal: int = 0
    checked: int = 0
    expanded: list = field(default_factory=list)  # keys of legal expanded / closed states, first time each


def state_key(problem: Problem, state: Any) -> Any:
    """A hashable identity of a state, equal for states the domain considers the same node.

    The problem's `state_key` hook decides (Countdown follows Stream of Search: the same numbers in
    any order are the same node); without one, the state itself.
    """
    if isinstance(state, list):
        state = tuple(state)
    canon = getattr(problem, "state_key", None)
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

    A generated (or A*-created) state is legal when it is a successor, under the rules, of its
    parent's state (the parent's last expanded state: SoS's beam may give several leaves one id).
    An expanded, closed, dead-end or goal state must be one generated under that node id (or the
    start); its first legal expansion (Expand, or A*'s Close) is appended to `expanded`. Unlike
    replay, this does not stop at the first error: it gives the hallucinated states per trace and the
    state set of the SoS alignment (which likewise drops erroneous nodes and keeps the rest). Events
    without a state (MCTS statistics, a give-up line) are skipped.
    """
    out = TreeCheck()
    known: dict[str, dict[Any, Any]] = {}  # node id -> {key: state} of the legal states generated there
    current: dict[str, tuple[Any, Any]] = {}  # node id -> (key, state) it was last expanded / closed in
    successors: dict[Any, set] = {}
    expanded: set = set()
    start = problem.initial_state()
    root = state_key(problem, start)
    out.states.add(root)

    def children_of(key: Any, state: Any) -> set:
        if key not in successors:
            successors[key] = _successor_keys(problem, state)
        return successors[key]

    for ev in events:
        state = getattr(ev, "state", None)
        if state is None:
            continue
        key = state_key(problem, state)
        if isinstance(ev, Generate | Create):
            out.checked += 1
            if ev.parent is None:
                legal = key == root  # A* creates the start without a parent
            else:
                if ev.parent in current:
                    parents = [current[ev.parent]]
                else:
                    parents = list(known.get(ev.parent, {}).items())
                legal = any(key in children_of(pk, ps) for pk, ps in parents)
            if legal:
                known.setdefault(ev.node, {})[key] = state
                out.states.add(key)
            else:
                out.illegal += 1
        elif isinstance(ev, Expand | Close | DeadEnd | Goal):
            if key in known.get(ev.node, {}):
                current[ev.node] = (key, known[ev.node][key])
            elif key == root and ev.node not in known:
                current[ev.node] = (root, start)
            else:
                out.checked += 1
                out.illegal += 1  # a state never generated under this id: written, not reached
                current.pop(ev.node, None)
                continue
            if isinstance(ev, Expand | Close) and key not in expanded:
                expanded.add(key)
                out.expanded.append(key)
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
        return StrategyRun(cfg.label, False, 0, frozenset(), f"{type(err).__name__}: {err}",
                           weight=cfg.weight, algorithm=cfg.algorithm)
    check = check_tree(problem, result.events)
    return StrategyRun(cfg.label, bool(result.solved), int(result.n_expanded), frozenset(check.states),
                       expanded=tuple(check.expanded), weight=cfg.weight, algorithm=cfg.algorithm)
