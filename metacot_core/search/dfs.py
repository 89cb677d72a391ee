"""Depth-first search as Stream of Search writes it (`countdown_dfs.py`), over any Problem.

At each node: generate every child, drop those whose heuristic exceeds the threshold, order the rest
by heuristic (stable: ties keep the canonical action order), then walk them in order. A goal child
ends the search; a leaf child is a dead end; any other child is entered ("Moving to Node #child") and
searched to the end before the next sibling. After each child but the last, the trace returns to
the parent ("Moving to Node #parent" and its "Current State" again). A DFS that finds nothing simply
ends (SoS writes no closing line), unless the node budget stops it, which ends with the give-up event.

Threshold: `cfg.prune_threshold`, or when it is None the problem's own `prune_threshold` attribute if
it has one (Countdown: the target, as SoS does); `float("inf")` turns pruning off.
Budget: `cfg.node_budget` counts nodes expanded (entered for the first time); SoS has no budget and on
Countdown-4 a DFS expands at most 313 nodes, so the default (10,000) never binds there.
Problems that are not `acyclic` never re-enter a state already on the current path.
"""

from __future__ import annotations

import random
from typing import Any

from metacot_core.search._common import GIVE_UP, LEAF, by_h, children, is_acyclic
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Backtrack, DeadEnd, Expand, Generate, Goal
from metacot_core.search.result import SearchResult


def _kept(problem: Any, state: Any, heuristic: str, threshold: float | None,
          path: set[Any] | None) -> list[Any]:
    kids = children(problem, state, heuristic)
    if threshold is not None:
        kids = [c for c in kids if c[0] <= threshold]
    if path is not None:
        kids = [c for c in kids if c[2] not in path]
    kids.sort(key=by_h)
    return kids


def dfs(problem: Any, cfg: SearchConfig, rng: random.Random | None = None) -> SearchResult:
    """SoS's depth-first search; deterministic (`rng` is accepted for the common signature, unused)."""
    heuristic = cfg.heuristic
    threshold = cfg.prune_threshold
    if threshold is None:
        threshold = getattr(problem, "prune_threshold", None)
    budget = cfg.node_budget
    track = not is_acyclic(problem)
    events: list[Any] = []
    emit = events.append
    result = SearchResult(algorithm=cfg.label, events=events)

    root = problem.initial_state()
    emit(Expand("0", root))
    if problem.is_goal(root):
        emit(Goal("0", root))
        result.solution, result.solution_text, result.n_expanded = [], [], 1
        return result
    path = {root} if track else None
    # frame: [node id, state, kept children, index of the current child, non-leaf children so far]
    stack: list[list[Any]] = [["0", root, _kept(problem, root, heuristic, threshold, path), 0, 0]]
    n_expanded, n_generated = 1, 0
    while stack:
        frame = stack[-1]
        node_id, state, kids, k, non_leaf = frame
        if k >= len(kids):
            stack.pop()
            if track:
                path.discard(state)
            if stack:
                _next_sibling(stack[-1], emit)
            continue
        _, text, child, _, goal, leaf = kids[k]
        n_generated += 1
        if leaf:
            child_id = f"{node_id},{non_leaf}"
            emit(Generate(child_id, node_id, text, child))
            if goal:
                emit(Goal(child_id, child))
                result.solution = [f[2][f[3]][3] for f in stack]
                result.solution_text = [f[2][f[3]][1] for f in stack]
                break
            emit(DeadEnd(child_id, child, LEAF))
            _next_sibling(frame, emit)
            continue
        child_id = f"{node_id},{k}"
        emit(Generate(child_id, node_id, text, child))
        frame[4] = non_leaf + 1
        if n_expanded >= budget:
            emit(DeadEnd("", None, GIVE_UP))
            result.meta["budget_exhausted"] = True
            break
        emit(Backtrack(child_id))
        emit(Expand(child_id, child))
        n_expanded += 1
        if track:
            path.add(child)
        stack.append([child_id, child, _kept(problem, child, heuristic, threshold, path), 0, 0])
    result.n_expanded = n_expanded
    result.n_generated = n_generated
    return result


def _next_sibling(frame: list[Any], emit: Any) -> None:
    """SoS returns to the parent between siblings: 'Moving to Node #parent' and its state again."""
    if frame[3] < len(frame[2]) - 1:
        emit(Backtrack(frame[0]))
        emit(Expand(frame[0], frame[1]))
    frame[3] += 1
