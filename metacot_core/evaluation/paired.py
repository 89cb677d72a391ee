"""Two evaluations of the same held-out problems compared problem by problem (exact McNemar test).

Two solve rates with overlapping 95% intervals can still differ for sure when both models were judged
on the very same problems: what counts is how many problems one model solves and the other does not.
The exact McNemar test takes those discordant problems (a-only, b-only) and asks how likely a split at
least that lopsided is if either model were equally likely to be the one that solves (a fair coin):
two-sided binomial p-value. Rows are matched by (split, instance, sample_index), so the two tables
may come from datasets in different trace formats as long as they hold the same problems.

Scores: `solved` (the strict judge) and `answer_solved` (Stream of Search's answer-only score; a
column of tables written since it was added, and only for Countdown).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

SCORES = ("solved", "answer_solved")
ALL = "all"


class CompareError(ValueError):
    """The two tables cannot be compared (missing column, no problem in common)."""


@dataclass(frozen=True)
class Paired:
    """One split (or all of them) of a paired comparison."""

    split: str
    score: str
    n: int
    a_rate: float
    b_rate: float
    a_only: int
    b_only: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: P(a split at least this uneven) under a fair coin."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def table_path(path: str | Path) -> Path:
    """An evaluation folder (with table.parquet) or the table itself."""
    p = Path(path)
    p = p / "table.parquet" if p.is_dir() else p
    if not p.is_file():
        raise CompareError(f"{path}: no evaluation table (table.parquet) there")
    return p


def load_scores(path: str | Path, score: str) -> dict[tuple[str, str, int], bool]:
    """(split, instance, sample) -> score of one evaluation table."""
    if score not in SCORES:
        raise CompareError(f"score: {score!r} is not one of {', '.join(SCORES)}")
    table = pq.read_table(table_path(path))
    if score not in table.column_names or table.column(score).null_count == table.num_rows:
        raise CompareError(f"{path}: the table has no {score!r} scores (evaluate again with this version, "
                           "or compare `solved`)")
    rows = table.select(["split", "instance", "sample_index", score]).to_pylist()
    return {(r["split"], r["instance"], int(r["sample_index"] or 0)): bool(r[score]) for r in rows}


def _paired(split: str, score: str, keys: list[tuple[str, str, int]], a: dict, b: dict) -> Paired:
    a_only = sum(a[k] and not b[k] for k in keys)
    b_only = sum(b[k] and not a[k] for k in keys)
    n = len(keys)
    return Paired(split, score, n, sum(a[k] for k in keys) / n, sum(b[k] for k in keys) / n, a_only, b_only,
                  mcnemar_exact(a_only, b_only))


def compare(path_a: str | Path, path_b: str | Path, score: str = "solved") -> list[Paired]:
    """One result per split both tables hold, then one over all of them (split `all`)."""
    a, b = load_scores(path_a, score), load_scores(path_b, score)
    common = sorted(set(a) & set(b))
    if not common:
        raise CompareError(f"{path_a} and {path_b} share no problem (same split, instance and sample)")
    out = [_paired(split, score, [k for k in common if k[0] == split], a, b)
           for split in sorted({k[0] for k in common})]
    if len(out) > 1:
        out.append(_paired(ALL, score, common, a, b))
    return out


def markdown(results: list[Paired], name_a: str, name_b: str) -> str:
    """The comparison as a markdown table."""
    lines = [f"| split | score | n | {name_a} | {name_b} | {name_a} only | {name_b} only | McNemar p |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.split} | {r.score} | {r.n} | {r.a_rate:.3f} | {r.b_rate:.3f} | {r.a_only} | {r.b_only} "
              f"| {r.p_value:.2g} |" for r in results]
    return "\n".join(lines)
