"""A Sokoban level: the grid, walls, docks and the starting boxes and player; its JSON form and its limits.

Coordinates are `(x, y)` with `y` the row counted from the top (Searchformer's Sokoban convention, so
"up" is y - 1 and the rendering prints row 0 first). The canonical instance lists every wall cell,
the border included:

    {"width": 7, "height": 7, "walls": [[0, 0], ...], "boxes": [[2, 3], [4, 2]],
     "docks": [[1, 5], [5, 1]], "player": [3, 3]}

Walls, boxes and docks are written sorted by (y, x). Sizes are bounded by the named limits below,
checked before any search so that a hostile or mistaken instance costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from metacot_core.ascii_text import is_ascii_digits

Cell = tuple[int, int]
Boxes = tuple[Cell, ...]
State = tuple[Cell, Boxes]  # (player, boxes sorted by (y, x))

MAX_SIDE = 16  # widest or tallest grid accepted (7 is Searchformer's)
MAX_BOXES = 4  # most boxes accepted (2 is Searchformer's; the state space grows as cells^boxes)
FIELDS = ("width", "height", "walls", "boxes", "docks", "player")

# Canonical move order, Searchformer's: up (y - 1), down (y + 1), left (x - 1), right (x + 1).
MOVES: tuple[tuple[str, int, int], ...] = (("up", 0, -1), ("down", 0, 1), ("left", -1, 0), ("right", 1, 0))


def cell_order(cell: Cell) -> tuple[int, int]:
    """Sort key of a cell: row first, then column (the order cells are written in)."""
    return (cell[1], cell[0])


def sorted_cells(cells: Iterable[Cell]) -> Boxes:
    return tuple(sorted(cells, key=cell_order))


@dataclass(frozen=True, slots=True)
class Level:
    """The fixed part of a level (grid, walls, docks) and its start (boxes, player); validated on creation."""

    width: int
    height: int
    walls: frozenset[Cell]
    docks: Boxes
    boxes: Boxes
    player: Cell

    def __post_init__(self) -> None:
        check_level(self)

    @classmethod
    def build(cls, width: int, height: int, walls: Iterable[Cell], boxes: Iterable[Cell],
              docks: Iterable[Cell], player: Cell) -> Level:
        """A level from plain cell lists (sorted and frozen here)."""
        return cls(int(width), int(height), frozenset(walls), sorted_cells(docks), sorted_cells(boxes),
                   (int(player[0]), int(player[1])))

    def inside(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.width and 0 <= cell[1] < self.height

    def is_floor(self, cell: Cell) -> bool:
        """Inside the grid and not a wall: a cell the player or a box may stand on."""
        return self.inside(cell) and cell not in self.walls

    def start(self) -> State:
        return (self.player, self.boxes)

    def to_instance(self) -> dict[str, Any]:
        def cells(items: Iterable[Cell]) -> list[list[int]]:
            return [[x, y] for x, y in sorted_cells(items)]

        return {"width": self.width, "height": self.height, "walls": cells(self.walls),
                "boxes": cells(self.boxes), "docks": cells(self.docks),
                "player": [self.player[0], self.player[1]]}


def check_level(level: Level) -> None:
    """One ValueError naming the field for any level the rules cannot play."""
    for name, size in (("width", level.width), ("height", level.height)):
        if not 3 <= size <= MAX_SIDE:
            raise ValueError(f"sokoban instance: {name} must be in 3..{MAX_SIDE}, got {size}")
    if not 1 <= len(level.boxes) <= MAX_BOXES:
        raise ValueError(f"sokoban instance: boxes must hold 1..{MAX_BOXES} cells, got {len(level.boxes)}")
    if len(level.docks) != len(level.boxes):
        raise ValueError(f"sokoban instance: docks has {len(level.docks)} cells but boxes has "
                         f"{len(level.boxes)}; they must be equal in number")
    for name, cells in (("walls", sorted_cells(level.walls)), ("boxes", level.boxes),
                        ("docks", level.docks), ("player", (level.player,))):
        for cell in cells:
            if not level.inside(cell):
                raise ValueError(f"sokoban instance: {name} cell {list(cell)} is outside the "
                                 f"{level.width}x{level.height} grid")
            if name != "walls" and cell in level.walls:
                raise ValueError(f"sokoban instance: {name} cell {list(cell)} is on a wall")
        if name in ("boxes", "docks") and len(set(cells)) != len(cells):
            raise ValueError(f"sokoban instance: {name} lists a cell twice")
    if level.player in level.boxes:
        raise ValueError(f"sokoban instance: player cell {list(level.player)} is on a box")


def level_from_instance(instance: Any) -> Level:
    """The level of a canonical instance dict; one ValueError naming the field when it is malformed."""
    if not isinstance(instance, dict):
        raise ValueError(f"sokoban instance: expected a dict, got {type(instance).__name__}")
    missing = [k for k in FIELDS if k not in instance]
    if missing:
        raise ValueError(f"sokoban instance: missing field(s) {', '.join(missing)}")
    extra = sorted(str(k) for k in set(instance) - set(FIELDS))
    if extra:
        raise ValueError(f"sokoban instance: unknown field(s) {', '.join(extra)}")
    width, height = _as_int(instance["width"], "width"), _as_int(instance["height"], "height")
    for name, size in (("width", width), ("height", height)):
        if not 3 <= size <= MAX_SIDE:  # before reading any list: bounds first, work later
            raise ValueError(f"sokoban instance: {name} must be in 3..{MAX_SIDE}, got {size}")
    walls = _as_cells(instance["walls"], "walls", width * height)
    boxes = _as_cells(instance["boxes"], "boxes", MAX_BOXES)
    docks = _as_cells(instance["docks"], "docks", MAX_BOXES)
    player = _as_cell(instance["player"], "player")
    if len(set(walls)) != len(walls):
        raise ValueError("sokoban instance: walls lists a cell twice")
    return Level.build(width, height, walls, boxes, docks, player)


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"sokoban instance: {name} must be an integer, got {value!r}"[:200])
    return value


def _as_cell(value: Any, name: str) -> Cell:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"sokoban instance: {name} must be an [x, y] pair, got {value!r}"[:200])
    return (_as_int(value[0], f"{name}[0]"), _as_int(value[1], f"{name}[1]"))


def _as_cells(value: Any, name: str, limit: int) -> list[Cell]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"sokoban instance: {name} must be a list of [x, y] pairs")
    if len(value) > limit:
        raise ValueError(f"sokoban instance: {name} has {len(value)} cells, at most {limit} allowed")
    return [_as_cell(c, f"{name}[{i}]") for i, c in enumerate(value)]


def render(level: Level, state: State | None = None) -> str:
    """The level as text in the usual Sokoban characters (`#` wall, `.` dock, `$` box, `*` box on dock,
    `@` player, `+` player on dock), row 0 first; `state` defaults to the start."""
    player, boxes = state if state is not None else level.start()
    docks, box_set = set(level.docks), set(boxes)
    rows = []
    for y in range(level.height):
        row = []
        for x in range(level.width):
            cell = (x, y)
            if cell in level.walls:
                row.append("#")
            elif cell in box_set:
                row.append("*" if cell in docks else "$")
            elif cell == player:
                row.append("+" if cell in docks else "@")
            else:
                row.append("." if cell in docks else " ")
        rows.append("".join(row))
    return "\n".join(rows)


def border(width: int, height: int) -> list[Cell]:
    """The cells of the grid's outer ring."""
    return [(x, y) for y in range(height) for x in range(width)
            if x in (0, width - 1) or y in (0, height - 1)]


def dead_corner(level: Level, cell: Cell) -> bool:
    """A box here can never move again (a wall on one side along each axis) and is not on a dock.

    Searchformer's `is_box_movable` test: such a box makes the level unsolvable, so the generator
    rejects it at the start and the rules prune pushes that make one (see problem.py).
    """
    if cell in level.docks:
        return False
    x, y = cell
    blocked_x = not level.is_floor((x - 1, y)) or not level.is_floor((x + 1, y))
    blocked_y = not level.is_floor((x, y - 1)) or not level.is_floor((x, y + 1))
    return blocked_x and blocked_y


def dead_squares(level: Level) -> frozenset[Cell]:
    """Floor cells from which no push sequence (other boxes ignored) brings a box to any dock.

    Computed backwards: a box can reach a dock from `c` if it can be pulled there from a dock, i.e.
    the player could stand two cells away. A superset of the dead corners, used to count deadlocks.
    """
    live: set[Cell] = set(level.docks)
    frontier = list(level.docks)
    while frontier:
        cell = frontier.pop()
        for _, dx, dy in MOVES:
            prev, stand = (cell[0] + dx, cell[1] + dy), (cell[0] + 2 * dx, cell[1] + 2 * dy)
            if prev not in live and level.is_floor(prev) and level.is_floor(stand):
                live.add(prev)
                frontier.append(prev)
    floor = {(x, y) for x in range(level.width) for y in range(level.height) if level.is_floor((x, y))}
    return frozenset(floor - live)


def state_text(state: State) -> str:
    """`px,py/bx,by/...`: a state as one word (no spaces), usable as a node id or a line field."""
    (px, py), boxes = state
    return "/".join([f"{px},{py}", *(f"{x},{y}" for x, y in boxes)])


def parse_state_tokens(tokens: Sequence[str]) -> State:
    """The inverse of `state_tokens`; ValueError naming what is wrong."""
    if len(tokens) < 3 or tokens[0] != "worker" or (len(tokens) - 3) % 3:
        raise ValueError(f"state: expected 'worker x y (box x y)*', got {' '.join(tokens)[:80]!r}")
    player = (_coord(tokens[1]), _coord(tokens[2]))
    boxes: list[Cell] = []
    for i in range(3, len(tokens), 3):
        if tokens[i] != "box":
            raise ValueError(f"state: expected 'box', got {tokens[i][:20]!r}")
        boxes.append((_coord(tokens[i + 1]), _coord(tokens[i + 2])))
    return (player, sorted_cells(boxes))


def _coord(token: str) -> int:
    if not is_ascii_digits(token) or len(token) > 3:  # ASCII only: str.isdigit takes every script
        raise ValueError(f"{token[:20]!r} is not a coordinate")
    return int(token)
