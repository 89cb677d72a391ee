"""Maze domain: generation constraints (Searchformer's), determinism, disjoint splits, instances, rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from metacot_core.config import ConfigError, build_config
from metacot_core.domains.maze.problem import MazeConfig, MazeDomain, MazeProblem, layout_bucket, parse_cell
from metacot_core.problems.base import Problem, UnsolvableProblemError
from metacot_core.registry import get_domain

DOMAIN = MazeDomain()


def small_maze() -> MazeProblem:
    # 3x3, start bottom-left, goal top-left, walls block the direct way up:
    #   y=2  G . .
    #   y=1  # # .
    #   y=0  S . .
    return MazeProblem(3, 3, [(0, 1), (1, 1)], (0, 0), (0, 2))


def test_problem_protocol_and_rules():
    p = small_maze()
    assert isinstance(p, Problem)
    assert p.domain == "maze"
    assert p.initial_state() == (0, 0)
    assert p.actions((0, 0)) == ["right"]  # up is a wall, down and left leave the grid
    assert p.actions((1, 0)) == ["left", "right"]
    assert p.actions((2, 1)) == ["up", "down"]
    assert p.apply((2, 1), "up") == (2, 2)
    assert p.render_state((2, 1)) == "2,1"
    assert p.render_action((2, 1), "up") == "2,2"
    assert p.heuristic((2, 0)) == 4.0 and p.heuristic((2, 0), "manhattan") == 4.0
    assert p.heuristic((2, 0), "zero") == 0.0
    with pytest.raises(ValueError, match="heuristic"):
        p.heuristic((2, 0), "euclid")
    assert p.cost((0, 0), "right") == 1.0
    assert p.is_goal((0, 2)) and not p.is_goal((0, 0))
    assert p.optimal_plan_length() == 7


def test_verify():
    p = small_maze()
    assert p.verify(["1,0", "2,0", "2,1", "2,2", "1,2", "0,2"])
    assert p.verify([" 1,0", "2,0 ", "2,1", "2,2", "1,2", "0,2"])
    assert not p.verify(["1,0", "2,0", "2,1", "2,2", "1,2"])  # stops short of the goal
    assert not p.verify(["0,1", "0,2"])  # through a wall
    assert not p.verify(["1,0", "2,1"])  # diagonal
    assert not p.verify(["0,0", "1,0"])  # the start is not a step
    assert not p.verify(["a,b"]) and not p.verify([None]) and not p.verify(["1,0,0"])  # type: ignore[list-item]
    assert MazeProblem(2, 1, [], (0, 0), (0, 0)).verify([])  # start == goal: the empty plan


def test_parse_cell():
    assert parse_cell("3,4") == (3, 4) and parse_cell(" -1,2 ") == (-1, 2)
    assert parse_cell("3") is None and parse_cell("x,1") is None and parse_cell(7) is None


def test_instance_round_trip_and_canonical_wall_order():
    p = MazeProblem(3, 3, [(1, 2), (0, 1), (1, 1)], (0, 0), (2, 2))
    inst = p.to_instance()
    walls = [[0, 1], [1, 1], [1, 2]]  # sorted by y, then x
    assert inst == {"width": 3, "height": 3, "walls": walls, "start": [0, 0], "goal": [2, 2]}
    q = DOMAIN.from_instance(inst)
    assert q.to_instance() == inst and q.walls == p.walls


@pytest.mark.parametrize(
    ("instance", "match"),
    [
        ([1, 2], "expected a dict"),
        ({"width": 3, "height": 3, "walls": []}, "missing field.*start"),
        ({"width": 3, "height": 3, "walls": [], "start": [0, 0], "goal": [1, 1], "x": 1}, "unknown field"),
        ({"width": "3", "height": 3, "walls": [], "start": [0, 0], "goal": [1, 1]}, "width"),
        ({"width": 3, "height": 3, "walls": [[0]], "start": [0, 0], "goal": [1, 1]}, r"walls\[0\]"),
        ({"width": 3, "height": 3, "walls": [[5, 5]], "start": [0, 0], "goal": [1, 1]}, "walls.*outside"),
        ({"width": 3, "height": 3, "walls": [], "start": [0, 3], "goal": [1, 1]}, "start.*outside"),
        ({"width": 3, "height": 3, "walls": [[1, 1]], "start": [0, 0], "goal": [1, 1]}, "goal.*wall"),
        ({"width": 3, "height": 3, "walls": "no", "start": [0, 0], "goal": [1, 1]}, "walls must be a list"),
    ],
)
def test_from_instance_rejects_malformed(instance, match):
    with pytest.raises(ValueError, match=match):
        DOMAIN.from_instance(instance)


def test_unsolvable_instance_is_reported():
    rail = {"width": 3, "height": 3, "walls": [[0, 1], [1, 1], [2, 1]], "start": [0, 0], "goal": [0, 2]}
    with pytest.raises(UnsolvableProblemError, match="cannot be reached"):
        DOMAIN.from_instance(rail)
    assert DOMAIN.from_instance(rail, check_solvable=False).optimal_plan_length() is None


def test_impossible_config_is_reported():
    cfg = MazeConfig(width=4, height=4, wall_fraction_min=0.9, wall_fraction_max=0.9, max_layouts=20)
    with pytest.raises(UnsolvableProblemError, match="no solvable 4x4 maze"):
        DOMAIN.make(cfg, "train", 0, 0)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"width": 1}, "width"),
        ({"height": 1000}, "height"),
        ({"wall_fraction_min": 0.6, "wall_fraction_max": 0.5}, "wall_fraction_min"),
        ({"wall_fraction_max": 1.0}, "wall_fraction_max"),
        ({"harder_width": 5}, "harder_width"),
        ({"min_plan_length": 500}, "min_plan_length"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_config_names_the_field(data, field):
    with pytest.raises(ConfigError) as info:
        build_config(MazeConfig, data)
    message = str(info.value)
    assert field in message and "\n" not in message
    with pytest.raises(ValidationError):
        MazeConfig(**data)


@pytest.mark.parametrize("size", [10, 20, 30])
def test_generation_constraints(size):
    cfg = MazeConfig(width=size, height=size)
    for index in range(30 if size < 30 else 10):
        p = DOMAIN.make(cfg, "train", index, seed=7)
        n = p.width * p.height
        assert (p.width, p.height) == (size, size)
        assert int(0.3 * n) <= len(p.walls) <= int(0.5 * n) + 1
        assert p.start != p.goal and p.start not in p.walls and p.goal not in p.walls
        length = p.optimal_plan_length()
        assert length is not None and length >= size  # solvable, plan of >= max(W, H) cells


def test_make_is_deterministic_and_depends_on_its_inputs():
    cfg = MazeConfig()
    a = DOMAIN.make(cfg, "train", 3, seed=1).to_instance()
    assert a == DOMAIN.make(cfg, "train", 3, seed=1).to_instance()
    assert a == MazeDomain().make(MazeConfig(), "train", 3, seed=1).to_instance()
    assert a == DOMAIN.make({"width": 10}, "train", 3, seed=1).to_instance()  # a plain mapping validates
    assert a != DOMAIN.make(cfg, "train", 4, seed=1).to_instance()
    assert a != DOMAIN.make(cfg, "train", 3, seed=2).to_instance()


def test_train_and_test_never_share_a_wall_layout():
    cfg = MazeConfig()
    layouts = {}
    for split in ("train", "test"):
        layouts[split] = set()
        for index in range(150):
            p = DOMAIN.make(cfg, split, index, seed=0)
            walls = [x + y * p.width for x, y in p.walls]
            bucket = layout_bucket(p.width, p.height, walls)
            assert (bucket < cfg.test_fraction) == (split == "test")
            layouts[split].add(frozenset(p.walls))
    assert not layouts["train"] & layouts["test"]
    assert len(layouts["train"]) == 150  # no repeated layout either


def test_harder_split_is_larger_and_unknown_split_rejected():
    cfg = MazeConfig(width=10, height=10)
    p = DOMAIN.make(cfg, "harder", 0, seed=0)
    assert (p.width, p.height) == (20, 20) and p.optimal_plan_length() >= 20
    assert MazeConfig(harder_width=12, harder_height=14).harder_size == (12, 14)
    with pytest.raises(ValueError, match="split"):
        DOMAIN.make(cfg, "val", 0, seed=0)


def test_registry_knows_the_domain():
    domain = get_domain("maze")
    assert domain.name == "maze" and domain.config_cls is MazeConfig
    assert set(domain.splits) >= {"train", "test"}
