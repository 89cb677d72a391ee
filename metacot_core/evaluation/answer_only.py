"""Answer-only correctness: is the final answer an output claims right, whatever else it got wrong?

The strict judge (`judge.py`) calls an output solved only when every line it wrote is legal and the
goal is real. Stream of Search's reported Countdown solve rates check only the answer (the operations
on the path to "Goal Reached"). Both are reported (`solve_rate` and `answer_rate`); which part of an
output is its answer is the domain's business: the problem's `read_answer(text)` hook.
"""

from __future__ import annotations

from typing import Any


def answer_solved(problem: Any, text: str, strict_solved: bool) -> bool | None:
    """True when the output's final answer verifies by the problem's rules. Never raises.

    A domain without `read_answer` has no answer apart from the whole output (a maze plan is the
    output): None, so no answer rate is reported for it.
    """
    read = getattr(problem, "read_answer", None)
    if read is None:
        return None
    if strict_solved:
        return True
    if not isinstance(text, str):
        return False
    try:
        answer = read(text)
        return bool(answer) and bool(problem.verify(answer))
    except Exception:  # noqa: BLE001 - a malformed answer is a wrong answer
        return False
