"""Breadth-first search over any Problem: the uninformed baseline every other strategy is compared with.

Graph search: a state is generated once (later duplicates are skipped), so it terminates on mazes and
on any finite state space. Node ids follow Stream of Search's path naming ("0", "0,1", "0,1,0": the root,
then the index of each child among its generated siblings), so SoS-style linearizers can use them.

Events: Expand when a node leaves the queue; Generate per new child; DeadEnd for a generated child
with no legal action (a leaf, as SoS writes "No Solution" at generation) and for an expanded node
whose children were all seen before; Goal as soon as a goal state is generated (goal test at
generation, so BFS returns a shortest path in steps). `cfg.node_budget` caps the Expand events;
`meta["stopped"]` says why the search ended: "goal", "budget" or "exhausted" (no reachable goal).
`rng` is unused: BFS is deterministic given the problem's canonical action order.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from metacot_core.problems.base import Problem
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import DeadEnd, Expand, Generate, Goal
from metacot_core.search.result import SearchResult

Links = dict[str, tuple[str | None, Any, Any]]  # node id -> (parent id, action, state)


def bfs(problem: Problem, cfg: SearchConfig, rng: random.Random | None = None) -> SearchResult:
    """Breadth-first graph search from the initial state; see the module docstring for the events."""
    result = SearchResult(algorithm="bfs")
    root = problem.initial_state()
    links: Links = {"0": (None, None, root)}
    if problem.is_goal(root):
        return _finish(problem, result, links, "0", root)
    seen = {root}
    queue: deque[tuple[str, Any]] = deque([("0", root)])
    while queue:
        if result.n_expanded >= cfg.node_budget:
            result.meta["stopped"] = "budget"
            return result
        node, state = queue.popleft()
        result.events.append(Expand(node=node, state=state))
        result.n_expanded += 1
        n_children = 0
        for action in problem.actions(state):
            child = problem.apply(state, action)
            if child in seen:
                continue
            seen.add(child)
            child_id = f"{node},{n_children}"
            n_children += 1
            links[child_id] = (node, action, child)
            result.events.append(Generate(node=child_id, parent=node, action=action, state=child))
            result.n_generated += 1
            if problem.is_goal(child):
                return _finish(problem, result, links, child_id, child)
            if not problem.actions(child):
                result.events.append(DeadEnd(node=child_id, state=child, reason="no legal action"))
                continue
            queue.append((child_id, child))
        if n_children == 0:
            result.events.append(DeadEnd(node=node, state=state, reason="every child seen before"))
    result.meta["stopped"] = "exhausted"
    return result


def _finish(problem: Problem, result: SearchResult, links: Links, node: str, state: Any) -> SearchResult:
    result.events.append(Goal(node=node, state=state))
    result.solution, result.solution_text = path_to(problem, links, node)
    result.meta["stopped"] = "goal"
    return result


def path_to(problem: Problem, links: Links, node: str) -> tuple[list[Any], list[str]]:
    """Actions and their renderings from the root to `node`; `links` maps id -> (parent, action, state)."""
    steps: list[tuple[Any, Any]] = []
    parent, action, _ = links[node]
    while parent is not None:
        steps.append((links[parent][2], action))
        parent, action, _ = links[parent]
    steps.reverse()
    return [a for _, a in steps], [problem.render_action(s, a) for s, a in steps]
