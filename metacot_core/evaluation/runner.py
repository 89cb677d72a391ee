"""The evaluation pipeline without orchestration: dataset rows -> completions -> records -> summary.

`load_items` reads the problems of the evaluated splits; `evaluate_items` decodes, judges every
completion, runs the teacher strategies and builds one record per completion; `summarize` turns
records into per-split metrics. tasks/evaluate.py wraps these steps for Prefect and MLflow.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from metacot_core.evaluation.config import EvalConfig
from metacot_core.evaluation.generate import Completion, default_stop_strings, generate
from metacot_core.evaluation.judge import Judgement, join_prompt, judge
from metacot_core.evaluation.metrics import alignment, split_metrics
from metacot_core.evaluation.teacher import StrategyRun, check_tree, run_strategies
from metacot_core.problems.base import Problem
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Event


@dataclass(slots=True)
class EvalItem:
    """One problem to evaluate, with what the dataset says about its teacher trace."""

    problem_id: str
    split: str
    domain: str
    format: str
    instance: dict[str, Any]
    prompt: str
    problem: Problem
    teacher_row: dict[str, Any] = field(default_factory=dict)


def available_splits(dataset: str | Path) -> list[str]:
    """Split names present in a dataset folder."""
    from metacot_core.data.reader import iter_batches

    seen: list[str] = []
    for batch in iter_batches(dataset, columns=["split"]):
        for name in batch.column("split").to_pylist():
            if name not in seen:
                seen.append(name)
    return seen


def item_from_row(row: dict[str, Any], fmt: str | None = None) -> EvalItem:
    """An EvalItem from a dataset row (canonical columns); raises ValueError naming the problem."""
    from metacot_core.registry import get_domain

    instance = row["instance"]
    if isinstance(instance, str):
        instance = json.loads(instance)
    problem = get_domain(row["domain"]).from_instance(instance)
    teacher = {k: row.get(k) for k in ("solved", "n_expanded", "n_trace_tokens", "algorithm", "strategy")}
    return EvalItem(str(row["problem_id"]), str(row["split"]), str(row["domain"]), fmt or str(row["format"]),
                    instance, str(row["prompt"]), problem, teacher)


def load_items(dataset: str | Path, splits: Sequence[str] | None = None, max_problems: int | None = None,
               fmt: str | None = None) -> list[EvalItem]:
    """Problems of `splits` (default: every split but train), first `max_problems` of each, one per id."""
    from metacot_core.data.reader import iter_rows

    chosen = list(splits) if splits else [s for s in available_splits(dataset) if s != "train"]
    if not chosen:
        raise ValueError(f"{dataset}: no split to evaluate (only train found; pass --split train to use it)")
    items: list[EvalItem] = []
    for split in chosen:
        seen: set[str] = set()
        for row in iter_rows(dataset, split=split):
            if max_problems is not None and len(seen) >= max_problems:
                break
            if row["problem_id"] in seen:
                continue
            seen.add(row["problem_id"])
            items.append(item_from_row(row, fmt))
        if not seen:
            raise ValueError(f"{dataset}: split {split!r} has no rows")
    return items


def parse_prefix(fmt: Any, text: str) -> list[Event]:
    """Events of the longest line prefix of `text` that the format can parse (garbage tails cut off)."""
    lines = text.splitlines(keepends=True)

    def attempt(n: int) -> list[Event] | None:
        try:
            return list(fmt.parse("".join(lines[:n])))
        except Exception:  # noqa: BLE001 - any parser failure means "not this prefix"
            return None

    full = attempt(len(lines))
    if full is not None:
        return full
    lo, hi, best = 0, len(lines) - 1, []
    while lo <= hi:  # parseability is close to monotone in the prefix length: bisect on it
        mid = (lo + hi) // 2
        events = attempt(mid)
        if events is None:
            hi = mid - 1
        else:
            best, lo = events, mid + 1
    return best


def _model_states(item: EvalItem, fmt: Any, completion: Completion) -> tuple[set, int]:
    events = parse_prefix(fmt, join_prompt(item.prompt, completion.text))
    check = check_tree(item.problem, events)
    return check.states, check.illegal


def _maze_reference(item: EvalItem, count_tokens: Callable[[str], int] | None) -> dict[str, Any]:
    """Optimal plan length (A*) and A* trace length in tokens, for SWC and ILR."""
    from metacot_core.registry import get_format, get_search

    try:
        result = get_search("astar")(item.problem, SearchConfig(algorithm="astar", node_budget=10**7),
                                     random.Random(0))
    except Exception as err:  # noqa: BLE001
        return {"maze_error": f"astar: {type(err).__name__}: {err}"}
    if not result.solved:
        return {}
    out: dict[str, Any] = {"optimal_length": len(result.solution_text or result.solution or [])}
    if count_tokens is not None:
        try:
            out["astar_tokens"] = count_tokens(get_format("astar").linearize(item.problem, result))
        except Exception as err:  # noqa: BLE001
            out["maze_error"] = f"astar trace: {type(err).__name__}: {err}"
    return out


def make_record(item: EvalItem, completion: Completion, judgement: Judgement, illegal: int) -> dict[str, Any]:
    v = judgement.verdict
    return {
        "problem_id": item.problem_id,
        "split": item.split,
        "domain": item.domain,
        "format": item.format,
        "instance": json.dumps(item.instance, sort_keys=True),
        "prompt": item.prompt,
        "completion": completion.text,
        "sample_index": completion.sample_index,
        "n_tokens": completion.n_tokens,
        "truncated": completion.truncated,
        "stop": completion.stop,
        "label": judgement.label,
        "solved": bool(v.solved),
        "valid": bool(v.valid),
        "reason": v.reason.value if v.reason else None,
        "step": v.step,
        "detail": v.detail,
        "states_visited": int(v.states_visited),
        "n_events": int(v.n_events),
        "solution": list(v.solution) if v.solution else None,
        "plan_length": len(v.solution) if v.solved and v.solution else None,
        "illegal_states": illegal,
        "teacher_row_solved": item.teacher_row.get("solved"),
        "teacher_n_expanded": item.teacher_row.get("n_expanded"),
        "teacher_trace_tokens": item.teacher_row.get("n_trace_tokens"),
        "teacher_algorithm": item.teacher_row.get("strategy") or item.teacher_row.get("algorithm"),
    }


def evaluate_items(model: Any, tokenizer: Any, items: Sequence[EvalItem], cfg: EvalConfig,
                   progress: bool | None = None) -> list[dict[str, Any]]:
    """One record per completion: decode, judge, hallucinated states, teacher runs, alignment, maze refs."""
    from metacot_core.registry import get_format

    show = cfg.progress if progress is None else progress
    records: list[dict[str, Any]] = []
    for fmt_name in sorted({it.format for it in items}):
        group = [it for it in items if it.format == fmt_name]
        fmt = get_format(fmt_name)
        completions = generate(model, tokenizer, [it.prompt for it in group], cfg.generation,
                               stop_strings=default_stop_strings(fmt_name), progress=show)
        n = cfg.generation.n_samples
        for i, item in enumerate(tqdm(group, desc=f"judge {fmt_name}", unit="problem", disable=not show)):
            teacher = _teacher_fields(item, cfg) if cfg.teacher.enabled else {}
            maze = _maze_reference(item, _token_counter(tokenizer)) if _is_maze(item, cfg) else {}
            for completion in completions[i * n:(i + 1) * n]:
                verdict = judge(item.problem, fmt, completion.text, completion.truncated, item.prompt)
                states, illegal = _model_states(item, fmt, completion)
                record = make_record(item, completion, verdict, illegal)
                record.update(maze)
                if teacher:
                    runs: list[StrategyRun] = teacher["runs"]
                    record["teacher"] = {r.label: {"solved": r.solved, "n_expanded": r.n_expanded}
                                         for r in runs}
                    if cfg.alignment:
                        record["alignment"] = {r.label: alignment(states, r.states) for r in runs if r.states}
                records.append(record)
    return records


def _teacher_fields(item: EvalItem, cfg: EvalConfig) -> dict[str, Any]:
    return {"runs": run_strategies(item.problem, cfg.teacher.strategies(), cfg.teacher.seed)}


def _is_maze(item: EvalItem, cfg: EvalConfig) -> bool:
    return cfg.mode == "maze" or (cfg.mode is None and item.domain == "maze")


def _token_counter(tokenizer: Any) -> Callable[[str], int]:
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def summarize(records: Sequence[dict[str, Any]], cfg: EvalConfig) -> dict[str, Any]:
    """Per-split metrics plus the settings that produced them."""
    splits: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        splits.setdefault(rec["split"], []).append(rec)
    return {
        "splits": {
            name: split_metrics(recs, cfg.pass_k, maze=any(r.get("optimal_length") is not None for r in recs))
            for name, recs in splits.items()
        },
        "n_completions": len(records),
        "checkpoint": cfg.checkpoint,
        "dataset": cfg.dataset,
        "generation": cfg.generation.model_dump(),
    }
