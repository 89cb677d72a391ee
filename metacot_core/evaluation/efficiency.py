"""Efficiency against the teacher: states a model explores per solved problem, beside the teacher mix's.

Per problem the model solves (at least one sample): the states it explored (mean over its solving
samples) against the best teacher strategy on that problem (fewest states among the strategies that
solve it within the node budget) and against the mix's mean (the strategies' weighted mean: what a
search drawn from the mix costs on this problem). A ratio below 1 means the model found the goal in
fewer states. "Beyond the teacher": problems the model solves that no strategy of the mix solves
within the same budget (Stream of Search: 1.35% after SFT, 4.04% after STaR).

Both sides are counted in one unit: the length of the expansion sequence (distinct legal states
expanded, teacher.check_tree), so a model and a strategy that expand the same states score the same.
Tables from before the sequences were recorded fall back to the replay's `states_visited` and the
strategies' `n_expanded`, and say so in `unit`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any

SEQUENCE_UNIT = "expanded states"
FALLBACK_UNIT = "states_visited / n_expanded"


@dataclass(slots=True)
class ProblemEfficiency:
    """One problem: the model's cost where it solves it, the teacher's best and the mix's mean."""

    key: Hashable
    problem_id: str
    model_solved: bool
    model_states: float | None  # mean over solving samples; None when unsolved
    best_strategy: str | None  # fewest states among the strategies that solve it; None if none does
    best_states: int | None
    mix_mean_states: float | None
    beyond_teacher: bool  # the model solves it, no strategy does
    solving_trace: str | None = None  # one solving completion (for the beyond-the-teacher list)

    @property
    def ratio_best(self) -> float | None:
        if self.model_states is None or not self.best_states:
            return None
        return self.model_states / self.best_states

    @property
    def ratio_mix(self) -> float | None:
        if self.model_states is None or not self.mix_mean_states:
            return None
        return self.model_states / self.mix_mean_states

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["key"] = str(self.key)
        out.update(ratio_best=self.ratio_best, ratio_mix=self.ratio_mix)
        return out


@dataclass(slots=True)
class TeacherRun:
    """What efficiency needs of one strategy's run on one problem."""

    strategy: str
    solved: bool
    states: int
    weight: float = 1.0


def teacher_runs_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[TeacherRun]:
    """TeacherRuns from teacher.parquet rows (expansion-sequence lengths)."""
    return [TeacherRun(r["strategy"], bool(r["solved"]), len(r.get("expanded") or ()),
                       float(r.get("weight") or 1.0)) for r in rows]


def teacher_runs_from_json(teacher: Mapping[str, Mapping[str, Any]]) -> list[TeacherRun]:
    """TeacherRuns from a table's `teacher_json` column (older tables: nodes expanded, equal weights)."""
    return [TeacherRun(label, bool(t["solved"]), int(t["n_expanded"])) for label, t in teacher.items()]


def model_states(rec: Mapping[str, Any]) -> int:
    """A completion's explored states in the analysis unit (sequence length, else states_visited)."""
    seq = rec.get("expanded")
    return len(seq) if seq is not None else int(rec.get("states_visited") or 0)


def problem_efficiency(key: Hashable, samples: Sequence[Mapping[str, Any]],
                       runs: Sequence[TeacherRun]) -> ProblemEfficiency:
    """Efficiency of one problem from its samples' records and the teacher's runs on it."""
    solving = [r for r in samples if r.get("solved")]
    states = sum(model_states(r) for r in solving) / len(solving) if solving else None
    solvers = [r for r in runs if r.solved]
    best = min(solvers, key=lambda r: r.states) if solvers else None
    total = sum(r.weight for r in runs)
    mix = sum(r.weight * r.states for r in runs) / total if runs and total > 0 else None
    return ProblemEfficiency(
        key, str(samples[0].get("problem_id", key)) if samples else str(key), bool(solving), states,
        best.strategy if best else None, best.states if best else None, mix,
        bool(solving) and bool(runs) and not solvers,
        solving[0].get("completion") if solving else None)


def summarize(problems: Sequence[ProblemEfficiency], unit: str = SEQUENCE_UNIT) -> dict[str, Any]:
    """Medians and means of the ratios over solved problems, beyond-the-teacher ids and share."""
    solved = [p for p in problems if p.model_solved]
    best = [p.ratio_best for p in solved if p.ratio_best is not None]
    mix = [p.ratio_mix for p in solved if p.ratio_mix is not None]
    out: dict[str, Any] = {"unit": unit, "n_problems": len(problems), "n_solved": len(solved)}
    if solved:
        out["model_states_mean"] = sum(p.model_states or 0.0 for p in solved) / len(solved)
    if best:
        out.update(ratio_best_median=median(best), ratio_best_mean=sum(best) / len(best),
                   fewer_than_best_share=sum(r < 1 for r in best) / len(best))
    if mix:
        out.update(ratio_mix_median=median(mix), ratio_mix_mean=sum(mix) / len(mix),
                   fewer_than_mix_share=sum(r < 1 for r in mix) / len(mix))
    beyond = [p for p in problems if p.beyond_teacher]
    out["beyond_teacher_ids"] = [p.problem_id for p in beyond]
    out["beyond_teacher_share"] = len(beyond) / len(problems) if problems else 0.0
    return out


@dataclass(slots=True)
class Efficiency:
    """Per-problem rows and their summary for one model."""

    problems: list[ProblemEfficiency] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
