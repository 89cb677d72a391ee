"""Registers the Sokoban domain and its formats with metacot's registry (import this module).

Until the generic formats ask the `Problem` for its prompt, state words and plan, Sokoban's A* and
plan-only formats are registered under their own names, `sokoban-astar` and `sokoban-solution`, and
the generic MCTS format under `sokoban-mcts` (the same class and its generic `problem ...` prompt, with
Sokoban in its domain list).
A config names this module in `plugins:` so that every process (Ray workers too) registers it.
"""

from __future__ import annotations

from typing import ClassVar

from metacot_core import registry
from metacot_core.domains.sokoban.astar_trace import SokobanAstarFormat
from metacot_core.domains.sokoban.generate import SokobanDomain
from metacot_core.domains.sokoban.solution_trace import SokobanSolutionFormat
from metacot_core.traces.mcts import MctsFormat

FORMAT_NAMES = {"sokoban-astar": SokobanAstarFormat, "sokoban-solution": SokobanSolutionFormat}


class SokobanMctsFormat(MctsFormat):
    """The generic MCTS format, allowed for Sokoban (its parser skips only `problem`/`start` prompts)."""

    name: ClassVar[str] = "sokoban-mcts"
    domains: ClassVar[tuple[str, ...]] = ("sokoban",)


def register() -> None:
    """Put the domain and its formats in the registry (idempotent)."""
    registry.register_domain("sokoban", SokobanDomain())
    for name, cls in FORMAT_NAMES.items():
        registry.register_format(name, cls())
    registry.register_format("sokoban-mcts", SokobanMctsFormat())


register()
