"""Typed search settings, and the strategy mix sampled per problem (Stream of Search's recipe)."""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from metacot_core import registry


class SearchConfig(BaseModel):
    """One search strategy. Fields an algorithm does not use are ignored by it."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str = Field(
        "dfs", description="bfs, dfs, beam (best-first of width b), astar, mcts, or a registered plugin"
    )
    heuristic: str = Field("default", description="heuristic name the domain knows (countdown: sum, mult)")
    beam_width: int = Field(1, ge=1, description="beam / best-first width b")
    node_budget: int = Field(10_000, ge=1, description="max nodes expanded before the search gives up")
    prune_threshold: float | None = Field(
        None, description="DFS: skip children whose heuristic exceeds this (Countdown: the target)"
    )
    tie_breaking: Literal["deterministic", "random"] = Field(
        "deterministic", description="A*: random tie-breaking gives Searchformer's nondeterministic A*"
    )
    exploration: float = Field(1.41, ge=0.0, description="MCTS UCT exploration constant c")
    rollouts: int = Field(1, ge=0, description="MCTS random rollouts per expansion")
    rollout_depth: int = Field(50, ge=1, description="MCTS max steps per rollout")
    weight: float = Field(1.0, gt=0.0, description="sampling weight inside a StrategyMix")

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, name: str) -> str:
        known = registry.names("search")
        if name not in known:
            raise ValueError(f"unknown search algorithm {name!r}; known: {', '.join(known)}")
        return name

    @property
    def label(self) -> str:
        """Short name of the strategy, e.g. dfs-sum, beam3-mult, astar, mcts."""
        base = f"beam{self.beam_width}" if self.algorithm == "beam" else self.algorithm
        return base if self.heuristic == "default" else f"{base}-{self.heuristic}"


class StrategyMix(BaseModel):
    """A weighted set of strategies; each problem draws one (SoS: DFS or beam b in 1..5, sum or mult)."""

    model_config = ConfigDict(extra="forbid")

    strategies: list[SearchConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive_total(self) -> StrategyMix:
        if sum(s.weight for s in self.strategies) <= 0:
            raise ValueError("strategies: weights must sum to a positive number")
        return self

    def sample(self, rng: random.Random) -> SearchConfig:
        if len(self.strategies) == 1:
            return self.strategies[0]
        return rng.choices(self.strategies, weights=[s.weight for s in self.strategies], k=1)[0]


def sos_mix(node_budget: int = 10_000) -> StrategyMix:
    """Stream of Search's mix: DFS or beam (b = 1..5), each with the sum or the multiply heuristic.

    Weights as SoS draws them: DFS or beam with probability 1/2 each, then b uniform in 1..5, so DFS
    weighs 5 against 1 per beam width. DFS leaves `prune_threshold` None: Countdown then prunes at its
    target, as SoS does (see search/dfs.py).
    """
    strategies = []
    for heuristic in ("sum", "mult"):
        strategies.append(
            SearchConfig(algorithm="dfs", heuristic=heuristic, node_budget=node_budget, weight=5.0)
        )
        for width in range(1, 6):
            strategies.append(
                SearchConfig(algorithm="beam", heuristic=heuristic, beam_width=width, node_budget=node_budget)
            )
    return StrategyMix(strategies=strategies)
