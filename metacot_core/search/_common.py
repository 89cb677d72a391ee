"""What DFS and beam search share: child generation over the Problem protocol, and the give-up event.

Both searches are Stream of Search's (Gandhi et al. 2024), written generically: they only use the
`Problem` protocol, so a maze or a plugin domain gets them too. Children come in two steps, because a
search scores every child but writes only a few (beam keeps b of ~20; DFS prunes on a threshold):
`score(state, heuristic)` gives one item per child in canonical order with the heuristic first, and
`make(state, item)` gives `(action text, child state, action, is_goal, is_leaf)` for the ones used.
A problem may supply both as `scored_children(state, heuristic)` and `make_child(state, item)`
(Countdown does: it is the hot loop of trace generation); otherwise they are built from
actions/apply/heuristic/is_goal/render_action.

Event conventions (what the `sos` format writes and parses back):
- `Generate.action` holds the action as written in traces (`render_action`), so a parsed trace
  and a searched one compare equal.
- A leaf that is not a goal gets `DeadEnd(node, state, LEAF)`; a search that gives up (nothing left
  to expand, or the node budget spent) ends with `DeadEnd("", None, GIVE_UP)`.
- Node ids are SoS paths "0,1,0". A leaf's id is its parent's id plus the number of non-leaf
  siblings generated before it (SoS's beam numbering; SoS's DFS never writes leaf ids).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

LEAF = "unequal"
GIVE_UP = "no_solution"

# make(state, item) -> (action text, child state, action, is_goal, is_leaf)
Made = tuple[str, Any, Any, bool, bool]
by_h = itemgetter(0)


def child_functions(problem: Any) -> tuple[Callable[[Any, str], list[Any]], Callable[[Any, Any], Made]]:
    """(score(state, heuristic), make(state, item)) for `problem`: its fast path, else the protocol."""
    fast_score = getattr(problem, "scored_children", None)
    fast_make = getattr(problem, "make_child", None)
    if fast_score is not None and fast_make is not None:
        return fast_score, fast_make

    def score(state: Any, heuristic: str) -> list[Any]:
        out = []
        for action in problem.actions(state):
            child = problem.apply(state, action)
            goal = problem.is_goal(child)
            leaf = goal or not problem.actions(child)
            out.append((problem.heuristic(child, heuristic), problem.render_action(state, action), child,
                        action, goal, leaf))
        return out

    def make(state: Any, item: Any) -> Made:
        return item[1], item[2], item[3], item[4], item[5]

    return score, make


def is_acyclic(problem: Any) -> bool:
    """Problems whose states never repeat along a path (Countdown) skip the cycle check."""
    return bool(getattr(problem, "acyclic", False))


class Node:
    """A search-tree node for beam search: equal heuristics never order nodes (as in SoS's heap)."""

    __slots__ = ("id", "state", "parent", "action", "text")

    def __init__(self, node_id: str, state: Any, parent: Node | None, action: Any, text: str | None):
        self.id = node_id
        self.state = state
        self.parent = parent
        self.action = action
        self.text = text

    def __lt__(self, other: Node) -> bool:
        # SoS pushes (h, node) and compares nodes by h: on a tie that is always False.
        return False

    def path(self) -> tuple[list[Any], list[str]]:
        """Actions and their texts from the root to this node."""
        actions, texts = [], []
        node: Node | None = self
        while node is not None and node.parent is not None:
            actions.append(node.action)
            texts.append(node.text)
            node = node.parent
        return actions[::-1], texts[::-1]

    def on_path(self, state: Any) -> bool:
        node: Node | None = self
        while node is not None:
            if node.state == state:
                return True
            node = node.parent
        return False
