"""BFS and A*: golden traces on tiny mazes, optimality, budgets, the unsolvable case, genericity."""

from __future__ import annotations

import random
from typing import ClassVar

import pytest

from metacot_core.domains.countdown.problem import CountdownConfig, CountdownDomain
from metacot_core.domains.maze.problem import MazeConfig, MazeDomain, MazeProblem
from metacot_core.registry import get_search
from metacot_core.search.astar import astar
from metacot_core.search.bfs import bfs
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Close, Create, DeadEnd, Expand, Generate, Goal

BFS = SearchConfig(algorithm="bfs")
ASTAR = SearchConfig(algorithm="astar")


class Doubling:
    """A tiny non-maze Problem: from 1, reach `target` with +1 or *2, never above `limit`."""

    domain: ClassVar[str] = "doubling"

    def __init__(self, target: int, limit: int):
        self.target, self.limit = target, limit

    def initial_state(self) -> int:
        return 1

    def actions(self, state: int) -> list[str]:
        return [a for a in ("+1", "*2") if self.apply(state, a) <= self.limit]

    def apply(self, state: int, action: str) -> int:
        return state + 1 if action == "+1" else state * 2

    def is_goal(self, state: int) -> bool:
        return state == self.target

    def heuristic(self, state: int, name: str = "default") -> float:
        return 0.0 if state == self.target else 1.0  # admissible: at least one more step

    def cost(self, state: int, action: str) -> float:
        return 1.0

    def render_state(self, state: int) -> str:
        return str(state)

    def render_action(self, state: int, action: str) -> str:
        return f"{state}{action[0]}{action[1:]}={self.apply(state, action)}"

    def verify(self, solution) -> bool:
        state = 1
        for step in solution:
            left, _, right = step.partition("=")
            if not right.isdigit() or left not in (f"{state}+1", f"{state}*2"):
                return False
            state = int(right)
        return state == self.target

    def to_instance(self) -> dict:
        return {"target": self.target, "limit": self.limit}


def walls_maze() -> MazeProblem:
    """Searchformer's `test_astar_walls` maze: 3x3, start (0,0), goal (0,2), walls at (0,1) and (1,1)."""
    return MazeProblem(3, 3, [(0, 1), (1, 1)], (0, 0), (0, 2))


def steps(events) -> list[tuple]:
    """Events as compact tuples for golden comparisons."""
    out = []
    for e in events:
        if isinstance(e, Create | Close):
            out.append((type(e).__name__.lower(), e.state, int(e.g), int(e.h)))
        elif isinstance(e, Generate):
            out.append(("generate", e.node, e.parent, e.state))
        else:
            out.append((type(e).__name__.lower(), e.node, e.state))
    return out


def test_bfs_golden_walls_maze():
    result = bfs(walls_maze(), BFS)
    assert steps(result.events) == [
        ("expand", "0", (0, 0)),
        ("generate", "0,0", "0", (1, 0)),
        ("expand", "0,0", (1, 0)),
        ("generate", "0,0,0", "0,0", (2, 0)),
        ("expand", "0,0,0", (2, 0)),
        ("generate", "0,0,0,0", "0,0,0", (2, 1)),
        ("expand", "0,0,0,0", (2, 1)),
        ("generate", "0,0,0,0,0", "0,0,0,0", (2, 2)),
        ("expand", "0,0,0,0,0", (2, 2)),
        ("generate", "0,0,0,0,0,0", "0,0,0,0,0", (1, 2)),
        ("expand", "0,0,0,0,0,0", (1, 2)),
        ("generate", "0,0,0,0,0,0,0", "0,0,0,0,0,0", (0, 2)),
        ("goal", "0,0,0,0,0,0,0", (0, 2)),
    ]
    assert result.solution == ["right", "right", "up", "up", "left", "left"]
    assert result.solution_text == ["1,0", "2,0", "2,1", "2,2", "1,2", "0,2"]
    assert result.n_expanded == 6 and result.n_generated == 6 and result.meta["stopped"] == "goal"


def test_bfs_dead_end_and_open_grid():
    # 3x1 corridor with the goal unreachable behind a wall: the search drains and reports exhaustion.
    p = MazeProblem(3, 1, [(1, 0)], (0, 0), (2, 0))
    result = bfs(p, BFS)
    assert steps(result.events) == [("expand", "0", (0, 0)), ("deadend", "0", (0, 0))]
    assert not result.solved and result.meta["stopped"] == "exhausted"
    assert isinstance(result.events[-1], DeadEnd) and result.events[-1].reason


def test_bfs_on_a_goal_start():
    result = bfs(MazeProblem(2, 2, [], (1, 1), (1, 1)), BFS)
    assert result.solution == [] and result.solution_text == [] and steps(result.events) == [
        ("goal", "0", (1, 1))]


def test_astar_golden_walls_maze():
    # Same trace as Searchformer's test/trace_maze_walls.json: create/close along the only corridor.
    result = astar(walls_maze(), ASTAR)
    corridor = [((0, 0), 0, 2), ((1, 0), 1, 3), ((2, 0), 2, 4), ((2, 1), 3, 3), ((2, 2), 4, 2),
                ((1, 2), 5, 1), ((0, 2), 6, 0)]
    expected = []
    for cell, g, h in corridor:
        expected += [("create", cell, g, h), ("close", cell, g, h)]
    assert steps(result.events) == expected + [("goal", "0,2", (0, 2))]
    assert result.solution_text == ["1,0", "2,0", "2,1", "2,2", "1,2", "0,2"]
    assert result.n_expanded == 7 and result.meta["stopped"] == "goal"
    creates = [e for e in result.events if isinstance(e, Create)]
    assert [c.parent for c in creates] == [None, "0,0", "1,0", "2,0", "2,1", "2,2", "1,2"]


def test_astar_golden_open_grid_ties():
    # Searchformer's test/trace_maze.json: 3x3 without walls, (0,0) -> (2,2); every cell on a monotone
    # path has f = 4, so the deterministic tie order (lower y, then lower x) decides everything.
    result = astar(MazeProblem(3, 3, [], (0, 0), (2, 2)), ASTAR)
    assert [(k, c) for k, c, _, _ in steps(result.events)[:-1]] == [
        ("create", (0, 0)), ("close", (0, 0)), ("create", (0, 1)), ("create", (1, 0)),
        ("close", (1, 0)), ("create", (1, 1)), ("create", (2, 0)), ("close", (2, 0)),
        ("create", (2, 1)), ("close", (0, 1)), ("create", (0, 2)), ("close", (1, 1)),
        ("create", (1, 2)), ("close", (2, 1)), ("create", (2, 2)), ("close", (0, 2)),
        ("close", (1, 2)), ("close", (2, 2)),
    ]
    assert result.solution_text == ["1,0", "2,0", "2,1", "2,2"]


def test_astar_unsolvable_rail_is_exhausted_not_raised():
    # Searchformer's test_astar_rail: a full row of walls. Its A* raises; ours reports it.
    rail = MazeProblem(3, 3, [(0, 1), (1, 1), (2, 1)], (0, 0), (0, 2))
    result = astar(rail, ASTAR)
    assert not result.solved and result.solution_text is None
    assert result.meta["stopped"] == "exhausted" and result.n_expanded == 3
    assert not any(isinstance(e, Goal) for e in result.events)


@pytest.mark.parametrize("algorithm", ["bfs", "astar"])
def test_node_budget(algorithm):
    p = MazeDomain().make(MazeConfig(width=20, height=20), "train", 0, seed=0)
    search = get_search(algorithm)
    full = search(p, SearchConfig(algorithm=algorithm), random.Random(0))
    assert full.solved and full.n_expanded > 5
    cut = search(p, SearchConfig(algorithm=algorithm, node_budget=5), random.Random(0))
    assert not cut.solved and cut.n_expanded == 5 and cut.meta["stopped"] == "budget"
    opened = sum(isinstance(e, Expand | Close) for e in cut.events)
    assert opened == 5


def test_astar_and_bfs_find_optimal_plans_on_generated_mazes():
    domain, cfg = MazeDomain(), MazeConfig(width=12, height=12)
    for index in range(40):
        p = domain.make(cfg, "train", index, seed=3)
        optimal = p.optimal_plan_length() - 1
        b = bfs(p, BFS)
        a = astar(p, ASTAR)
        r = astar(p, SearchConfig(algorithm="astar", tie_breaking="random"), random.Random(index))
        for res in (a, b, r):
            assert res.solved and len(res.solution) == optimal and p.verify(res.solution_text)
        assert a.n_expanded <= b.n_expanded + 1  # A* never explores much more than BFS with Manhattan


def test_random_tie_breaking_is_seeded_and_varies():
    p = MazeProblem(6, 6, [], (0, 0), (5, 5))
    cfg = SearchConfig(algorithm="astar", tie_breaking="random")
    first = astar(p, cfg, random.Random(1)).events
    assert first == astar(p, cfg, random.Random(1)).events
    traces = {tuple(steps(astar(p, cfg, random.Random(seed)).events)) for seed in range(10)}
    assert len(traces) > 1
    assert astar(p, ASTAR).events == astar(p, ASTAR, random.Random(99)).events  # deterministic ignores rng


def test_generic_over_a_non_maze_problem():
    p = Doubling(target=10, limit=20)
    b = bfs(p, BFS)
    a = astar(p, ASTAR)
    assert b.solution_text == ["1+1=2", "2*2=4", "4+1=5", "5*2=10"]
    assert len(a.solution) == 4 and p.verify(a.solution_text)
    assert [e.node for e in a.events if isinstance(e, Close)][:2] == ["1", "2"]


def test_on_countdown():
    domain, cfg = CountdownDomain(), CountdownConfig()
    for index in range(5):
        p = domain.make(cfg, "train", index, seed=0)
        for search in (bfs, astar):
            result = search(p, SearchConfig(algorithm=search.__name__, node_budget=5000), random.Random(0))
            assert result.solved and p.verify(result.solution_text)
            assert len(result.solution) == len(p.numbers) - 1
