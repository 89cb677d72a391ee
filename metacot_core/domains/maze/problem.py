"""Grid mazes as in Searchformer (Lehnert et al. 2024): a W x H grid, walls, a start and a goal cell.

Moves go to one of the 4 neighbouring free cells (cost 1). A state is the cell `(x, y)`; an action is a
direction name in the canonical order `up (y+1), down (y-1), left (x-1), right (x+1)` (Searchformer's
neighbourhood order, so deterministic A* reproduces its traces). A solution step is written as the cell
it reaches, `"3,4"`; the start cell is not part of the solution.

Generation follows Searchformer: 30-50% of the cells are walls, start and goal are drawn among the free
cells, and an instance is kept only if the goal is reachable with an optimal plan of at least max(W, H)
cells (Searchformer counts the start cell in its plan length; so do we). Train and test never share a
wall layout: the layout's content hash decides which split may use it, so the splits are disjoint by
construction, whatever the seed or index. "harder" uses a larger grid (and the test side of the hash).
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metacot_core.ascii_text import ascii_int
from metacot_core.problems.base import UnsolvableProblemError
from metacot_core.traces.astar import PlanFormat

Cell = tuple[int, int]

# Canonical action order (Searchformer: up, down, left, right with up = y + 1).
MOVES: tuple[tuple[str, int, int], ...] = (("up", 0, 1), ("down", 0, -1), ("left", -1, 0), ("right", 1, 0))
_DELTA = {name: (dx, dy) for name, dx, dy in MOVES}
HEURISTICS = ("default", "manhattan", "zero")


class MazeConfig(BaseModel):
    """How mazes are generated (Searchformer's defaults: 30-50% walls, plan length >= max(W, H))."""

    model_config = ConfigDict(extra="forbid")

    # Limits of any maze (generated or given as --instance), checked before any work: a 100000x100000
    # instance exhausted memory and a 3000x3000 one took 20 s to judge an empty trace.
    MAX_SIDE: ClassVar[int] = 100  # grid width and height
    MAX_TRACE_CHARS: ClassVar[int] = 4_000_000  # characters a judge reads (a model writes far fewer)

    width: int = Field(10, ge=2, le=MAX_SIDE, description="grid width W (Searchformer: 10 to 30)")
    height: int = Field(10, ge=2, le=MAX_SIDE, description="grid height H")
    wall_fraction_min: float = Field(0.3, ge=0.0, lt=1.0, description="fewest walls, as a fraction of cells")
    wall_fraction_max: float = Field(0.5, ge=0.0, lt=1.0, description="most walls, as a fraction of cells")
    min_plan_length: int | None = Field(
        None, ge=1, description="fewest cells on the optimal plan, start included (None: max(W, H))"
    )
    test_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="share of wall layouts (by content hash) reserved to test/harder"
    )
    harder_width: int | None = Field(None, ge=2, le=MAX_SIDE,
                                     description="'harder' split width (None: W + 10)")
    harder_height: int | None = Field(None, ge=2, le=MAX_SIDE,
                                      description="'harder' split height (None: H + 10)")
    attempts_per_layout: int = Field(100, ge=1, description="start/goal pairs tried per wall layout")
    max_layouts: int = Field(2000, ge=1, description="wall layouts tried before giving up on an instance")

    @model_validator(mode="after")
    def _consistent(self) -> MazeConfig:
        if self.wall_fraction_min > self.wall_fraction_max:
            raise ValueError(
                f"wall_fraction_min: {self.wall_fraction_min} is above wall_fraction_max "
                f"({self.wall_fraction_max})"
            )
        for name, size in (("width", self.width), ("height", self.height)):
            harder = getattr(self, f"harder_{name}")
            if harder is not None and harder < size:
                raise ValueError(f"harder_{name}: {harder} is smaller than {name} ({size})")
        for w, h, label in ((self.width, self.height, ""), (*self.harder_size, "harder ")):
            if self.min_plan_length is not None and self.min_plan_length > w * h:
                raise ValueError(
                    f"min_plan_length: {self.min_plan_length} exceeds the {w * h} cells of the {label}grid"
                )
        return self

    @property
    def harder_size(self) -> tuple[int, int]:
        width = self.harder_width or min(self.width + 10, self.MAX_SIDE)
        return width, self.harder_height or min(self.height + 10, self.MAX_SIDE)

    def size_for(self, split: str) -> tuple[int, int]:
        return self.harder_size if split == "harder" else (self.width, self.height)

    def plan_length_for(self, width: int, height: int) -> int:
        return self.min_plan_length if self.min_plan_length is not None else max(width, height)


class MazeProblem:
    """One maze. States are cells `(x, y)`; actions are direction names (see MOVES)."""

    domain: ClassVar[str] = "maze"
    max_trace_chars: ClassVar[int] = MazeConfig.MAX_TRACE_CHARS  # what the judges read at most

    def __init__(self, width: int, height: int, walls: Sequence[Cell], start: Cell, goal: Cell):
        self.width = int(width)
        self.height = int(height)
        if self.width < 1 or self.height < 1:
            raise ValueError(f"maze size: width and height must be positive, got {width}x{height}")
        self.walls = frozenset((int(x), int(y)) for x, y in walls)
        for cell in self.walls:
            if not self._inside(cell):
                raise ValueError(f"walls: cell {cell} is outside the {self.width}x{self.height} grid")
        self.start = (int(start[0]), int(start[1]))
        self.goal = (int(goal[0]), int(goal[1]))
        for name, cell in (("start", self.start), ("goal", self.goal)):
            if not self._inside(cell):
                raise ValueError(f"{name}: cell {cell} is outside the {self.width}x{self.height} grid")
            if cell in self.walls:
                raise ValueError(f"{name}: cell {cell} is a wall")
        self._free = [[(x, y) not in self.walls for y in range(self.height)] for x in range(self.width)]

    def __repr__(self) -> str:
        return (f"MazeProblem({self.width}x{self.height}, start={self.start}, goal={self.goal}, "
                f"{len(self.walls)} walls)")

    def _inside(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.width and 0 <= cell[1] < self.height

    def is_free(self, cell: Cell) -> bool:
        """True for a cell inside the grid that is not a wall."""
        x, y = cell
        return 0 <= x < self.width and 0 <= y < self.height and self._free[x][y]

    def neighbours(self, cell: Cell) -> list[Cell]:
        """Free 4-neighbours of `cell` in the canonical action order."""
        x, y = cell
        return [(x + dx, y + dy) for _, dx, dy in MOVES if self.is_free((x + dx, y + dy))]

    # --- Problem protocol -------------------------------------------------------------------------
    def initial_state(self) -> Cell:
        return self.start

    def actions(self, state: Cell) -> list[str]:
        x, y = state
        return [name for name, dx, dy in MOVES if self.is_free((x + dx, y + dy))]

    def apply(self, state: Cell, action: str) -> Cell:
        dx, dy = _DELTA[action]
        return (state[0] + dx, state[1] + dy)

    def is_goal(self, state: Cell) -> bool:
        return state == self.goal

    def heuristic(self, state: Cell, name: str = "default") -> float:
        """Manhattan distance to the goal ("default"/"manhattan", admissible); "zero" gives Dijkstra."""
        if name in ("default", "manhattan"):
            return float(abs(state[0] - self.goal[0]) + abs(state[1] - self.goal[1]))
        if name == "zero":
            return 0.0
        raise ValueError(f"heuristic: unknown maze heuristic {name!r}; known: {', '.join(HEURISTICS)}")

    def cost(self, state: Cell, action: str) -> float:
        return 1.0

    def render_state(self, state: Cell) -> str:
        return f"{state[0]},{state[1]}"

    def render_action(self, state: Cell, action: str) -> str:
        return self.render_state(self.apply(state, action))

    def verify(self, solution: Sequence[str]) -> bool:
        """True when the written cells form a legal walk from the start that ends on the goal."""
        try:
            cell = self.start
            for step in solution:
                nxt = parse_cell(step)
                if nxt is None or abs(nxt[0] - cell[0]) + abs(nxt[1] - cell[1]) != 1 or not self.is_free(nxt):
                    return False
                cell = nxt
            return cell == self.goal
        except Exception:  # noqa: BLE001 - the verifier judges any input, it never raises
            return False

    def to_instance(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "walls": [[x, y] for x, y in sorted(self.walls, key=lambda c: (c[1], c[0]))],
            "start": [self.start[0], self.start[1]],
            "goal": [self.goal[0], self.goal[1]],
        }

    # --- helpers ----------------------------------------------------------------------------------
    def distances_from(self, cell: Cell) -> dict[Cell, int]:
        """Moves from `cell` to every reachable free cell (breadth-first)."""
        dist = {cell: 0}
        queue = deque([cell])
        while queue:
            cur = queue.popleft()
            d = dist[cur] + 1
            for nxt in self.neighbours(cur):
                if nxt not in dist:
                    dist[nxt] = d
                    queue.append(nxt)
        return dist

    def optimal_plan_length(self) -> int | None:
        """Cells on a shortest start-to-goal path, start included (None when the goal is unreachable)."""
        moves = self.distances_from(self.start).get(self.goal)
        return None if moves is None else moves + 1

    def astar_tie_key(self, state: Cell) -> tuple[int, int]:
        """Deterministic A* tie order among equal f: lower y first, then lower x (as Searchformer)."""
        return (state[1], state[0])

    # --- hooks the generic formats and the evaluator ask (problems/base.py) ----------------------
    optimal_plans: ClassVar[bool] = True  # evaluation adds optimal rate, SWC and ILR

    def instance_prompt(self) -> str:
        """Searchformer's prompt: `start x y goal x y wall x y ...` from the canonical instance.

        It ends with a newline so that training text is simply prompt + trace, as for every format.
        """
        inst = self.to_instance()
        words = ["start", *map(str, inst["start"]), "goal", *map(str, inst["goal"])]
        for x, y in inst["walls"]:
            words += ["wall", str(x), str(y)]
        return " ".join(words) + "\n"


def parse_cell(text: Any) -> Cell | None:
    """`"3,4"` -> (3, 4); None when `text` is not two comma-separated integers."""
    if not isinstance(text, str):
        return None
    parts = text.strip().split(",")
    if len(parts) != 2:
        return None
    try:  # ASCII digits only: int() also takes Unicode digits, underscores and blanks
        return (ascii_int(parts[0].strip(" "), signed=True), ascii_int(parts[1].strip(" "), signed=True))
    except ValueError:
        return None


def layout_bucket(width: int, height: int, walls: Sequence[int]) -> float:
    """A number in [0, 1) fixed by the wall layout's content; decides which splits may use the layout."""
    blob = f"{width}x{height}:" + ",".join(map(str, sorted(walls)))
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big") / 2**64


def _index_distances(width: int, height: int, walls: set[int], source: int) -> dict[int, int]:
    """Moves from cell index `source` (x + y * width) to every reachable free cell index."""
    dist = {source: 0}
    queue = deque([source])
    n = width * height
    while queue:
        cur = queue.popleft()
        d = dist[cur] + 1
        x = cur % width
        for nxt, ok in ((cur + width, cur + width < n), (cur - width, cur >= width),
                        (cur - 1, x > 0), (cur + 1, x < width - 1)):
            if ok and nxt not in walls and nxt not in dist:
                dist[nxt] = d
                queue.append(nxt)
    return dist


def _instance_rng(seed: int, split: str, index: int) -> random.Random:
    digest = hashlib.sha256(f"maze:{seed}:{split}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class MazeDomain:
    """Seeded maze generation per (config, split, index, seed); see the module docstring for the splits."""

    name: ClassVar[str] = "maze"
    config_cls: ClassVar[type[BaseModel]] = MazeConfig
    splits: ClassVar[tuple[str, ...]] = ("train", "test", "harder")
    solution_format: ClassVar[Any] = PlanFormat()  # Searchformer's plan lines, the solution control

    def make(self, cfg: BaseModel, split: str, index: int, seed: int) -> MazeProblem:
        """The `index`-th maze of `split`; raises UnsolvableProblemError if the config admits none."""
        if not isinstance(cfg, MazeConfig):
            cfg = MazeConfig.model_validate(cfg.model_dump() if isinstance(cfg, BaseModel) else cfg)
        if split not in self.splits:
            raise ValueError(f"split: unknown maze split {split!r}; known: {', '.join(self.splits)}")
        rng = _instance_rng(seed, split, index)
        width, height = cfg.size_for(split)
        need = cfg.plan_length_for(width, height)
        for _ in range(cfg.max_layouts):
            walls = self._draw_walls(cfg, width, height, rng)
            if (layout_bucket(width, height, walls) < cfg.test_fraction) != (split != "train"):
                continue  # this layout belongs to the other side of the train/test partition
            problem = self._place_start_goal(cfg, width, height, walls, need, rng)
            if problem is not None:
                return problem
        raise UnsolvableProblemError(
            f"maze config: no solvable {width}x{height} maze with a plan of >= {need} cells found in "
            f"{cfg.max_layouts} layouts (lower wall_fraction_max or min_plan_length)"
        )

    @staticmethod
    def _draw_walls(cfg: MazeConfig, width: int, height: int, rng: random.Random) -> list[int]:
        n = width * height
        lo = int(round(cfg.wall_fraction_min * n))
        hi = max(lo, int(cfg.wall_fraction_max * n))
        n_walls = min(rng.randint(lo, hi), n - 2)
        return sorted(rng.sample(range(n), n_walls))

    @staticmethod
    def _place_start_goal(
        cfg: MazeConfig, width: int, height: int, walls: list[int], need: int, rng: random.Random
    ) -> MazeProblem | None:
        """Searchformer's rejection sampling: random start/goal pairs on one layout until one fits."""
        wall_set = set(walls)
        free = [i for i in range(width * height) if i not in wall_set]
        if len(free) < 2:
            return None
        cache: dict[int, dict[int, int]] = {}
        component: dict[int, int] = {}  # cell -> label: pairs in different components need no search
        for _ in range(cfg.attempts_per_layout):
            s, g = rng.sample(free, 2)
            if s not in component:
                reach = _index_distances(width, height, wall_set, s)
                component.update(dict.fromkeys(reach, s))
                cache[s] = reach
            if component.get(g) != component[s]:
                continue
            if s not in cache:
                cache[s] = _index_distances(width, height, wall_set, s)
            moves = cache[s].get(g)
            if moves is not None and moves + 1 >= need:
                cells = [(i % width, i // width) for i in walls]
                return MazeProblem(width, height, cells, (s % width, s // width), (g % width, g // width))
        return None

    def from_instance(self, instance: dict[str, Any], check_solvable: bool = True) -> MazeProblem:
        """Rebuild a maze from its canonical dict; ValueError when malformed, UnsolvableProblemError
        when the goal cannot be reached (unless `check_solvable` is False)."""
        if not isinstance(instance, dict):
            raise ValueError(f"maze instance: expected a dict, got {type(instance).__name__}")
        missing = [k for k in ("width", "height", "walls", "start", "goal") if k not in instance]
        if missing:
            raise ValueError(f"maze instance: missing field(s) {', '.join(missing)}")
        extra = sorted(set(instance) - {"width", "height", "walls", "start", "goal"})
        if extra:
            raise ValueError(f"maze instance: unknown field(s) {', '.join(extra)}")
        width, height = _as_int(instance["width"], "width"), _as_int(instance["height"], "height")
        if not isinstance(instance["walls"], list | tuple):
            raise ValueError("maze instance: walls must be a list of [x, y] pairs")
        _check_limits(width, height, len(instance["walls"]))
        walls = [_as_cell(w, f"walls[{i}]") for i, w in enumerate(instance["walls"])]
        start, goal = _as_cell(instance["start"], "start"), _as_cell(instance["goal"], "goal")
        problem = MazeProblem(width, height, walls, start, goal)
        if check_solvable and problem.optimal_plan_length() is None:
            raise UnsolvableProblemError(f"maze instance: goal {goal} cannot be reached from start {start}")
        return problem


def _check_limits(width: int, height: int, n_walls: int) -> None:
    """MazeConfig's size limits, before any cell is looked at."""
    for name, side in (("width", width), ("height", height)):
        if side > MazeConfig.MAX_SIDE:
            shown = side if side.bit_length() <= 64 else "a huge number"  # str() of 5,000 digits raises
            raise ValueError(f"maze instance: {name}: {shown} is above the limit of {MazeConfig.MAX_SIDE}")
    if n_walls > MazeConfig.MAX_SIDE ** 2:
        raise ValueError(f"maze instance: walls: {n_walls} cells, above the limit of "
                         f"{MazeConfig.MAX_SIDE ** 2}")


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"maze instance: {name} must be an integer, got {value!r}")
    return value


def _as_cell(value: Any, name: str) -> Cell:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"maze instance: {name} must be an [x, y] pair, got {value!r}")
    return (_as_int(value[0], f"{name}[0]"), _as_int(value[1], f"{name}[1]"))
