"""The outcome of one symbolic search."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metacot_core.search.events import Event


@dataclass(slots=True)
class SearchResult:
    """Events in the order they happened, plus the solution found (if any).

    `solution` holds the actions from the initial state to the goal; `solution_text` the same steps
    rendered the way the dataset stores them (Countdown "72-48=24", maze "3,4").
    `n_expanded` counts nodes the search expanded (its node budget is measured in the same unit).
    """

    algorithm: str
    events: list[Event] = field(default_factory=list)
    solution: list[Any] | None = None
    solution_text: list[str] | None = None
    n_expanded: int = 0
    n_generated: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def solved(self) -> bool:
        return self.solution is not None
