"""Seeded Sokoban levels per (split, index), as Searchformer draws them, each checked solvable by A*.

Searchformer's recipe (`generate_level`, 7x7 with 2 boxes in its "7722" datasets): walls on the border
plus `interior_walls` cells drawn anywhere inside; boxes drawn at least two cells from the border;
then the player, then the docks, each on a cell still free. A level is kept only when no box starts on
a dead corner (see level.py), it is not solved at the start, and A* (the default heuristic) finds a
plan within `solve_budget` closes; its optimal plan length is kept on the problem (`optimal_length`).

Splits: "train", "test" (held-out levels) and "harder" (`harder_boxes` boxes, by default 3, on a grid of
`harder_width` x `harder_height`, by default the same). Train and test never share a level: the
level's content hash decides which side it may go to, whatever the seed or index; "harder" draws from
the test side too.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metacot_core.domains.sokoban.level import (
    MAX_BOXES,
    MAX_SIDE,
    Level,
    border,
    dead_corner,
    level_from_instance,
)
from metacot_core.domains.sokoban.problem import SokobanProblem
from metacot_core.domains.sokoban.solution_trace import SokobanSolutionFormat
from metacot_core.problems.base import UnsolvableProblemError
from metacot_core.search.astar import astar
from metacot_core.search.config import SearchConfig


class SokobanConfig(BaseModel):
    """How levels are generated (defaults: Searchformer's 7x7, 2 interior walls, 2 boxes)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(7, ge=5, le=MAX_SIDE, description="grid width, border walls included")
    height: int = Field(7, ge=5, le=MAX_SIDE, description="grid height, border walls included")
    boxes: int = Field(2, ge=1, le=MAX_BOXES, description="boxes (and docks) per level")
    interior_walls: int = Field(2, ge=0, description="wall cells drawn inside the border")
    harder_boxes: int | None = Field(3, ge=1, le=MAX_BOXES, description="'harder' split boxes (None: boxes)")
    harder_width: int | None = Field(None, ge=5, le=MAX_SIDE, description="'harder' width (None: width)")
    harder_height: int | None = Field(None, ge=5, le=MAX_SIDE, description="'harder' height (None: height)")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of levels (by hash) kept for test")
    solve_budget: int = Field(50_000, ge=1, description="A* closes allowed to prove a drawn level solvable")
    max_attempts: int = Field(2000, ge=1, description="levels drawn before giving up on an instance")

    @model_validator(mode="after")
    def _fits(self) -> SokobanConfig:
        for label, (w, h, n) in (("", self.size_for("train")), ("harder_", self.size_for("harder"))):
            inner = (w - 2) * (h - 2)
            box_cells = max(w - 4, 0) * max(h - 4, 0)
            if n > box_cells:
                raise ValueError(f"{label}boxes: {n} boxes do not fit the {box_cells} cells two steps "
                                 f"inside a {w}x{h} border")
            if self.interior_walls + 2 * n + 1 > inner:
                raise ValueError(f"interior_walls: {self.interior_walls} walls, {n} boxes, {n} docks and "
                                 f"the player do not fit the {inner} inner cells of a {w}x{h} grid")
        return self

    def size_for(self, split: str) -> tuple[int, int, int]:
        """(width, height, boxes) of a split's levels."""
        if split == "harder":
            return (self.harder_width or self.width, self.harder_height or self.height,
                    self.harder_boxes or self.boxes)
        return (self.width, self.height, self.boxes)


def level_bucket(level: Level) -> float:
    """A number in [0, 1) fixed by the level's content; decides which splits may use the level."""
    blob = json.dumps(level.to_instance(), sort_keys=True)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big") / 2**64


def draw_level(width: int, height: int, n_boxes: int, n_walls: int, rng: random.Random) -> Level:
    """One level drawn as Searchformer does (see the module docstring); not yet checked solvable."""
    walls = set(border(width, height))
    inner = [(x, y) for y in range(1, height - 1) for x in range(1, width - 1)]
    walls.update(rng.sample(inner, n_walls))
    box_cells = [c for c in inner if 2 <= c[0] < width - 2 and 2 <= c[1] < height - 2 and c not in walls]
    if len(box_cells) < n_boxes:
        box_cells = [c for c in inner if c not in walls]  # interior walls took the middle: use any cell
    boxes = rng.sample(box_cells, n_boxes)
    free = [c for c in inner if c not in walls and c not in boxes]
    player = rng.choice(free)
    docks = rng.sample([c for c in free if c != player], n_boxes)
    return Level.build(width, height, walls, boxes, docks, player)


def solve(problem: SokobanProblem, budget: int) -> tuple[int | None, str]:
    """(optimal plan length in moves or None, why the search stopped: goal, exhausted or budget)."""
    result = astar(problem, SearchConfig(algorithm="astar", node_budget=budget))
    if result.solution is None:
        return None, str(result.meta.get("stopped", "exhausted"))
    return len(result.solution), "goal"


def _instance_rng(seed: int, split: str, index: int) -> random.Random:
    digest = hashlib.sha256(f"sokoban:{seed}:{split}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class SokobanDomain:
    """Seeded Sokoban levels per (config, split, index, seed); see the module docstring for the splits."""

    name: ClassVar[str] = "sokoban"
    config_cls: ClassVar[type[BaseModel]] = SokobanConfig
    splits: ClassVar[tuple[str, ...]] = ("train", "test", "harder")
    # generic formats Sokoban speaks besides its own sokoban-astar: mcts writes its states with
    # render_state, solution hands its problems to `solution_format`
    formats: ClassVar[tuple[str, ...]] = ("mcts", "solution")
    solution_format: ClassVar[Any] = SokobanSolutionFormat()  # Searchformer's plan lines

    @staticmethod
    def plan_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The evaluator's plan block: optimal rate, SWC, ILR, deadlocks and search steps against A*
        (see metrics.py)."""
        from metacot_core.domains.sokoban.metrics import plan_metrics

        return plan_metrics(records)

    def make(self, cfg: BaseModel, split: str, index: int, seed: int) -> SokobanProblem:
        """The `index`-th level of `split`; UnsolvableProblemError when the config admits none."""
        if not isinstance(cfg, SokobanConfig):
            cfg = SokobanConfig.model_validate(cfg.model_dump() if isinstance(cfg, BaseModel) else cfg)
        if split not in self.splits:
            raise ValueError(f"split: unknown sokoban split {split!r}; known: {', '.join(self.splits)}")
        rng = _instance_rng(seed, split, index)
        width, height, n_boxes = cfg.size_for(split)
        for _ in range(cfg.max_attempts):
            level = draw_level(width, height, n_boxes, cfg.interior_walls, rng)
            if (level_bucket(level) < cfg.test_fraction) != (split != "train"):
                continue  # this level belongs to the other side of the train/test partition
            if any(dead_corner(level, b) for b in level.boxes):
                continue
            problem = SokobanProblem(level)
            if problem.is_goal(problem.initial_state()):
                continue
            length, _ = solve(problem, cfg.solve_budget)
            if length is not None:
                problem.optimal_length = length
                return problem
        raise UnsolvableProblemError(
            f"sokoban config: no solvable {width}x{height} level with {n_boxes} boxes found in "
            f"{cfg.max_attempts} attempts (fewer interior_walls or boxes, or a larger solve_budget)"
        )

    def from_instance(self, instance: dict[str, Any], check_solvable: bool = True,
                      solve_budget: int = 200_000) -> SokobanProblem:
        """Rebuild a level from its canonical dict: ValueError naming the field when malformed,
        UnsolvableProblemError when A* proves it has no solution or gives up after `solve_budget`
        closes (unless `check_solvable` is False)."""
        problem = SokobanProblem(level_from_instance(instance))
        if not check_solvable:
            return problem
        dead = [list(b) for b in problem.level.boxes if dead_corner(problem.level, b)]
        if dead:
            raise UnsolvableProblemError(f"sokoban instance: unsolvable, box {dead[0]} starts in a dead "
                                         "corner")
        length, stopped = solve(problem, solve_budget)
        if length is None:
            why = ("no plan exists" if stopped == "exhausted"
                   else f"no plan found within {solve_budget} closes")
            raise UnsolvableProblemError(f"sokoban instance: unsolvable, {why}")
        problem.optimal_length = length
        return problem
