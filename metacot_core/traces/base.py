"""The trace-format contract and the verdict the replay validator returns.

A format turns a SearchResult into text (`linearize`), text back into events (`parse`), and judges any
text against a problem's rules (`replay`). `replay` is the one judge for teacher traces, imported
traces and model output, so it must never raise: garbage gets a verdict, not an exception.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from metacot_core.ascii_text import first_foreign_char
from metacot_core.problems.base import Problem
from metacot_core.search.events import Event
from metacot_core.search.result import SearchResult


class TraceParseError(ValueError):
    """Text that does not follow a format's grammar (parse only; replay turns it into a verdict)."""


class Reason(StrEnum):
    """Why a trace is not a valid solved search (None in a Verdict means valid and solved)."""

    EMPTY = "empty"
    UNPARSEABLE = "unparseable"  # a line that follows no rule of the grammar
    ILLEGAL_STEP = "illegal_step"  # an action the rules do not allow from that state
    WRONG_ARITHMETIC = "wrong_arithmetic"  # the written result of an operation is wrong
    UNKNOWN_NUMBER = "unknown_number"  # used a number (or cell) that is not available in that state
    WRONG_STATE = "wrong_state"  # the written resulting state does not match the action's result
    BAD_JUMP = "bad_jump"  # moves to a node that was never generated
    FALSE_GOAL = "false_goal"  # claims a goal on a non-goal state
    WRONG_COST = "wrong_cost"  # A*: g or h written wrong
    NO_GOAL = "no_goal_claimed"  # every step legal, but no goal reached
    SOLUTION_INVALID = "solution_invalid"  # the final solution does not verify
    TRUNCATED = "ran_out_of_tokens"  # set by the evaluator when generation hit max tokens


@dataclass(slots=True)
class Verdict:
    """The judgement of one trace.

    valid: every step follows the rules (a search that legally gives up is valid but not solved).
    solved: valid, a goal was claimed on a real goal, and the extracted solution verifies.
    step: index (0-based, in events) of the first illegal step, when there is one.
    """

    valid: bool
    solved: bool
    reason: Reason | None = None
    step: int | None = None
    detail: str = ""
    states_visited: int = 0
    n_events: int = 0
    solution: list[str] | None = None
    visited: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reason"] = self.reason.value if self.reason else None
        return out


class TraceFormat(Protocol):
    """A named text format for search traces."""

    name: ClassVar[str]
    domains: ClassVar[tuple[str, ...]]

    def prompt(self, problem: Problem) -> str:
        """What the model is given; the trace continues it (training text = prompt + trace)."""
        ...

    def linearize(self, problem: Problem, result: SearchResult) -> str:
        """The trace text (without the prompt) for a search result."""
        ...

    def parse(self, text: str) -> list[Event]:
        """Events from a trace text (with or without the prompt); raises TraceParseError."""
        ...

    def replay(self, problem: Problem, text: str) -> Verdict:
        """Check every step of `text` against the problem's rules. Never raises."""
        ...


def unreadable(problem: Problem, text: Any) -> Verdict | None:
    """The verdict on text a built-in judge refuses before parsing (too long, or holding a character
    no format writes), else None."""
    return too_long(problem, text) or foreign_characters(text)


def too_long(problem: Problem, text: Any) -> Verdict | None:
    """The verdict on text longer than the domain's `max_trace_chars`, else None: checked first, so a
    huge input costs a len() and nothing more."""
    limit = getattr(problem, "max_trace_chars", None)
    if not isinstance(text, str | bytes) or limit is None or len(text) <= limit:
        return None
    return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE,
                   detail=f"trace: {len(text)} characters, above the limit of {limit} for "
                          f"{getattr(problem, 'domain', 'this domain')}")


def foreign_characters(text: Any) -> Verdict | None:
    """The verdict on text holding a character no format writes, else None. The grammars are ASCII, so
    a trace with an Arabic-Indic digit or a zero-width space is not the trace it looks like."""
    found = first_foreign_char(text) if isinstance(text, str) else None
    if found is None:
        return None
    offset, char = found
    return Verdict(valid=False, solved=False, reason=Reason.UNPARSEABLE,
                   detail=f"character U+{ord(char):04X} at offset {offset}: the trace grammar is ASCII")
