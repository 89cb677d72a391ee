"""One Sokoban level as a `Problem`: states, moves and pushes, the goal, heuristics, and the verifier.

State: `(player, boxes)`, boxes sorted by (y, x) so equal positions are equal states. Actions: the four
moves in Searchformer's order (up = y - 1, down, left, right); a move into a box pushes it when the
cell behind is floor without a box. Goal: every box on a dock. Cost 1 per move (pushes included).

Dead-corner rule (Searchformer): a push that leaves a box off a dock against walls on both axes can
never be undone, so no solution contains it. Searchformer gives such a child an infinite heuristic
and skips it; here `actions` leaves those pushes out, which gives every generic search (A*, BFS, DFS,
MCTS) the same graph and keeps every heuristic value finite. `move` and `verify` use the plain rules.

Heuristics ("default" is Searchformer's `Sokoban.heuristic`, confirmed from its code; it adds nothing
for the player):
- "default" / "searchformer": for each box off a dock, the Manhattan distance to the nearest dock that
  holds no box, summed. Admissible (follow each unplaced box's assigned dock through the boxes sitting
  on docks to a free dock: the triangle inequality bounds that chain's pushes from below), though not
  consistent: A* may reopen a closed node, which search/astar.py and the replay both handle.
- "manhattan": each box's distance to the nearest dock, any dock, summed (consistent).
- "zero": Dijkstra.
Tie-break for deterministic A* (`astar_tie_key`): among equal f, lower default h first (the deeper
node), then the player cell, then the boxes, all in (y, x) order, so traces are reproducible.

A written solution step is the cell the player reaches, `"x,y"` (as for mazes; Searchformer's plan is
the player's cells too); the start cell is not part of the solution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, ClassVar

from metacot_core.domains.sokoban.level import (
    MOVES,
    Cell,
    Level,
    State,
    cell_order,
    dead_corner,
    dead_squares,
    parse_state_tokens,
    render,
    sorted_cells,
    state_text,
)

HEURISTICS = ("default", "searchformer", "manhattan", "zero")
_DELTA = {name: (dx, dy) for name, dx, dy in MOVES}
_DIRECTION = {(dx, dy): name for name, dx, dy in MOVES}


class SokobanProblem:
    """One level. See the module docstring for states, actions, pruning and heuristics."""

    domain: ClassVar[str] = "sokoban"

    def __init__(self, level: Level, optimal_length: int | None = None):
        self.level = level
        self.optimal_length = optimal_length  # moves of an optimal plan, when known (set by the generator)
        self._docks = frozenset(level.docks)

    def __repr__(self) -> str:
        lv = self.level
        return f"SokobanProblem({lv.width}x{lv.height}, {len(lv.boxes)} boxes, player={lv.player})"

    # --- rules ------------------------------------------------------------------------------------
    def move(self, state: State, direction: str) -> State | None:
        """The state after moving `direction` by the plain rules, or None when the move is blocked."""
        (px, py), boxes = state
        dx, dy = _DELTA[direction]
        target = (px + dx, py + dy)
        if not self.level.is_floor(target):
            return None
        if target not in boxes:
            return (target, boxes)
        behind = (target[0] + dx, target[1] + dy)
        if not self.level.is_floor(behind) or behind in boxes:
            return None
        return (target, sorted_cells(behind if b == target else b for b in boxes))

    def pushes_into_dead_corner(self, before: State, after: State) -> bool:
        """True when the move from `before` to `after` pushed a box onto a dead corner."""
        moved = set(after[1]) - set(before[1])
        return any(dead_corner(self.level, cell) for cell in moved)

    def step_toward(self, state: State, cell: Cell) -> State | None:
        """The plain-rules state after the player steps to the neighbouring `cell` (None if impossible)."""
        direction = _DIRECTION.get((cell[0] - state[0][0], cell[1] - state[0][1]))
        return None if direction is None else self.move(state, direction)

    # --- Problem protocol -------------------------------------------------------------------------
    def initial_state(self) -> State:
        return self.level.start()

    def actions(self, state: State) -> list[str]:
        out = []
        for name, _, _ in MOVES:
            nxt = self.move(state, name)
            if nxt is not None and not self.pushes_into_dead_corner(state, nxt):
                out.append(name)
        return out

    def apply(self, state: State, action: str) -> State:
        nxt = self.move(state, action)
        if nxt is None:
            raise ValueError(f"action: {action!r} is blocked from {self.render_state(state)}")
        return nxt

    def is_goal(self, state: State) -> bool:
        return frozenset(state[1]) == self._docks

    def heuristic(self, state: State, name: str = "default") -> float:
        """See the module docstring; ValueError naming the heuristic when it is unknown."""
        boxes = state[1]
        if name in ("default", "searchformer"):
            free_docks = [d for d in self.level.docks if d not in boxes]
            return float(sum(_nearest(b, free_docks) for b in boxes if b not in self._docks))
        if name == "manhattan":
            return float(sum(_nearest(b, self.level.docks) for b in boxes))
        if name == "zero":
            return 0.0
        raise ValueError(f"heuristic: unknown sokoban heuristic {name!r}; known: {', '.join(HEURISTICS)}")

    def cost(self, state: State, action: str) -> float:
        return 1.0

    def render_state(self, state: State) -> str:
        """`px,py/bx,by/...`: one word (no spaces), so line formats can use it as a field."""
        return state_text(state)

    def render_action(self, state: State, action: str) -> str:
        x, y = self.apply(state, action)[0]
        return f"{x},{y}"

    def verify(self, solution: Sequence[str]) -> bool:
        """True when the written player cells, each one move from the last, reach the goal by the rules."""
        try:
            state = self.initial_state()
            for step in solution:
                cell = parse_cell(step)
                nxt = None if cell is None else self.step_toward(state, cell)
                if nxt is None:
                    return False
                state = nxt
            return self.is_goal(state)
        except Exception:  # noqa: BLE001 - the verifier judges any input, it never raises
            return False

    def to_instance(self) -> dict[str, Any]:
        return self.level.to_instance()

    # --- hooks the generic formats and the evaluator ask (problems/base.py) ----------------------
    optimal_plans: ClassVar[bool] = True  # evaluation adds the plan metrics (Domain.plan_metrics)
    reference_format: ClassVar[str] = "sokoban-astar"  # ILR's A* reference trace, in Sokoban's words

    def astar_tie_key(self, state: State) -> tuple[float, tuple[int, int], tuple[tuple[int, int], ...]]:
        """Deterministic A* order among equal f: lower h, then player cell, then boxes, in (y, x) order."""
        return (self.heuristic(state), cell_order(state[0]), tuple(cell_order(b) for b in state[1]))

    def instance_prompt(self) -> str:
        """The prompt of the generic formats (mcts): Searchformer's, after the word `problem`, which
        tells the generic parsers that the line is a prompt (see traces/mcts.py)."""
        return "problem " + self.searchformer_prompt()

    def searchformer_prompt(self) -> str:
        """Searchformer's prompt: `worker x y box x y ... dock x y ... wall x y ...`, one line, for
        Sokoban's own A* format and its plan-only control."""
        lv = self.level
        words = ["worker", str(lv.player[0]), str(lv.player[1])]
        for name, cells in (("box", lv.boxes), ("dock", lv.docks), ("wall", sorted_cells(lv.walls))):
            for x, y in cells:
                words += [name, str(x), str(y)]
        return " ".join(words) + "\n"

    def state_tokens(self, state: State) -> list[str]:
        """A state as trace words: `worker x y box x y box x y` (every box, docked or not)."""
        (px, py), boxes = state
        words = ["worker", str(px), str(py)]
        for x, y in boxes:
            words += ["box", str(x), str(y)]
        return words

    def parse_state(self, tokens: Sequence[str]) -> State:
        """The state `state_tokens` wrote (ValueError when the words are not one)."""
        return parse_state_tokens(tokens)

    def row_fields(self) -> dict[str, Any]:
        """Extra dataset columns for this level: its optimal plan length in moves (None if not known)."""
        return {"optimal_length": self.optimal_length}

    def eval_reference(self, count_tokens: Callable[[str], int] | None = None) -> dict[str, Any]:
        """Per-level evaluation reference (optimal length, A* steps/closes/tokens): see metrics.py."""
        from metacot_core.domains.sokoban.metrics import reference

        return reference(self, count_tokens)

    def completion_fields(self, text: str) -> dict[str, int]:
        """Per-output fields (deadlocks written, search steps): see metrics.py."""
        from metacot_core.domains.sokoban.metrics import completion_fields

        return completion_fields(self, text)

    def render_text(self, state: State | None = None) -> str:
        """The level (or `state` on it) drawn in Sokoban characters, for people."""
        return render(self.level, state)

    @cached_property
    def dead_cells(self) -> frozenset[Cell]:
        return dead_squares(self.level)

    def is_deadlocked(self, state: State) -> bool:
        """A box off a dock on a cell from which no dock can be reached by pushes (a sure deadlock)."""
        return any(b in self.dead_cells for b in state[1] if b not in self._docks)


def _nearest(cell: Cell, targets: Sequence[Cell]) -> int:
    return min((abs(cell[0] - t[0]) + abs(cell[1] - t[1]) for t in targets), default=0)


def parse_cell(text: Any) -> Cell | None:
    """`"3,4"` -> (3, 4); None when `text` is not two comma-separated integers of a few digits."""
    if not isinstance(text, str) or len(text) > 20:
        return None
    parts = text.strip().split(",")
    if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
        return None
    return (int(parts[0]), int(parts[1]))
