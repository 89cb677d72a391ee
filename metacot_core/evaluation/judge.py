"""One verdict per model output: replay every step against the rules, verify the answer, classify failures.

The trace format's `replay` is the judge (the same one that checks teacher traces). This module adds
what only the evaluator knows: whether decoding ran out of tokens, a second check of the final
solution with the problem's own verifier, and a guard so a bug in a validator becomes a verdict
class of its own ("validator_error") instead of crashing an evaluation of thousands of outputs.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from metacot_core.problems.base import Problem
from metacot_core.traces.base import Reason, Verdict, too_long

SOLVED = "solved"
VALIDATOR_ERROR = "validator_error"
INTERNAL_ERROR = "internal error"  # how the built-in formats' replay reports an exception it caught


@dataclass(slots=True)
class Judgement:
    """A verdict plus the evaluator's classification of it.

    label: "solved", a Reason value (e.g. "illegal_step", "ran_out_of_tokens"), or "validator_error".
    A legally given-up search (every step legal, no goal) is labelled "no_goal_claimed".
    """

    verdict: Verdict
    label: str
    truncated: bool = False
    error: str = ""

    @property
    def solved(self) -> bool:
        return self.verdict.solved

    @property
    def valid(self) -> bool:
        return self.verdict.valid

    def to_dict(self) -> dict[str, Any]:
        out = self.verdict.to_dict()
        out.update(label=self.label, truncated=self.truncated, error=self.error)
        return out


def label_of(verdict: Verdict) -> str:
    if verdict.solved:
        return SOLVED
    if verdict.reason is not None:
        return verdict.reason.value
    return Reason.NO_GOAL.value if verdict.valid else Reason.UNPARSEABLE.value


def drop_partial_line(text: str) -> str:
    """Text up to its last newline: the line decoding was cut in the middle of is not the model's error."""
    cut = text.rfind("\n")
    return text[: cut + 1] if cut >= 0 else ""


def join_prompt(prompt: str, text: str) -> str:
    """Prompt and completion as one text for the parser, with a line break where they would fuse
    ("... wall 3 4" + "create 0 0" must not become "4create")."""
    if prompt and text and not prompt[-1].isspace() and not text[0].isspace():
        return f"{prompt}\n{text}"
    return prompt + text


_DIGITS = re.compile(r"[0-9]+")  # ASCII: the grammar writes no other digits


def line_shape(line: str) -> str:
    """A line with every number replaced by "#": the grammar's line kinds, whatever the numbers."""
    return _DIGITS.sub("#", line.strip())


@dataclass(slots=True)
class LineShapes:
    """The line shapes of reference traces (the teacher's), to tell a line cut by the token limit from
    garbage: a cut line is excused only if it could still become a line the format writes."""

    shapes: frozenset[str]
    max_digits: int

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> LineShapes:
        shapes: set[str] = set()
        longest = 1
        for text in texts:
            for line in text.splitlines():
                if line.strip():
                    shapes.add(line_shape(line))
                    longest = max([longest, *(len(m) for m in _DIGITS.findall(line))])
        return cls(frozenset(shapes), longest)

    def could_continue(self, line: str) -> bool:
        """True when `line` is the start of some reference line shape (numbers no longer than seen)."""
        if not line.strip():
            return True
        if any(len(m) > self.max_digits for m in _DIGITS.findall(line)):
            return False
        shape = line_shape(line)
        return any(s.startswith(shape) for s in self.shapes)


def _replay(fmt: Any, problem: Problem, text: str) -> tuple[Verdict | None, str]:
    try:
        verdict = fmt.replay(problem, text)
    except Exception as err:  # noqa: BLE001 - a validator bug must not stop an evaluation
        tb = traceback.format_exception_only(type(err), err)[-1].strip()
        return None, f"validator raised {tb}"
    if not isinstance(verdict, Verdict):
        return None, f"validator returned {type(verdict).__name__}, not a Verdict"
    return verdict, ""


def _check_solution(problem: Problem, verdict: Verdict) -> Verdict:
    """Demote a claimed solve whose solution the problem's own verifier rejects."""
    if not verdict.solved:
        return verdict
    try:
        ok = verdict.solution is not None and bool(problem.verify(verdict.solution))
    except Exception as err:  # noqa: BLE001 - a malformed solution string is a wrong solution
        ok = False
        verdict.detail = f"{verdict.detail}; verify raised {type(err).__name__}: {err}".strip("; ")
    if not ok:
        verdict.solved = False
        verdict.reason = Reason.SOLUTION_INVALID
        verdict.detail = verdict.detail or f"solution {verdict.solution!r} does not verify"
    return verdict


# Failures that running out of tokens explains: the complete lines were legal but unfinished.
CUT_SHORT = frozenset({None, Reason.NO_GOAL, Reason.EMPTY, Reason.UNPARSEABLE, Reason.SOLUTION_INVALID})


def judge(problem: Problem, fmt: Any, text: str, truncated: bool = False, prompt: str = "",
          shapes: LineShapes | None = None) -> Judgement:
    """The verdict on one output (`prompt` + `text`, the way training saw it). Never raises.

    Truncated output that does not solve the problem as it stands is judged on its complete lines
    (the cut line is not the model's error); if those are legal but unfinished, the class is "ran out
    of tokens". An illegal step before the cut keeps its own class: the model had already gone wrong.
    With `shapes`, a cut line that could not become any line of the format (an endless run of digits
    from an untrained model) is not excused: the text is judged as written.
    """
    if not text or not text.strip():
        # Nothing written, so nothing illegal written (a pruned SoS DFS writes nothing either): valid,
        # unsolved, classified "empty".
        return Judgement(Verdict(valid=True, solved=False, reason=Reason.EMPTY, detail="empty output"),
                         Reason.EMPTY.value, truncated=truncated)
    if (refused := too_long(problem, text)) is not None:  # before any parsing, for plugin formats too
        return Judgement(refused, label_of(refused), truncated=truncated)
    verdict, error = _replay(fmt, problem, join_prompt(prompt, text))
    if verdict is not None:
        verdict = _check_solution(problem, verdict)
    cut = text[text.rfind("\n") + 1:]
    excused = shapes is None or shapes.could_continue(cut)
    if truncated and excused and verdict is not None and not verdict.solved:
        verdict, error = _replay(fmt, problem, join_prompt(prompt, drop_partial_line(text)))
        if verdict is not None:
            verdict = _check_solution(problem, verdict)
            if verdict.reason in CUT_SHORT:
                verdict.reason = Reason.TRUNCATED
    if verdict is None:
        failed = Verdict(valid=False, solved=False, reason=None, detail=error)
        return Judgement(failed, VALIDATOR_ERROR, truncated=truncated, error=error)
    if verdict.detail.startswith(INTERNAL_ERROR):  # a validator that caught its own bug
        return Judgement(verdict, VALIDATOR_ERROR, truncated=truncated, error=verdict.detail)
    return Judgement(verdict, label_of(verdict), truncated=truncated)


def judge_many(problems: list[Problem], fmt: Any, texts: list[str], truncated: list[bool],
               prompts: list[str] | None = None, shapes: LineShapes | None = None) -> list[Judgement]:
    """judge() over aligned lists (one problem per output; repeat a problem for its samples)."""
    if not (len(problems) == len(texts) == len(truncated)):
        raise ValueError(f"judge_many: {len(problems)} problems, {len(texts)} texts, {len(truncated)} flags")
    prompts = prompts if prompts is not None else [""] * len(texts)
    rows = zip(problems, texts, truncated, prompts, strict=True)
    return [judge(p, fmt, t, tr, pr, shapes) for p, t, tr, pr in rows]
