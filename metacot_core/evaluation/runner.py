"""The evaluation pipeline without orchestration: dataset rows -> completions -> records -> summary.

`load_items` reads the problems of the evaluated splits; `evaluate_items` decodes, judges every
completion, runs the teacher strategies and builds one record per completion; `summarize` turns
records into per-split metrics. tasks/evaluate.py wraps these steps for Prefect and MLflow.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from metacot_core.evaluation.answer_only import answer_solved
from metacot_core.evaluation.config import EvalConfig
from metacot_core.evaluation.fingerprint import key_text
from metacot_core.evaluation.generate import Completion, default_stop_strings, generate, load_checkpoint
from metacot_core.evaluation.judge import Judgement, LineShapes, join_prompt, judge
from metacot_core.evaluation.metrics import alignment, split_metrics
from metacot_core.evaluation.report import write_report
from metacot_core.evaluation.teacher import StrategyRun, TreeCheck, check_tree, run_strategies
from metacot_core.problems.base import Problem, completion_fields, has_optimal_plans
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


def item_from_row(row: dict[str, Any]) -> EvalItem:
    """An EvalItem from a dataset row (canonical columns); raises ValueError naming the problem."""
    from metacot_core.instance_json import loads_instance
    from metacot_core.registry import get_domain

    try:
        instance = row["instance"]
        if isinstance(instance, str):
            instance = loads_instance(instance)  # a 5,000-digit number: one clear line
        problem = get_domain(row["domain"]).from_instance(instance)
    except ValueError as err:  # json.JSONDecodeError is a ValueError too
        raise ValueError(f"{row.get('problem_id')}: cannot rebuild the problem ({err})") from None
    teacher = {k: row.get(k) for k in ("solved", "n_expanded", "n_trace_tokens", "algorithm", "strategy",
                                       "trace")}
    return EvalItem(str(row["problem_id"]), str(row["split"]), str(row["domain"]), str(row["format"]),
                    instance, str(row["prompt"]), problem, teacher)


def load_items(dataset: str | Path, splits: Sequence[str] | None = None, max_problems: int | None = None,
               fmt: str | None = None) -> list[EvalItem]:
    """Problems of `splits` (default: every split but train), the first `max_problems` of each.

    One item per (problem, format): a dataset with the `solution` control rows next to `sos` rows gives
    both, unless `fmt` picks one.
    """
    from metacot_core.data.reader import iter_rows

    chosen = list(splits) if splits else [s for s in available_splits(dataset) if s != "train"]
    if not chosen:
        raise ValueError(f"{dataset}: no split to evaluate (only train found; pass --split train to use it)")
    items: list[EvalItem] = []
    for split in chosen:
        seen: set[tuple[str, str]] = set()
        problems: set[str] = set()
        for row in iter_rows(dataset, split=split, format=fmt):
            key = (row["problem_id"], row["format"])
            if key in seen:
                continue
            full = max_problems is not None and len(problems) >= max_problems
            if full and row["problem_id"] not in problems:
                continue
            seen.add(key)
            problems.add(row["problem_id"])
            items.append(item_from_row(row))
        if not seen:
            where = f" in format {fmt!r}" if fmt else ""
            raise ValueError(f"{dataset}: split {split!r} has no rows{where}")
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


def _model_tree(item: EvalItem, fmt: Any, completion: Completion) -> TreeCheck:
    """The legal states of an output (set and expansion order) and its hallucinated-state count."""
    return check_tree(item.problem, parse_prefix(fmt, join_prompt(item.prompt, completion.text)))


def teacher_rows(runs: Sequence[StrategyRun]) -> list[dict[str, Any]]:
    """The teacher runs of one problem as rows of teacher.parquet (expansion order as key texts)."""
    return [{"strategy": r.label, "algorithm": r.algorithm, "weight": float(r.weight), "solved": r.solved,
             "n_expanded": r.n_expanded, "expanded": [key_text(k) for k in r.expanded], "error": r.error}
            for r in runs]


def _plan_reference(item: EvalItem, count_tokens: Callable[[str], int] | None) -> dict[str, Any]:
    """Optimal plan length (A*) and A* trace length in tokens, for SWC and ILR.

    The problem's `eval_reference` hook gives them (and whatever else its `plan_metrics` compares
    with, e.g. Sokoban's A* search steps); without it, one A* run here, its trace written in the
    problem's `reference_format` (default: the generic `astar` format).
    """
    from metacot_core.registry import get_format, get_search

    own = getattr(item.problem, "eval_reference", None)
    if own is not None:
        try:
            return dict(own(count_tokens))
        except Exception as err:  # noqa: BLE001 - a failed reference leaves the plan metrics out
            return {"maze_error": f"eval_reference: {type(err).__name__}: {err}"}
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
            fmt = get_format(getattr(item.problem, "reference_format", "astar"))
            out["astar_tokens"] = count_tokens(fmt.linearize(item.problem, result))
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
        "answer_solved": answer_solved(item.problem, item.prompt + completion.text, bool(v.solved)),
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
    """One record per completion: decode, judge, hallucinated states, teacher runs, alignment, plan refs."""
    from metacot_core.registry import get_format

    show = cfg.progress if progress is None else progress
    records: list[dict[str, Any]] = []
    n = cfg.generation.n_samples
    for fmt_name in sorted({it.format for it in items}):
        group = [it for it in items if it.format == fmt_name]
        fmt = get_format(fmt_name)
        completions = generate(model, tokenizer, [it.prompt for it in group], cfg.generation,
                               stop_strings=default_stop_strings(fmt_name), progress=show)
        shapes = LineShapes.from_texts(it.prompt + "\n" + (it.teacher_row.get("trace") or "") for it in group)
        for i, item in enumerate(tqdm(group, desc=f"judge {fmt_name}", unit="problem", disable=not show)):
            records += item_records(item, fmt, completions[i * n:(i + 1) * n], cfg, tokenizer, shapes)
    return records


def item_records(item: EvalItem, fmt: Any, completions: Sequence[Completion], cfg: EvalConfig,
                 tokenizer: Any, shapes: LineShapes | None = None) -> list[dict[str, Any]]:
    """Records of one problem's completions; the teacher strategies and plan references run once."""
    runs = []
    if cfg.teacher.enabled:
        runs = run_strategies(item.problem, cfg.teacher.strategies(), cfg.teacher.seed)
    plans = _plan_reference(item, _token_counter(tokenizer)) if _scores_plans(item, cfg) else {}
    out = []
    for completion in completions:
        verdict = judge(item.problem, fmt, completion.text, completion.truncated, item.prompt, shapes)
        tree = _model_tree(item, fmt, completion)
        record = make_record(item, completion, verdict, tree.illegal)
        record.update(plans)
        if cfg.expansions:
            record["expanded"] = [key_text(k) for k in tree.expanded]
        record.update(completion_fields(item.problem, completion.text))
        if runs:
            record["teacher"] = {r.label: {"solved": r.solved, "n_expanded": r.n_expanded} for r in runs}
            if cfg.alignment:
                record["alignment"] = {r.label: alignment(tree.states, r.states) for r in runs if r.states}
        out.append(record)
    if out and runs and cfg.expansions:  # once per problem, not per sample: report.py writes teacher.parquet
        out[0]["teacher_runs"] = teacher_rows(runs)
    return out


def _scores_plans(item: EvalItem, cfg: EvalConfig) -> bool:
    """Plan metrics when asked (mode "maze", the name kept for stage hashes) or when the domain's
    problems declare `optimal_plans`."""
    return cfg.mode == "maze" or (cfg.mode is None and has_optimal_plans(item.problem))


def _token_counter(tokenizer: Any) -> Callable[[str], int]:
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def summarize(records: Sequence[dict[str, Any]], cfg: EvalConfig) -> dict[str, Any]:
    """Per-split metrics (per split and format when the records hold several) plus the settings."""
    several = len({rec["format"] for rec in records}) > 1
    splits: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        splits.setdefault(f"{rec['split']}/{rec['format']}" if several else rec["split"], []).append(rec)
    return {
        "splits": {
            name: split_metrics(recs, cfg.pass_k,
                                plans=any(r.get("optimal_length") is not None for r in recs),
                                plan_scorer=domain_plan_metrics(recs))
            for name, recs in splits.items()
        },
        "n_completions": len(records),
        "checkpoint": cfg.checkpoint,
        "dataset": cfg.dataset,
        "generation": cfg.generation.model_dump(),
    }


def domain_plan_metrics(records: Sequence[dict[str, Any]]) -> Callable[..., dict[str, Any]] | None:
    """The `plan_metrics` hook of the records' domain (None: the generic plan metrics; also when the
    records mix domains, or the domain cannot be loaded here)."""
    from metacot_core.registry import get_domain

    domains = {rec.get("domain") for rec in records}
    if len(domains) != 1 or None in domains:
        return None
    try:
        return getattr(get_domain(str(domains.pop())), "plan_metrics", None)
    except Exception:  # noqa: BLE001 - records of an unregistered domain still get the generic metrics
        return None


def check_inputs(cfg: EvalConfig) -> None:
    """Fail fast with one line naming the missing input."""
    if not cfg.checkpoint:
        raise ValueError("checkpoint: no checkpoint directory given (--checkpoint DIR)")
    if not cfg.dataset:
        raise ValueError("dataset: no dataset directory given (--dataset DIR)")
    if not Path(cfg.checkpoint).is_dir():
        raise FileNotFoundError(f"{cfg.checkpoint}: checkpoint directory not found")
    if not Path(cfg.dataset).exists():
        raise FileNotFoundError(f"{cfg.dataset}: dataset folder not found")


def evaluate_loaded(cfg: EvalConfig, model: Any, tokenizer: Any,
                    items: list[EvalItem]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records and summary for already loaded model and problems (timing included in the summary)."""
    start = time.perf_counter()
    records = evaluate_items(model, tokenizer, items, cfg)
    summary = summarize(records, cfg)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return records, summary


def run_evaluation(cfg: EvalConfig) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The whole evaluation without Prefect or MLflow: (records, summary, written paths)."""
    check_inputs(cfg)
    model, tokenizer = load_checkpoint(cfg.checkpoint, cfg.generation.device)
    items = load_items(cfg.dataset, cfg.splits, cfg.max_problems, cfg.format)
    records, summary = evaluate_loaded(cfg, model, tokenizer, items)
    paths = write_report(records, summary, cfg.output_dir)
    return records, summary, paths
