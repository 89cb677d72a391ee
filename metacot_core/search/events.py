"""Typed search events: what a search did, step by step, before it becomes text.

Searches emit these; linearizers turn them into trace text; parsers turn text back into them; the
replay validator checks them against a problem's rules. Node ids are strings so that every format can
use its own naming (SoS paths like "0,1,0", A* coordinates, MCTS counters).
States and actions are whatever the problem uses; they must be hashable and comparable with ==.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Expand:
    """The search makes `node` current and is about to generate its children."""

    node: str
    state: Any
    g: float | None = None
    h: float | None = None


@dataclass(frozen=True, slots=True)
class Generate:
    """A child `node` of `parent` was produced by applying `action`."""

    node: str
    parent: str
    action: Any
    state: Any
    g: float | None = None
    h: float | None = None


@dataclass(frozen=True, slots=True)
class DeadEnd:
    """`node` is a leaf that is not a goal (or was pruned); `reason` says why."""

    node: str
    state: Any
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Backtrack:
    """The search jumps to `node`, an earlier generated node that is not a child of the current one."""

    node: str


@dataclass(frozen=True, slots=True)
class Goal:
    """`node` holds a goal state; the search stops here."""

    node: str
    state: Any


@dataclass(frozen=True, slots=True)
class Create:
    """A* put `node` on the open list with cost-so-far g and heuristic h."""

    node: str
    state: Any
    g: float
    h: float
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """A* took `node` from the open list and closed it."""

    node: str
    state: Any
    g: float
    h: float


@dataclass(frozen=True, slots=True)
class Select:
    """MCTS tree policy picked `node` (visits and mean value at the time of selection)."""

    node: str
    visits: int
    value: float


@dataclass(frozen=True, slots=True)
class Rollout:
    """MCTS simulated from `node` with `actions`; `reward` is the outcome."""

    node: str
    actions: tuple[Any, ...]
    reward: float


@dataclass(frozen=True, slots=True)
class Backup:
    """MCTS updated `node` to `visits` visits and mean `value`."""

    node: str
    visits: int
    value: float


Event = Expand | Generate | DeadEnd | Backtrack | Goal | Create | Close | Select | Rollout | Backup


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-friendly dict with the event kind under "type" (for debugging and golden tests)."""
    out = asdict(event)
    out["type"] = type(event).__name__
    return out
