"""MCTS (UCT): a seeded golden trace, backup arithmetic, budgets, exhaustion, Countdown and genericity."""

from __future__ import annotations

import random
from typing import ClassVar

import pytest

from metacot_core.domains.countdown.problem import CountdownConfig, CountdownDomain
from metacot_core.domains.maze.problem import MazeConfig, MazeDomain, MazeProblem
from metacot_core.registry import get_search
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Backtrack, Backup, DeadEnd, Expand, Generate, Goal, Rollout, Select
from metacot_core.search.mcts import mcts, rollout_reward_milli


def cfg(**kw) -> SearchConfig:
    return SearchConfig(algorithm="mcts", **kw)


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
        return float(abs(self.target - state))

    def cost(self, state: int, action: str) -> float:
        return 1.0

    def render_state(self, state: int) -> str:
        return str(state)

    def render_action(self, state: int, action: str) -> str:
        return f"{state}{action}={self.apply(state, action)}"

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


def compact(events) -> list[tuple]:
    out = []
    for e in events:
        if isinstance(e, Select | Backup):
            out.append((type(e).__name__.lower(), e.node, e.visits, e.value))
        elif isinstance(e, Generate):
            out.append(("child", e.node, e.parent, e.action, e.state))
        elif isinstance(e, Rollout):
            out.append(("rollout", e.node, e.actions, e.reward))
        elif isinstance(e, Expand | Goal | DeadEnd):
            out.append((type(e).__name__.lower(), e.node, e.state))
        else:
            out.append(("back", e.node))
    return out


def test_golden_seeded_trace():
    # 3x2 maze, wall at (1,0): (0,0) -> (2,0) must go over the top. Rewards by hand (h = Manhattan):
    # rollout ends (1,1): 0.5 / (1 + 2) = 0.167; ends (2,1): 0.5 / 2 = 0.25; reaches the goal: 1.
    # Means: n1 = (0.167 + 0.25) / 2 = 0.2085; then (0.417 + 1) / 3 = 0.472; n2 = (0.25 + 1) / 2 = 0.625.
    p = MazeProblem(3, 2, [(1, 0)], (0, 0), (2, 0))
    result = mcts(p, cfg(rollout_depth=3), random.Random(0))
    assert compact(result.events) == [
        ("expand", "n0", (0, 0)),
        ("child", "n1", "n0", "up", (0, 1)),
        ("rollout", "n1", ("right", "left", "right"), 0.167),
        ("backup", "n1", 1, 0.167), ("backup", "n0", 1, 0.167),
        ("back", "n0"),
        ("select", "n1", 1, 0.167),
        ("expand", "n1", (0, 1)),
        ("child", "n2", "n1", "right", (1, 1)),
        ("rollout", "n2", ("right", "left", "right"), 0.25),
        ("backup", "n2", 1, 0.25), ("backup", "n1", 2, 0.208), ("backup", "n0", 2, 0.208),
        ("back", "n0"),
        ("select", "n1", 2, 0.208), ("select", "n2", 1, 0.25),
        ("expand", "n2", (1, 1)),
        ("child", "n3", "n2", "right", (2, 1)),
        ("rollout", "n3", ("down",), 1.0),
        ("backup", "n3", 1, 1.0), ("backup", "n2", 2, 0.625), ("backup", "n1", 3, 0.472),
        ("backup", "n0", 3, 0.472),
        ("back", "n0"),
        ("select", "n1", 3, 0.472), ("select", "n2", 2, 0.625), ("select", "n3", 1, 1.0),
        ("expand", "n3", (2, 1)),
        ("child", "n4", "n3", "down", (2, 0)),
        ("goal", "n4", (2, 0)),
    ]
    assert result.solution == ["up", "right", "right", "down"]
    assert result.solution_text == ["0,1", "1,1", "2,1", "2,0"]
    assert result.n_expanded == 4 and result.n_generated == 4
    assert result.meta == {"iterations": 4, "stopped": "goal"}


def test_unsolvable_maze_is_exhausted():
    rail = MazeProblem(3, 3, [(0, 1), (1, 1), (2, 1)], (0, 0), (0, 2))
    result = mcts(rail, cfg(), random.Random(0))
    assert not result.solved and result.solution_text is None
    assert result.meta["stopped"] == "exhausted" and result.n_expanded == 3
    assert isinstance(result.events[-1], DeadEnd)


def test_goal_at_the_root():
    result = mcts(MazeProblem(2, 2, [], (1, 1), (1, 1)), cfg(), random.Random(0))
    assert result.solution == [] and compact(result.events) == [("goal", "n0", (1, 1))]


def test_seeded_determinism_and_variation():
    p = MazeDomain().make(MazeConfig(), "train", 0, seed=0)
    a = mcts(p, cfg(), random.Random(5))
    assert a.events == mcts(p, cfg(), random.Random(5)).events
    assert any(mcts(p, cfg(), random.Random(s)).events != a.events for s in range(6, 10))


@pytest.mark.parametrize("budget", [1, 4, 9])
def test_node_budget(budget):
    p = MazeDomain().make(MazeConfig(width=20, height=20), "train", 1, seed=0)
    result = get_search("mcts")(p, cfg(node_budget=budget), random.Random(0))
    assert not result.solved and result.meta["stopped"] == "budget"
    assert result.n_expanded == budget == sum(isinstance(e, Expand) for e in result.events)


def test_backups_add_one_visit_and_update_the_mean():
    """Recompute every node's statistics from the rollout rewards and compare with each Backup/Select."""
    p = MazeDomain().make(MazeConfig(), "train", 2, seed=0)
    result = mcts(p, cfg(rollouts=3, rollout_depth=8), random.Random(1))
    visits: dict[str, int] = {}
    total: dict[str, int] = {}
    rewards: list[int] = []
    n_backups = 0
    for e in result.events:
        if isinstance(e, Rollout):
            rewards.append(round(e.reward * 1000))
        elif isinstance(e, Backup):
            if rewards:
                reward, rewards = round(sum(rewards) / len(rewards)), []  # one reward per iteration
            visits[e.node] = visits.get(e.node, 0) + 1
            total[e.node] = total.get(e.node, 0) + reward
            assert e.visits == visits[e.node]
            assert abs(e.value - total[e.node] / visits[e.node] / 1000) <= 0.0005 + 1e-12
            n_backups += 1
        elif isinstance(e, Select):
            assert e.visits == visits.get(e.node, 0)
    assert n_backups > 10


def test_rollouts_per_expansion():
    p = MazeDomain().make(MazeConfig(), "train", 3, seed=0)
    three = mcts(p, cfg(rollouts=3, node_budget=5), random.Random(0))
    zero = mcts(p, cfg(rollouts=0, node_budget=5), random.Random(0))
    n_iter = sum(isinstance(e, Expand) for e in three.events)
    n_iter -= sum(isinstance(e, DeadEnd) for e in three.events)  # a dead end gets no rollout
    assert sum(isinstance(e, Rollout) for e in three.events) == 3 * n_iter
    static = [e for e in zero.events if isinstance(e, Rollout)]
    assert static and all(e.actions == () for e in static)
    depth = mcts(p, cfg(rollout_depth=2, node_budget=5), random.Random(0))
    assert all(len(e.actions) <= 2 for e in depth.events if isinstance(e, Rollout))


def test_reward_rule():
    p = MazeProblem(5, 1, [], (0, 0), (4, 0))
    assert rollout_reward_milli(p, (4, 0)) == 1000
    assert rollout_reward_milli(p, (3, 0)) == 250  # 0.5 / (1 + 1)
    assert rollout_reward_milli(p, (0, 0)) == 100  # 0.5 / (1 + 4)


def test_solves_generated_mazes_with_valid_paths():
    domain, mcfg = MazeDomain(), MazeConfig()
    for index in range(20):
        p = domain.make(mcfg, "train", index, seed=4)
        result = mcts(p, cfg(), random.Random(index))
        assert result.solved and p.verify(result.solution_text)
        assert not any(isinstance(e, Backtrack) and e.node != "n0" for e in result.events)


def test_on_countdown():
    domain, ccfg = CountdownDomain(), CountdownConfig()
    solved = 0
    for index in range(20):
        p = domain.make(ccfg, "train", index, seed=0)
        result = mcts(p, cfg(node_budget=300), random.Random(index))
        if result.solved:
            solved += 1
            assert p.verify(result.solution_text) and len(result.solution) == 3
        else:
            assert result.meta["stopped"] == "budget"
    assert solved >= 15


def test_generic_over_a_non_maze_problem():
    p = Doubling(target=13, limit=20)
    result = mcts(p, cfg(), random.Random(0))
    assert result.solved and p.verify(result.solution_text)
    assert mcts(Doubling(target=30, limit=20), cfg(), random.Random(0)).meta["stopped"] == "exhausted"
