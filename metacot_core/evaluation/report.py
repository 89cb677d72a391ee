"""Outputs of an evaluation: the per-problem table (Parquet), the summary (JSON) and the plots.

With `expansions` on, the table holds each output's expanded states in order (`expanded`, as key
texts) and teacher.parquet holds every teacher strategy's run per problem (solved, nodes expanded,
expansion order): what `metacot analyze` needs to fingerprint the model's algorithm afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from metacot_core.evaluation.plots import all_plots

TABLE_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("split", pa.string()), ("domain", pa.string()), ("format", pa.string()),
    ("instance", pa.string()), ("prompt", pa.string()), ("completion", pa.string()),
    ("sample_index", pa.int64()), ("n_tokens", pa.int64()), ("truncated", pa.bool_()), ("stop", pa.string()),
    ("label", pa.string()), ("solved", pa.bool_()), ("valid", pa.bool_()), ("reason", pa.string()),
    ("step", pa.int64()), ("detail", pa.string()), ("states_visited", pa.int64()), ("n_events", pa.int64()),
    ("solution", pa.list_(pa.string())), ("plan_length", pa.int64()), ("illegal_states", pa.int64()),
    ("teacher_row_solved", pa.bool_()), ("teacher_n_expanded", pa.int64()),
    ("teacher_trace_tokens", pa.int64()), ("teacher_algorithm", pa.string()),
    ("teacher_any_solved", pa.bool_()), ("teacher_json", pa.string()),
    ("alignment_json", pa.string()), ("closest_strategy", pa.string()), ("alignment_max", pa.float64()),
    ("optimal_length", pa.int64()), ("astar_tokens", pa.int64()), ("answer_solved", pa.bool_()),
    ("expanded", pa.list_(pa.string())),
])

TEACHER_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("split", pa.string()), ("format", pa.string()), ("instance", pa.string()),
    ("strategy", pa.string()), ("algorithm", pa.string()), ("weight", pa.float64()), ("solved", pa.bool_()),
    ("n_expanded", pa.int64()), ("expanded", pa.list_(pa.string())), ("error", pa.string()),
])


def table_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A record flattened to the table's columns (per-strategy dicts become JSON columns)."""
    row = {name: rec.get(name) for name in TABLE_SCHEMA.names}
    teacher = rec.get("teacher")
    if teacher:
        row["teacher_any_solved"] = any(t["solved"] for t in teacher.values())
        row["teacher_json"] = json.dumps(teacher, sort_keys=True)
    align = rec.get("alignment")
    if align:
        row["alignment_json"] = json.dumps(align, sort_keys=True)
        row["closest_strategy"] = max(align, key=lambda k: align[k])
        row["alignment_max"] = float(align[row["closest_strategy"]])
    return row


def records_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([table_row(r) for r in records], schema=TABLE_SCHEMA)


def teacher_table(records: Sequence[dict[str, Any]]) -> pa.Table | None:
    """One row per (problem, strategy) from the records that carry `teacher_runs`; None when none do."""
    rows = [{"problem_id": rec["problem_id"], "split": rec["split"], "format": rec["format"],
             "instance": rec["instance"], **run}
            for rec in records for run in rec.get("teacher_runs") or ()]
    return pa.Table.from_pylist(rows, schema=TEACHER_SCHEMA) if rows else None


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """A few human lines per split (what the CLI prints)."""
    lines = []
    for split, m in summary.get("splits", {}).items():
        model = m["model"]
        if not model.get("n_problems"):
            continue
        line = (f"{split}: solve {model['solve_rate']:.3f} [{model['solve_rate_ci_low']:.3f}, "
                f"{model['solve_rate_ci_high']:.3f}] over {model['n_problems']} problems, "
                f"valid {model['validity_rate']:.3f}, states {model['states_explored_mean']:.1f}, "
                f"tokens {model['tokens_per_trace_mean']:.1f}")
        teacher = m.get("teacher")
        if teacher:
            line += (f"; teacher(any) {teacher['teacher_any_solve_rate']:.3f}, "
                     f"model-only {teacher['model_only_rate']:.3f}")
            if "closest_strategy" in teacher:
                line += f", closest {teacher['closest_strategy']}"
        maze = m.get("maze")
        if maze:
            line += f"; optimal {maze['optimal_rate']:.3f}, SWC {maze['swc']:.3f}"
            if "ilr" in maze:
                line += f", ILR {maze['ilr']:.3f}"
        lines.append(line)
    return lines


def write_report(records: Sequence[dict[str, Any]], summary: dict[str, Any],
                 out_dir: str | Path) -> dict[str, Any]:
    """Write table.parquet, summary.json and the plots under `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table_path = out_dir / "table.parquet"
    pq.write_table(records_table(records), table_path)
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    plots = all_plots(records, out_dir / "plots")
    paths: dict[str, Any] = {"table": table_path, "summary": summary_path, "plots": plots}
    teacher = teacher_table(records)
    teacher_path = out_dir / "teacher.parquet"
    if teacher is not None:
        pq.write_table(teacher, teacher_path)
        paths["teacher"] = teacher_path
    elif teacher_path.exists():  # a stale file from an earlier run of this folder would be read as this one's
        teacher_path.unlink()
    return paths
