"""The `solution` format: the optimal-path control, the solution alone in the domain's own words.

What a solution-only trace looks like depends on the domain (Countdown: Stream of Search's optimal
path; mazes: Searchformer's `plan x y` lines), so this format holds no text of its own: it hands each
problem to the writer its Domain names as `solution_format` (an object with the TraceFormat methods
and `claims(text)`). `parse` gets no problem, so it asks every registered domain's writer which one
the text is written in.
"""

from __future__ import annotations

from typing import Any, ClassVar

from metacot_core.problems.base import Problem
from metacot_core.search.events import Event
from metacot_core.search.result import SearchResult
from metacot_core.traces.astar import internal_error
from metacot_core.traces.base import TraceParseError, Verdict


class SolutionFormat:
    """Solution-only traces, written by the problem's domain (see the module docstring)."""

    name: ClassVar[str] = "solution"
    domains: ClassVar[tuple[str, ...]] = ("countdown", "maze")

    def prompt(self, problem: Problem) -> str:
        return solution_writer(problem).prompt(problem)

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        return solution_writer(problem).linearize(problem, result)

    def parse(self, text: str) -> list[Event]:
        """Events of a solution text, parsed by the domain writer that claims it."""
        if not isinstance(text, str):
            raise TraceParseError(f"expected text, got {type(text).__name__}")
        if not text.strip():
            return []
        for writer in _all_writers():
            if writer.claims(text):
                return writer.parse(text)
        raise TraceParseError(f"no domain writes a solution text that starts {text.lstrip()[:40]!r}")

    def replay(self, problem: Problem, text: str) -> Verdict:
        try:
            writer = solution_writer(problem)
        except Exception as err:  # noqa: BLE001 - replay judges any input; a domain without a writer too
            return internal_error(err)
        return writer.replay(problem, text)


def domain_writer(domain: Any) -> Any:
    """A Domain's `solution_format`: the writer itself, or its import path ("module:Class", resolved
    here, so a domain package whose writer imports its problem module needs no import back), or None."""
    writer = getattr(domain, "solution_format", None)
    if isinstance(writer, str):
        from metacot_core.registry import load_path

        writer = load_path(writer)
    return writer


def solution_writer(problem: Problem) -> Any:
    """The solution-only writer of the problem's domain; ValueError when the domain has none."""
    from metacot_core.registry import get_domain

    writer = domain_writer(get_domain(problem.domain))
    if writer is None:
        raise ValueError(f"solution format: domain {problem.domain!r} names no solution_format")
    return writer


def _all_writers() -> list[Any]:
    from metacot_core import registry

    writers = []
    for name in registry.names("domains"):
        try:
            writer = domain_writer(registry.get_domain(name))
        except Exception:  # noqa: BLE001 - a broken plugin must not stop parsing the others' texts
            continue
        if writer is not None:
            writers.append(writer)
    return writers
