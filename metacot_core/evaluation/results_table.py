"""An experiment's results table: one row per arm (x grid point) x held-out split.

Inputs are what the pipeline keeps of each arm: the evaluation summary (`{"splits": {name: {"model":
..., "teacher": ..., "maze": ...}}}`, see evaluation.runner.summarize) and the SFT summary (params,
final_step, seq_len, world_size, padding_waste; see training.sft.train). Output: a pyarrow Table (saved
as Parquet) and a markdown table.

Training compute is the usual dense-transformer estimate, FLOPs ~ 6 * params * tokens (forward 2,
backward 4 per parameter per token; attention's share is left out, small at these context lengths).
Tokens are the SFT summary's `tokens_seen` when it has one; otherwise they are estimated from the
batch shape, steps x micro_batch_size x grad_accum x world_size x seq_len x (1 - padding_waste),
and the row says so (`train_tokens_estimated`). Parameters include the (tied) embedding.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from metacot_core.evaluation.metrics import wilson_interval

FLOPS_PER_PARAM_TOKEN = 6.0

# (column, type) of every row; grid columns (one per grid key) go between `pipeline` and `split`.
BASE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("arm", pa.string()), ("label", pa.string()), ("pipeline", pa.string()),
]
METRIC_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("split", pa.string()), ("format", pa.string()), ("evaluated", pa.string()),
    ("n", pa.int64()), ("solved", pa.float64()), ("solve_rate", pa.float64()),
    ("ci_low", pa.float64()), ("ci_high", pa.float64()),
    ("answer_rate", pa.float64()), ("answer_ci_low", pa.float64()), ("answer_ci_high", pa.float64()),
    ("validity_rate", pa.float64()), ("illegal_states_per_trace", pa.float64()),
    ("states_explored_mean", pa.float64()), ("tokens_per_trace_mean", pa.float64()),
    ("truncated_rate", pa.float64()),
    ("teacher_any_solve_rate", pa.float64()), ("model_only_rate", pa.float64()),
    ("optimal_rate", pa.float64()), ("swc", pa.float64()), ("ilr", pa.float64()),
    ("params", pa.int64()), ("train_steps", pa.int64()), ("train_tokens", pa.float64()),
    ("train_tokens_estimated", pa.bool_()), ("train_flops", pa.float64()),
    ("eval_run_id", pa.string()),
]
MAZE_COLUMNS = (("optimal_rate", "optimal rate"), ("swc", "SWC"), ("ilr", "ILR"))
MODEL_KEYS = ("validity_rate", "illegal_states_per_trace", "states_explored_mean", "tokens_per_trace_mean",
              "truncated_rate")


@dataclass
class ArmResult:
    """What one finished arm contributes: its identity, grid point and stage summaries."""

    arm: str
    label: str
    pipeline: str
    evaluation: dict[str, Any]
    sft: dict[str, Any]
    micro_batch_size: int
    grad_accum: int = 1
    grid: dict[str, Any] = field(default_factory=dict)
    evaluated: str = "sft"  # which checkpoint the evaluation judged: sft, or rl when RL ran


def training_tokens(sft: dict[str, Any], micro_batch_size: int,
                    grad_accum: int = 1) -> tuple[float | None, bool]:
    """(tokens trained on, estimated?) from an SFT summary; (None, True) when it lacks the figures."""
    if _number(sft.get("tokens_seen")) is not None:
        return float(sft["tokens_seen"]), False
    steps, seq_len = _number(sft.get("final_step")), _number(sft.get("seq_len"))
    if steps is None or seq_len is None:
        return None, True
    world = _number(sft.get("world_size")) or 1.0
    real = 1.0 - (_number(sft.get("padding_waste")) or 0.0)
    return steps * micro_batch_size * grad_accum * world * seq_len * real, True


def training_flops(params: float | None, tokens: float | None) -> float | None:
    """6 * N * D (see the module docstring)."""
    if params is None or tokens is None:
        return None
    return FLOPS_PER_PARAM_TOKEN * params * tokens


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def arm_rows(result: ArmResult) -> list[dict[str, Any]]:
    """One row per evaluated split of an arm (splits without a solve rate, i.e. no problems, skipped)."""
    params = _number(result.sft.get("params"))
    tokens, estimated = training_tokens(result.sft, result.micro_batch_size, result.grad_accum)
    steps = _number(result.sft.get("final_step"))
    rows = []
    for name, metrics in (result.evaluation.get("splits") or {}).items():
        model = metrics.get("model") or {}
        if _number(model.get("solve_rate")) is None:
            continue
        split, _, fmt = name.partition("/")  # "val_target/sos" when the dataset held several formats
        n = int(model.get("n_problems") or 0)
        solved = round(float(model["solve_rate"]) * n, 6)
        low, high = wilson_interval(solved, n)
        teacher, maze = metrics.get("teacher") or {}, metrics.get("maze") or {}
        row: dict[str, Any] = {
            "arm": result.arm, "label": result.label, "pipeline": result.pipeline, **result.grid,
            "split": split, "format": fmt or None, "evaluated": result.evaluated,
            "n": n, "solved": solved, "solve_rate": float(model["solve_rate"]),
            "ci_low": low, "ci_high": high,
            "answer_rate": _number(model.get("answer_rate")),
            "answer_ci_low": _number(model.get("answer_rate_ci_low")),
            "answer_ci_high": _number(model.get("answer_rate_ci_high")),
            **{k: _number(model.get(k)) for k in MODEL_KEYS},
            "teacher_any_solve_rate": _number(teacher.get("teacher_any_solve_rate")),
            "model_only_rate": _number(teacher.get("model_only_rate")),
            **{k: _number(maze.get(k)) for k in ("optimal_rate", "swc", "ilr")},
            "params": None if params is None else int(params),
            "train_steps": None if steps is None else int(steps),
            "train_tokens": tokens, "train_tokens_estimated": estimated,
            "train_flops": training_flops(params, tokens),
            "eval_run_id": result.evaluation.get("mlflow_run_id"),
        }
        rows.append(row)
    return rows


def _grid_type(values: list[Any]) -> pa.DataType:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def _grid_value(value: Any, kind: pa.DataType) -> Any:
    if value is None or kind != pa.string() or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def results_table(results: Sequence[ArmResult], grid_keys: Sequence[str] = ()) -> pa.Table:
    """Every arm's rows as one table; grid columns are typed from their values (JSON text when mixed)."""
    rows = [row for result in results for row in arm_rows(result)]
    kinds = {key: _grid_type([row.get(key) for row in rows]) for key in grid_keys}
    for row in rows:
        for key, kind in kinds.items():
            row[key] = _grid_value(row.get(key), kind)
    schema = pa.schema([*BASE_COLUMNS, *kinds.items(), *METRIC_COLUMNS])
    ordered = [{name: row.get(name) for name in schema.names} for row in rows]
    return pa.Table.from_pylist(ordered, schema=schema)


# --------------------------------------------------------------------------------------------- markdown


def _si(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f}{unit}"
    return f"{value:.0f}"


def _fixed(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _solved(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def markdown_table(table: pa.Table, grid_keys: Sequence[str] = ()) -> str:
    """The table people read: arm, grid values, split, n, solved, solve rate with its 95% interval,
    validity (mazes: optimal rate, SWC, ILR), states explored, trace tokens, params, training tokens
    (~ when estimated) and FLOPs."""
    rows = table.to_pylist()
    maze = [k for k, _ in MAZE_COLUMNS if any(r.get(k) is not None for r in rows)]  # mazes only
    head = ["arm", *(k.split(".")[-1] for k in grid_keys), "split", "n", "solved",
            "solve rate [95% CI]", "answer rate [95% CI]", "valid traces",
            *(dict(MAZE_COLUMNS)[k] for k in maze), "states explored", "trace tokens",
            "params", "train tokens", "train FLOPs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        split = row["split"] + (f" ({row['format']})" if row.get("format") else "")
        approx = "~" if row["train_tokens_estimated"] and row["train_tokens"] is not None else ""
        flops = "-" if row["train_flops"] is None else f"{approx}{row['train_flops']:.2e}"
        cells = [
            row["arm"] + (" (RL)" if row["evaluated"] == "rl" else ""),
            *("-" if row.get(k) is None else str(row[k]) for k in grid_keys),
            split, str(row["n"]), _solved(row["solved"]),
            f"{row['solve_rate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]",
            _answer(row), _fixed(row["validity_rate"]), *(_fixed(row[k]) for k in maze),
            _fixed(row["states_explored_mean"], 1), _fixed(row["tokens_per_trace_mean"], 1),
            _si(row["params"]), approx + _si(row["train_tokens"]), flops,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _answer(row: dict[str, Any]) -> str:
    """SoS's answer-only rate with its interval ("-" where the domain has no separate answer)."""
    if row.get("answer_rate") is None:
        return "-"
    return f"{row['answer_rate']:.3f} [{row['answer_ci_low']:.3f}, {row['answer_ci_high']:.3f}]"


def write_table(table: pa.Table, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
