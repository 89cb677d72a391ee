"""Answer-only correctness, the way Stream of Search scores Countdown: is the path to the claimed goal
a correct solution, whatever else the trace got wrong?

The strict judge (`judge.py`) replays every line and calls an output solved only when every state it
wrote is legal and the goal is real. SoS's reported solve rates (e.g. 51% vs 26%) check only the
operations on the path to "Goal Reached". Both are reported (`solve_rate` and `answer_rate`), so a
model whose search wanders through illegal states but lands on a right answer shows up as such.
`CountdownProblem.read_answer` hands `countdown_answer` to the generic score (evaluation/answer_only.py).
"""

from __future__ import annotations

import re

_GOAL = re.compile(r"^\s*([0-9]{1,30}),([0-9]{1,30}) equal: Goal Reached\s*$")
_EXPLORE = re.compile(r"^\s*Exploring Operation: ([^,]{1,100}), Resulting Numbers: \[[0-9, ]*\]\s*$")
_STATE_OPS = re.compile(r"^\s*Current State: [0-9]{1,30}:\[[0-9, ]*\], Operations: \[(.*)\]\s*$")
_OP_ITEM = re.compile(r"'([^']*)'")


def countdown_answer(text: str) -> list[str] | None:
    """The operations on the path to the first "Goal Reached" line of a sos/solution trace, or None.

    The path is the Operations list of the last "Current State" line before the goal plus the
    operation explored right before it (the same lines SoS's `metric_fn` reads).
    """
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not _GOAL.match(line) or i == 0:
            continue
        explored = _EXPLORE.match(lines[i - 1])
        if explored is None:
            return None
        ops: list[str] = []
        for previous in reversed(lines[: i - 1]):
            state = _STATE_OPS.match(previous)
            if state is not None:
                ops = _OP_ITEM.findall(state.group(1))
                break
        return [*ops, explored.group(1).strip()]
    return None
