"""A tiny plugin (domain + search + format) registered through the public registry functions.

It proves a domain added from outside metacot_core gets dataset generation for free, and lets the
data tests run without the built-in domains. Reach `target` from 0 with +1 and *2 (cheap search).
The search registers under the name "bfs" because SearchConfig only accepts the built-in
algorithm names, so importing this module registers nothing: tests use the `toy` fixture (which
restores the registry afterwards) and configs name `toy_plugin_register` as their plugin module,
which registers on import (that is what a Ray worker does).
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from metacot_core import registry
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Expand, Generate, Goal
from metacot_core.search.result import SearchResult
from metacot_core.traces.base import Reason, Verdict


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_target: int = Field(20, ge=1)


class ToyProblem:
    domain: ClassVar[str] = "toy"

    def __init__(self, target: int) -> None:
        self.target = target

    def initial_state(self) -> int:
        return 0

    def actions(self, state: int) -> Sequence[str]:
        return [] if state > self.target else ["+1", "*2"]

    def apply(self, state: int, action: str) -> int:
        return state + 1 if action == "+1" else state * 2

    def is_goal(self, state: int) -> bool:
        return state == self.target

    def heuristic(self, state: int, name: str = "default") -> float:
        return abs(self.target - state)

    def cost(self, state: int, action: str) -> float:
        return 1.0

    def render_state(self, state: int) -> str:
        return str(state)

    def render_action(self, state: int, action: str) -> str:
        return f"{state}{action}={self.apply(state, action)}"

    def verify(self, solution: Sequence[str]) -> bool:
        state = 0
        for step in solution:
            head, _, result = step.partition("=")
            action = "+1" if "+1" in head else "*2"
            if head != f"{state}{action}" or int(result) != self.apply(state, action):
                return False
            state = self.apply(state, action)
        return state == self.target

    def to_instance(self) -> dict[str, Any]:
        return {"target": self.target}


CRASH_ENV = "METACOT_TOY_CRASH_ONCE"


def _crash_once(split: str, index: int) -> None:
    """Kill the whole worker process the first time train problem 5 is drawn, when the test asks
    (env var naming a marker file): what a Ray worker lost to the OOM killer or a node looks like."""
    marker = os.environ.get(CRASH_ENV)
    if marker and split == "train" and index == 5 and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)


class ToyDomain:
    name: ClassVar[str] = "toy"
    config_cls: ClassVar[type[BaseModel]] = ToyConfig
    splits: ClassVar[tuple[str, ...]] = ("train", "val")

    def make(self, cfg: ToyConfig, split: str, index: int, seed: int) -> ToyProblem:
        _crash_once(split, index)
        rng = random.Random(f"{seed}/{split}/{index}")
        return ToyProblem(rng.randint(1, cfg.max_target))

    def from_instance(self, instance: dict[str, Any]) -> ToyProblem:
        if not isinstance(instance.get("target"), int):
            raise ValueError("toy instance needs an integer 'target'")
        return ToyProblem(instance["target"])


def toy_bfs(problem: ToyProblem, cfg: SearchConfig, rng: random.Random) -> SearchResult:
    """Breadth-first search over any Problem; `rng` shuffles ties so the draw matters."""
    result = SearchResult(algorithm="bfs")
    start = problem.initial_state()
    queue = deque([("0", start, [])])
    seen = {start}
    while queue and result.n_expanded < cfg.node_budget:
        node, state, path = queue.popleft()
        result.events.append(Expand(node, state))
        result.n_expanded += 1
        actions = list(problem.actions(state))
        rng.shuffle(actions)
        for i, action in enumerate(actions):
            child = problem.apply(state, action)
            child_id = f"{node},{i}"
            result.events.append(Generate(child_id, node, action, child))
            result.n_generated += 1
            steps = [*path, problem.render_action(state, action)]
            if problem.is_goal(child):
                result.events.append(Goal(child_id, child))
                result.solution, result.solution_text = steps, steps
                return result
            if child not in seen:
                seen.add(child)
                queue.append((child_id, child, steps))
    return result


class ToyFormat:
    name: ClassVar[str] = "toy"
    domains: ClassVar[tuple[str, ...]] = ("toy",)

    def prompt(self, problem: ToyProblem) -> str:
        return f"reach {problem.target}:"

    def linearize(self, problem: ToyProblem, result: SearchResult) -> str:
        lines = []
        for event in result.events:
            kind = type(event).__name__.lower()
            lines.append(f"{kind} {event.node} {event.state}")
        return "\n".join(lines)

    def parse(self, text: str) -> list[Any]:
        return [line.split() for line in text.splitlines() if line.strip()]

    def replay(self, problem: ToyProblem, text: str) -> Verdict:
        lines = self.parse(text)
        if not lines:
            return Verdict(valid=False, solved=False, reason=Reason.EMPTY)
        last = lines[-1]
        solved = last[0] == "goal" and int(last[-1]) == problem.target
        return Verdict(valid=True, solved=solved, reason=None if solved else Reason.NO_GOAL,
                       n_events=len(lines))


def register() -> None:
    registry.register_domain("toy", ToyDomain())
    registry.register_search("bfs", toy_bfs)
    registry.register_format("toy", ToyFormat())



@pytest.fixture
def toy():
    """Register the toy plugin for one test, then put the registry back as it was."""
    extra = {kind: dict(entries) for kind, entries in registry._EXTRA.items()}
    cache = dict(registry._CACHE)
    register()
    yield
    for kind, entries in extra.items():
        registry._EXTRA[kind].clear()
        registry._EXTRA[kind].update(entries)
    registry._CACHE.clear()
    registry._CACHE.update(cache)
