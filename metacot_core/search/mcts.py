"""Monte Carlo tree search (UCT) over any Problem, with every step emitted as an event.

One iteration (all events in this order):
1. Backtrack(root) (from the second iteration on): the search jumps back to the root.
2. Select(node, visits, value) for each node on the tree-policy path below the root: among the live
   children of the current node, the one of highest UCT `Q + c * sqrt(ln N_parent / N_child)`
   (`c = cfg.exploration`; an unvisited child scores +inf; ties broken by `rng`).
3. Expand(leaf) and Generate for each child whose state is not yet in the tree (transpositions are
   dropped, so mazes with cycles give a finite tree and the search is complete on finite spaces).
   A generated goal is a Goal event and the search stops there: MCTS returns the first goal that
   enters the tree, not necessarily a shortest path.
4. No new child: DeadEnd(leaf); the leaf is dead, and so is every ancestor whose children are all
   dead; dead nodes are never selected again. Otherwise one child drawn by `rng` is evaluated by
   `cfg.rollouts` random rollouts (uniform legal actions, at most `cfg.rollout_depth` steps, stopping
   at a goal or a state without actions); `cfg.rollouts == 0` evaluates the child itself (a
   Rollout with no actions).
5. Backup(node, visits, value) from that child up to the root: visits + 1, and the mean value
   updated with the iteration's reward, the mean of its rollout rewards.

Reward of a rollout ending in state s (`rollout_reward`): 1 if s is a goal, else 0.5 / (1 + h(s)) with
the problem's "default" heuristic, rounded to 3 decimals. Rewards and sums are kept in thousandths
(integers) so that the replay validator can check the written values; events carry values rounded
to the 3 decimals the trace shows.

Node ids are "n0" (root), "n1", ... in generation order. `cfg.node_budget` caps Expand events;
`meta["stopped"]` is "goal", "budget" or "exhausted" (the root is dead: no reachable goal).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from metacot_core.problems.base import Problem
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Backtrack, Backup, DeadEnd, Expand, Generate, Goal, Rollout, Select
from metacot_core.search.result import SearchResult

ROOT = "n0"


def rollout_reward_milli(problem: Problem, state: Any) -> int:
    """The reward of ending a rollout in `state`, in thousandths (see the module docstring)."""
    if problem.is_goal(state):
        return 1000
    h = float(problem.heuristic(state, "default"))
    if not math.isfinite(h):
        return 0
    return round(500.0 / (1.0 + max(h, 0.0)))


def mean_milli(total_milli: int, visits: int) -> float:
    """Exact mean value of a node whose rewards sum to `total_milli` thousandths (0 when unvisited)."""
    return total_milli / visits / 1000.0 if visits else 0.0


def written(value: float) -> float:
    """`value` at the 3 decimals traces show, so events and parsed text compare equal."""
    return float(f"{value:.3f}")


@dataclass(slots=True, eq=False)
class _Node:
    id: str
    state: Any
    parent: _Node | None
    action: Any
    children: list[_Node] | None = None  # None until expanded
    visits: int = 0
    total_milli: int = 0
    dead: bool = False

    @property
    def value(self) -> float:
        return mean_milli(self.total_milli, self.visits)


def mcts(problem: Problem, cfg: SearchConfig, rng: random.Random | None = None) -> SearchResult:
    """UCT search; see the module docstring for the exact iteration, reward and stopping rules."""
    rng = rng if rng is not None else random.Random(0)
    result = SearchResult(algorithm="mcts", meta={"iterations": 0})
    events = result.events
    root = _Node(ROOT, problem.initial_state(), None, None)
    if problem.is_goal(root.state):
        return _goal(problem, result, root)
    seen = {root.state}
    next_id = 1
    while True:
        if root.dead:
            result.meta["stopped"] = "exhausted"
            return result
        if result.n_expanded >= cfg.node_budget:
            result.meta["stopped"] = "budget"
            return result
        if result.meta["iterations"]:
            events.append(Backtrack(node=ROOT))
        result.meta["iterations"] += 1
        leaf = _select(root, cfg.exploration, rng, events)
        events.append(Expand(node=leaf.id, state=leaf.state))
        result.n_expanded += 1
        leaf.children = []
        for action in problem.actions(leaf.state):
            state = problem.apply(leaf.state, action)
            if state in seen:
                continue
            seen.add(state)
            child = _Node(f"n{next_id}", state, leaf, action)
            next_id += 1
            leaf.children.append(child)
            events.append(Generate(node=child.id, parent=leaf.id, action=action, state=state))
            result.n_generated += 1
            if problem.is_goal(state):
                return _goal(problem, result, child)
        if not leaf.children:
            events.append(DeadEnd(node=leaf.id, state=leaf.state, reason="no new state"))
            _mark_dead(leaf)
            continue
        target = rng.choice(leaf.children)
        reward = _evaluate(problem, target, cfg, rng, events)
        _backup(target, reward, events)


def _select(root: _Node, c: float, rng: random.Random, events: list) -> _Node:
    node = root
    while node.children is not None:
        live = [child for child in node.children if not child.dead]
        log_n = math.log(node.visits) if node.visits > 0 else 0.0
        best: list[_Node] = []
        best_score = -math.inf
        for child in live:
            score = math.inf if child.visits == 0 else child.value + c * math.sqrt(log_n / child.visits)
            if score > best_score:
                best, best_score = [child], score
            elif score == best_score:
                best.append(child)
        node = best[0] if len(best) == 1 else rng.choice(best)
        events.append(Select(node=node.id, visits=node.visits, value=written(node.value)))
    return node


def _evaluate(problem: Problem, target: _Node, cfg: SearchConfig, rng: random.Random, events: list) -> int:
    """Run the rollouts from `target`; returns the iteration's reward in thousandths."""
    rewards = []
    for _ in range(max(cfg.rollouts, 1)):
        actions, end = ([], target.state) if cfg.rollouts == 0 else _rollout(problem, target.state, cfg, rng)
        reward = rollout_reward_milli(problem, end)
        rewards.append(reward)
        events.append(Rollout(node=target.id, actions=tuple(actions), reward=reward / 1000.0))
    return round(sum(rewards) / len(rewards))


def _rollout(problem: Problem, state: Any, cfg: SearchConfig, rng: random.Random) -> tuple[list, Any]:
    actions = []
    for _ in range(cfg.rollout_depth):
        if problem.is_goal(state):
            break
        legal = problem.actions(state)
        if not legal:
            break
        action = rng.choice(legal)
        actions.append(action)
        state = problem.apply(state, action)
    return actions, state


def _backup(node: _Node | None, reward_milli: int, events: list) -> None:
    while node is not None:
        node.visits += 1
        node.total_milli += reward_milli
        events.append(Backup(node=node.id, visits=node.visits, value=written(node.value)))
        node = node.parent


def _mark_dead(node: _Node | None) -> None:
    while node is not None and node.children is not None and all(c.dead for c in node.children):
        node.dead = True
        node = node.parent


def _goal(problem: Problem, result: SearchResult, node: _Node) -> SearchResult:
    result.events.append(Goal(node=node.id, state=node.state))
    steps = []
    while node.parent is not None:
        steps.append((node.parent.state, node.action))
        node = node.parent
    steps.reverse()
    result.solution = [a for _, a in steps]
    result.solution_text = [problem.render_action(s, a) for s, a in steps]
    result.meta["stopped"] = "goal"
    return result
