"""A* over any Problem, emitting Searchformer's create/close trace (Lehnert et al. 2024).

The loop is Searchformer's: create the start; then repeatedly close the open node of least
f = g + h, stop if it is the goal, else create each child that is new or reached with a lower g than
before (a closed node reached more cheaply is reopened, which only happens with an inconsistent
heuristic). The goal test is at close time, so with an admissible heuristic the plan is optimal.

Tie-breaking among equal f (`cfg.tie_breaking`):
- "deterministic": the problem's optional `astar_tie_key(state)` (lower first; mazes order cells by
  y then x, which reproduces Searchformer's deterministic traces), else creation order.
- "random": Searchformer's nondeterministic A*: children are created in a shuffled order and ties
  are broken at random, both drawn from `rng`, so one seed gives one trace.

Node ids are `problem.render_state(state)` (one node per state). `cfg.node_budget` caps the closes.
An unsolvable problem does not raise (unlike Searchformer): the result has `solution None` and
`meta["stopped"] == "exhausted"` once the open list is empty; "budget" when the budget ran out.
"""

from __future__ import annotations

import heapq
import itertools
import random
from typing import Any

from metacot_core.problems.base import Problem
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Close, Create, Goal
from metacot_core.search.result import SearchResult


def astar(problem: Problem, cfg: SearchConfig, rng: random.Random | None = None) -> SearchResult:
    """A* search; see the module docstring for tie-breaking, budget and the unsolvable case."""
    rng = rng if rng is not None else random.Random(0)
    shuffle = cfg.tie_breaking == "random"
    tie_key = getattr(problem, "astar_tie_key", None)
    counter = itertools.count()
    result = SearchResult(algorithm="astar", meta={"tie_breaking": cfg.tie_breaking})
    render = problem.render_state

    def priority(f: float, state: Any) -> tuple[float, Any, int]:
        order = next(counter)
        if shuffle:
            return (f, rng.random(), order)
        return (f, tie_key(state) if tie_key is not None else order, order)

    start = problem.initial_state()
    h0 = float(problem.heuristic(start, cfg.heuristic))
    open_g: dict[Any, float] = {start: 0.0}
    closed_g: dict[Any, float] = {}
    parents: dict[Any, tuple[Any, Any] | None] = {start: None}
    heap: list[tuple[tuple[float, Any, int], Any, float, float]] = [(priority(h0, start), start, 0.0, h0)]
    result.events.append(Create(node=render(start), state=start, g=0.0, h=h0))
    while heap:
        _, state, g, h = heapq.heappop(heap)
        if open_g.get(state) != g:
            continue  # stale entry: this state was re-created with a lower g
        del open_g[state]
        closed_g[state] = g
        node = render(state)
        result.events.append(Close(node=node, state=state, g=g, h=h))
        result.n_expanded += 1
        if problem.is_goal(state):
            result.events.append(Goal(node=node, state=state))
            result.solution, result.solution_text = _plan(problem, parents, state)
            result.meta["stopped"] = "goal"
            return result
        if result.n_expanded >= cfg.node_budget:
            result.meta["stopped"] = "budget"
            return result
        actions = list(problem.actions(state))
        if shuffle:
            rng.shuffle(actions)
        for action in actions:
            child = problem.apply(state, action)
            child_g = g + float(problem.cost(state, action))
            known = open_g.get(child, closed_g.get(child))
            if known is not None and known <= child_g:
                continue
            closed_g.pop(child, None)
            child_h = float(problem.heuristic(child, cfg.heuristic))
            open_g[child] = child_g
            parents[child] = (state, action)
            heapq.heappush(heap, (priority(child_g + child_h, child), child, child_g, child_h))
            result.events.append(Create(node=render(child), state=child, g=child_g, h=child_h, parent=node))
            result.n_generated += 1
    result.meta["stopped"] = "exhausted"
    return result


def _plan(problem: Problem, parents: dict[Any, tuple[Any, Any] | None], goal: Any) -> tuple[list, list[str]]:
    steps: list[tuple[Any, Any]] = []
    link = parents[goal]
    while link is not None:
        steps.append(link)
        link = parents[link[0]]
    steps.reverse()
    return [a for _, a in steps], [problem.render_action(s, a) for s, a in steps]
