"""Beam search as Stream of Search writes it (`countdown_bfs.py`, its "bfs_b"), over any Problem.

One open list (a heap on the heuristic) for the whole search. Each round pops the best `b` nodes; for
each one: write its state, generate every child, keep the `b` best (stable sort on the heuristic),
shuffle the kept ones with `rng` (SoS shuffles so that the first child explored varies), explore them
in that order (a goal ends the search, a leaf is a dead end), then push them back sorted. Between the
popped nodes the trace moves to the next one; after the round it moves to the heap's top. When the
heap runs dry the search gives up ("No solution found.").

Reproducing SoS exactly needs its heap order on ties: SoS pushes `(h, node)` and nodes compare by h,
so a tie is never "less"; `Node.__lt__` does the same with the same `heapq`, and `rng.shuffle` is
called exactly where SoS calls `random.shuffle`, so the same `random.Random` state gives the same trace.
Budget: `cfg.node_budget` counts nodes popped and written; exceeding it gives up the same way.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

from metacot_core.search._common import GIVE_UP, LEAF, Node, by_h, child_functions, is_acyclic
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Backtrack, DeadEnd, Expand, Generate, Goal
from metacot_core.search.result import SearchResult


def beam(problem: Any, cfg: SearchConfig, rng: random.Random | None = None) -> SearchResult:
    """SoS's beam search of width `cfg.beam_width`; `rng` drives the shuffles (None: Random(0))."""
    rng = rng if rng is not None else random.Random(0)
    shuffle = rng.shuffle
    width = cfg.beam_width
    heuristic = cfg.heuristic
    score, make = child_functions(problem)
    budget = cfg.node_budget
    track = not is_acyclic(problem)
    events: list[Any] = []
    emit = events.append
    result = SearchResult(algorithm=cfg.label, events=events)
    pop, push = heapq.heappop, heapq.heappush

    root_state = problem.initial_state()
    root = Node("0", root_state, None, None, None)
    if problem.is_goal(root_state):
        emit(Expand("0", root_state))
        emit(Goal("0", root_state))
        result.solution, result.solution_text, result.n_expanded = [], [], 1
        return result
    heap: list[tuple[float, Node]] = [(problem.heuristic(root_state, heuristic), root)]
    n_expanded = n_generated = 0
    while heap:
        current = [pop(heap) for _ in range(min(width, len(heap)))]
        last = len(current) - 1
        for idx, (_, node) in enumerate(current):
            if n_expanded >= budget:
                result.meta["budget_exhausted"] = True
                heap.clear()
                break
            node_id = node.id
            emit(Expand(node_id, node.state))
            n_expanded += 1
            state = node.state
            kids = score(state, heuristic)
            if track:
                kids = [c for c in kids if not node.on_path(make(state, c)[1])]
            kids.sort(key=by_h)
            kept = kids[:width]
            shuffle(kept)
            non_leaf = 0
            pushed = []
            for item in kept:
                text, child, action, goal, leaf = make(state, item)
                child_node = Node(f"{node_id},{non_leaf}", child, node, action, text)
                n_generated += 1
                emit(Generate(child_node.id, node_id, text, child))
                if goal:
                    emit(Goal(child_node.id, child))
                    result.solution, result.solution_text = child_node.path()
                    result.n_expanded, result.n_generated = n_expanded, n_generated
                    return result
                if leaf:
                    emit(DeadEnd(child_node.id, child, LEAF))
                else:
                    non_leaf += 1
                pushed.append((item[0], child_node))
            pushed.sort(key=by_h)
            for item in pushed:
                push(heap, item)
            if idx < last:
                emit(Backtrack(current[idx + 1][1].id))
        if heap:
            emit(Backtrack(heap[0][1].id))
    emit(DeadEnd("", None, GIVE_UP))
    result.n_expanded, result.n_generated = n_expanded, n_generated
    return result
