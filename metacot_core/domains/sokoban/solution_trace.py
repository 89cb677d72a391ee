"""The plan-only control for Sokoban: Searchformer's "solution only" sequences, `plan x y` lines.

The Domain names it as its `solution_format`, so the generic `solution` format hands Sokoban problems
to it (and, to parse a text without a problem, asks `claims`).

The plan is A*'s optimal plan (run here when the result passed in is not already an A* solution),
written as the player's cells from the start to the goal, the start included, exactly as the plan
part of the A* trace. `replay` judges a plan-only text with the same rules (astar_trace.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from metacot_core.domains.sokoban.astar_trace import internal_error, linearize_plan, parse_steps, replay_text
from metacot_core.domains.sokoban.problem import SokobanProblem
from metacot_core.problems.base import UnsolvableProblemError
from metacot_core.search.astar import astar
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Event, Goal
from metacot_core.search.result import SearchResult
from metacot_core.traces.base import TraceParseError, Verdict

PLAN_BUDGET = 200_000  # A* closes allowed when the plan must be found here


class SokobanSolutionFormat:
    """`plan x y` lines alone (see the module docstring)."""

    name: ClassVar[str] = "solution"
    domains: ClassVar[tuple[str, ...]] = ("sokoban",)

    def claims(self, text: str) -> bool:
        """Whether `text` is written in these words: Sokoban's prompt or a plan line first (a bare plan
        reads the same as a maze's, and parses to the same Goal event either way)."""
        return text.lstrip().startswith(("worker", "plan"))

    def prompt(self, problem: SokobanProblem) -> str:
        return problem.searchformer_prompt()

    def linearize(self, problem: SokobanProblem, result: SearchResult) -> str:
        text = linearize_plan(problem, optimal_result(problem, result))
        if not text:
            raise UnsolvableProblemError(f"sokoban: no plan for {problem!r}")
        return text

    def parse(self, text: str) -> list[Event]:
        """One Goal event, on the plan's last cell (a plan-only text names no full state)."""
        steps, error = parse_steps(text)
        if error is not None:
            raise TraceParseError(error)
        cells = [s.cell for s in steps if s.kind == "plan"]
        if len(cells) != len(steps):
            raise TraceParseError("solution format: only plan steps are allowed")
        return [Goal(node=f"{cells[-1][0]},{cells[-1][1]}", state=cells[-1])] if cells else []

    def replay(self, problem: SokobanProblem, text: Any) -> Verdict:
        try:
            return replay_text(problem, text, plan_only=True)
        except Exception as err:  # noqa: BLE001 - the judge must answer on any input
            return internal_error(err)


def optimal_result(problem: SokobanProblem, result: SearchResult) -> SearchResult:
    """`result` when it is an A* solution (optimal), else a fresh deterministic A* run."""
    if result.solved and result.algorithm.startswith("astar"):
        return result
    return astar(problem, SearchConfig(algorithm="astar", node_budget=PLAN_BUDGET))
