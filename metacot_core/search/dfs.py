"""Depth-first search as Stream of Search writes it (`countdown_dfs.py`), over any Problem.

At each node: score every child, drop those whose heuristic exceeds the threshold, order the rest by
heuristic (stable: ties keep the canonical action order), then walk them in order. A goal child ends
the search; a leaf child is a dead end; any other child is entered ("Moving to Node #child") and
searched to the end before the next sibling. After each child but the last, the trace returns to the
parent ("Moving to Node #parent" and its "Current State" again). A DFS that finds nothing simply ends
(SoS writes no closing line), unless the node budget stops it, which ends with the give-up event.

Threshold: `cfg.prune_threshold`, or when it is None the problem's own `prune_threshold` attribute if
it has one (Countdown: the target, as SoS does); `float("inf")` turns pruning off.
Budget: `cfg.node_budget` counts nodes expanded (entered for the first time); SoS has no budget and on
Countdown-4 a DFS expands at most 313 nodes, so the default (10,000) never binds there.
Problems that are not `acyclic` never re-enter a state already on the current path.
"""

from __future__ import annotations

import random
from typing import Any

from metacot_core.search._common import GIVE_UP, LEAF, by_h, child_functions, is_acyclic
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Backtrack, DeadEnd, Expand, Generate, Goal
from metacot_core.search.result import SearchResult

# frame fields
_ID, _STATE, _KIDS, _K, _NON_LEAF, _REENTRY = range(6)


def dfs(problem: Any, cfg: SearchConfig, rng: random.Random | None = None) -> SearchResult:
    """SoS's depth-first search; deterministic (`rng` is accepted for the common signature, unused)."""
    score, make = child_functions(problem)
    heuristic = cfg.heuristic
    threshold = cfg.prune_threshold
    if threshold is None:
        threshold = getattr(problem, "prune_threshold", None)
    budget = cfg.node_budget
    path: set[Any] | None = None if is_acyclic(problem) else set()

    def kept(state: Any) -> list[Any]:
        items = score(state, heuristic)
        if threshold is not None:
            items = [c for c in items if c[0] <= threshold]
        if path is not None:
            items = [c for c in items if make(state, c)[1] not in path]
        items.sort(key=by_h)
        return items

    events: list[Any] = []
    emit = events.append
    result = SearchResult(algorithm=cfg.label, events=events)
    root = problem.initial_state()
    emit(Expand("0", root))
    if problem.is_goal(root):
        emit(Goal("0", root))
        result.solution, result.solution_text, result.n_expanded = [], [], 1
        return result
    if path is not None:
        path.add(root)
    # frame: [node id, state, kept children, index of the current child, non-leaf children, re-entry events]
    stack: list[list[Any]] = [["0", root, kept(root), 0, 0, None]]
    n_expanded, n_generated = 1, 0
    while stack:
        frame = stack[-1]
        kids = frame[_KIDS]
        k = frame[_K]
        if k >= len(kids):
            stack.pop()
            if path is not None:
                path.discard(frame[_STATE])
            if stack:
                _next_sibling(stack[-1], emit)
            continue
        node_id = frame[_ID]
        text, child, _, goal, leaf = make(frame[_STATE], kids[k])
        n_generated += 1
        if leaf:
            child_id = f"{node_id},{frame[_NON_LEAF]}"
            emit(Generate(child_id, node_id, text, child))
            if goal:
                emit(Goal(child_id, child))
                made = [make(f[_STATE], f[_KIDS][f[_K]]) for f in stack]
                result.solution = [m[2] for m in made]
                result.solution_text = [m[0] for m in made]
                break
            emit(DeadEnd(child_id, child, LEAF))
            _next_sibling(frame, emit)
            continue
        child_id = f"{node_id},{k}"
        emit(Generate(child_id, node_id, text, child))
        frame[_NON_LEAF] += 1
        if n_expanded >= budget:
            emit(DeadEnd("", None, GIVE_UP))
            result.meta["budget_exhausted"] = True
            break
        emit(Backtrack(child_id))
        emit(Expand(child_id, child))
        n_expanded += 1
        if path is not None:
            path.add(child)
        stack.append([child_id, child, kept(child), 0, 0, None])
    result.n_expanded = n_expanded
    result.n_generated = n_generated
    return result


def _next_sibling(frame: list[Any], emit: Any) -> None:
    """SoS returns to the parent between siblings: 'Moving to Node #parent' and its state again.

    The two events are the same objects each time (events are immutable), made once per node.
    """
    if frame[_K] < len(frame[_KIDS]) - 1:
        reentry = frame[_REENTRY]
        if reentry is None:
            reentry = frame[_REENTRY] = (Backtrack(frame[_ID]), Expand(frame[_ID], frame[_STATE]))
        emit(reentry[0])
        emit(reentry[1])
    frame[_K] += 1
