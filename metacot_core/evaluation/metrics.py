"""Numbers that say whether the model learned to search, computed from per-completion records.

Pure functions over plain dicts (one record per completion, built by evaluation.runner), returning
dicts of metrics, so the same code serves the evaluator, RL logging and notebooks.

Definitions:
- solve rate: share of problems solved (mean over samples when there are several), with a 95% Wilson
  score interval that treats each problem as one trial;
- pass@k: the unbiased estimator of Chen et al. (2021) from n samples with c correct,
  1 - C(n - c, k) / C(n, k), averaged over problems;
- validity: share of traces whose every step follows the rules (a legal search that gives up is valid);
- illegal (hallucinated) states per trace: written states that do not follow from their parent;
- alignment (Stream of Search): |states of model ∩ states of strategy| / max(|model|, |strategy|),
  states being the legal nodes of each trace (Countdown nodes compared as number multisets);
- plans (Searchformer; domains whose problems declare `optimal_plans`, e.g. mazes): optimal rate;
  SWC = mean of c * l* / max(l, l*); ILR = mean of c * t* / t, with c = 1 for a correct plan, l the
  plan length, l* the optimal one, t the model's trace tokens and t* the A* trace's. They sit under
  the summary key "maze" (the name stored runs and results tables already read). A domain with its
  own plan metrics (the Domain's `plan_metrics` hook, e.g. Sokoban's deadlocks and search steps
  against A*) computes that block instead.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (stays inside [0, 1], sane at 0 and n)."""
    if n <= 0:
        return (0.0, 0.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes: {successes} is outside [0, {n}]")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding just inside
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021), as a stable product."""
    if k < 1 or n < 1:
        raise ValueError(f"pass_at_k: need n >= 1 and k >= 1, got n={n}, k={k}")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} is larger than the number of samples n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c={c} is outside [0, {n}]")
    if n - c < k:
        return 1.0
    # 1 - prod_{i = n-c+1}^{n} (1 - k / i)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def alignment(a: Iterable[Any], b: Iterable[Any]) -> float:
    """Stream of Search's node alignment: shared states over the larger state count (0 when both empty)."""
    sa, sb = set(a), set(b)
    larger = max(len(sa), len(sb))
    return len(sa & sb) / larger if larger else 0.0


def swc(correct: Sequence[bool], lengths: Sequence[int | None], optimal: Sequence[int]) -> float:
    """Searchformer's Success Weighted by Cost: mean of c * l* / max(l, l*)."""
    _same_length(correct, lengths, optimal)
    if not correct:
        return 0.0
    total = 0.0
    for c, length, best in zip(correct, lengths, optimal, strict=True):
        if c and length is not None:
            total += best / max(length, best) if max(length, best) > 0 else 1.0
    return total / len(correct)


def ilr(correct: Sequence[bool], trace_tokens: Sequence[int], reference_tokens: Sequence[int]) -> float:
    """Searchformer's Improved Length Ratio: mean of c * t* / t (above 1: shorter traces than A*)."""
    _same_length(correct, trace_tokens, reference_tokens)
    if not correct:
        return 0.0
    total = 0.0
    for c, t, t_star in zip(correct, trace_tokens, reference_tokens, strict=True):
        if c and t > 0:
            total += t_star / t
    return total / len(correct)


def optimal_rate(correct: Sequence[bool], lengths: Sequence[int | None], optimal: Sequence[int]) -> float:
    """Share of problems solved with a plan of optimal length."""
    _same_length(correct, lengths, optimal)
    if not correct:
        return 0.0
    hits = sum(1 for c, n, best in zip(correct, lengths, optimal, strict=True) if c and n == best)
    return hits / len(correct)


def _same_length(*seqs: Sequence[Any]) -> None:
    if len({len(s) for s in seqs}) > 1:
        raise ValueError(f"metric inputs differ in length: {[len(s) for s in seqs]}")


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def by_problem(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by problem_id, in first-seen order, samples in sample order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[rec["problem_id"]].append(rec)
    for recs in groups.values():
        recs.sort(key=lambda r: r.get("sample_index", 0))
    return dict(groups)


def model_metrics(records: Sequence[dict[str, Any]], ks: Sequence[int] = (1,)) -> dict[str, Any]:
    """Solve rate with CI, pass@k, validity, illegal states, states explored and tokens per trace.

    Record keys used: problem_id, sample_index, solved, valid, label, states_visited, n_tokens,
    illegal_states, truncated.
    """
    groups = by_problem(records)
    n_problems = len(groups)
    out: dict[str, Any] = {"n_problems": n_problems, "n_completions": len(records)}
    if not records:
        return out
    per_problem = [_mean(float(r["solved"]) for r in recs) for recs in groups.values()]
    rate = _mean(per_problem)
    low, high = wilson_interval(rate * n_problems, n_problems)
    out.update(solve_rate=rate, solve_rate_ci_low=low, solve_rate_ci_high=high)
    if all(r.get("answer_solved") is not None for r in records):  # SoS's answer-only score (answer.py)
        answer = _mean(_mean(float(r["answer_solved"]) for r in recs) for recs in groups.values())
        a_low, a_high = wilson_interval(answer * n_problems, n_problems)
        out.update(answer_rate=answer, answer_rate_ci_low=a_low, answer_rate_ci_high=a_high)
    n_samples = min(len(recs) for recs in groups.values())
    for k in ks:
        if k <= n_samples:
            out[f"pass@{k}"] = _mean(
                pass_at_k(len(recs), sum(bool(r["solved"]) for r in recs), k) for recs in groups.values()
            )
    out["validity_rate"] = _mean(float(r["valid"]) for r in records)
    out["illegal_states_per_trace"] = _mean(float(r.get("illegal_states", 0)) for r in records)
    out["truncated_rate"] = _mean(float(r.get("truncated", False)) for r in records)
    out["states_explored_mean"] = _mean(float(r.get("states_visited", 0)) for r in records)
    out["tokens_per_trace_mean"] = _mean(float(r.get("n_tokens", 0)) for r in records)
    solved = [r for r in records if r["solved"]]
    out["states_explored_mean_solved"] = _mean(float(r.get("states_visited", 0)) for r in solved)
    out["tokens_per_trace_mean_solved"] = _mean(float(r.get("n_tokens", 0)) for r in solved)
    labels = Counter(r["label"] for r in records)
    out["verdicts"] = {label: count / len(records) for label, count in sorted(labels.items())}
    return out


def teacher_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The model against each teacher strategy on the same problems at the same node budget.

    Record keys used: solved, teacher (dict strategy label -> {"solved", "n_expanded"}),
    alignment (dict strategy label -> float), teacher_row_solved (the dataset trace's outcome).
    Problems count once (their first sample), so "model solves" means its first completion solved.
    """
    firsts = [recs[0] for recs in by_problem(records).values()]
    firsts = [r for r in firsts if r.get("teacher")]
    if not firsts:
        return {}
    n = len(firsts)
    labels = list(firsts[0]["teacher"].keys())
    out: dict[str, Any] = {"n_problems": n, "strategies": {}}
    for label in labels:
        runs = [r["teacher"][label] for r in firsts if label in r["teacher"]]
        out["strategies"][label] = {
            "solve_rate": _mean(float(x["solved"]) for x in runs),
            "n_expanded_mean": _mean(float(x["n_expanded"]) for x in runs),
        }
    any_solves = [any(x["solved"] for x in r["teacher"].values()) for r in firsts]
    model = [bool(r["solved"]) for r in firsts]
    out["teacher_any_solve_rate"] = _mean(float(s) for s in any_solves)
    out["model_only_rate"] = _mean(float(m and not t) for m, t in zip(model, any_solves, strict=True))
    out["teacher_only_rate"] = _mean(float(t and not m) for m, t in zip(model, any_solves, strict=True))
    out["model_only_ids"] = [r["problem_id"] for r, m, t in zip(firsts, model, any_solves, strict=True)
                             if m and not t]
    rows = [r for r in firsts if r.get("teacher_row_solved") is not None]
    if rows:
        out["dataset_teacher_solve_rate"] = _mean(float(r["teacher_row_solved"]) for r in rows)
        out["dataset_teacher_only_rate"] = _mean(
            float(r["teacher_row_solved"] and not r["solved"]) for r in rows)
    aligned = [r for r in firsts if r.get("alignment")]
    if aligned:
        means = {label: _mean(r["alignment"][label] for r in aligned if label in r["alignment"])
                 for label in labels}
        out["alignment"] = means
        out["closest_strategy"] = max(means, key=lambda k: means[k])
        closest = Counter(max(r["alignment"], key=lambda k: r["alignment"][k]) for r in aligned)
        out["closest_strategy_share"] = {k: v / len(aligned) for k, v in closest.most_common()}
    return out


def plan_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Optimal rate, SWC and ILR over problems (first sample each).

    Record keys used: solved, plan_length, optimal_length, n_tokens, astar_tokens.
    """
    firsts = [recs[0] for recs in by_problem(records).values()]
    firsts = [r for r in firsts if r.get("optimal_length") is not None]
    if not firsts:
        return {}
    correct = [bool(r["solved"]) for r in firsts]
    lengths = [r.get("plan_length") for r in firsts]
    optimal = [int(r["optimal_length"]) for r in firsts]
    out = {"optimal_rate": optimal_rate(correct, lengths, optimal), "swc": swc(correct, lengths, optimal)}
    with_ref = [r for r in firsts if r.get("astar_tokens")]
    if with_ref:
        out["ilr"] = ilr([bool(r["solved"]) for r in with_ref], [int(r["n_tokens"]) for r in with_ref],
                         [int(r["astar_tokens"]) for r in with_ref])
    return out


def split_metrics(records: Sequence[dict[str, Any]], ks: Sequence[int] = (1,), plans: bool = False,
                  plan_scorer: Callable[[Sequence[dict[str, Any]]], dict[str, Any]] | None = None
                  ) -> dict[str, Any]:
    """Every metric of one split (`plans`: add the plan metrics under "maze", computed by
    `plan_scorer`, the domain's `plan_metrics` hook, when given, else by `plan_metrics`)."""
    out: dict[str, Any] = {"model": model_metrics(records, ks)}
    teacher = teacher_metrics(records)
    if teacher:
        out["teacher"] = teacher
    if plans:
        out["maze"] = (plan_scorer or plan_metrics)(records)
    return out


def flat_metrics(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested summary as {"a.b.c": value} (what MLflow log_metrics takes)."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}".replace("@", "_at_")
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, int | float) and math.isfinite(value):
            out[name] = float(value)
    return out


def pooled_solves(summary: Mapping[str, Any]) -> dict[str, int]:
    """Strict solves and problems of an evaluation summary, pooled over its splits that have a solve rate."""
    solved = n = 0
    for split in (summary.get("splits") or {}).values():
        model = split.get("model") or {}
        if "solve_rate" not in model or "n_problems" not in model:
            continue
        n += int(model["n_problems"])
        solved += round(float(model["solve_rate"]) * int(model["n_problems"]))
    return {"solved": solved, "n": n}
