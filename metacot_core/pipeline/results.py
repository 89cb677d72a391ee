"""An experiment's results: one table row per finished arm x split, as markdown, Parquet and plots.

Built from the arms' pipeline state files only (metacot_core.pipeline.state), so arms run by the Prefect
flow, by the core runner or in Ray Tune trials land in the same table.
"""

from __future__ import annotations

import json
import time
from typing import Any

from metacot_core.evaluation.results_plots import results_plots
from metacot_core.evaluation.results_table import ArmResult, markdown_table, results_table, write_table
from metacot_core.pipeline.experiment import Arm, ResolvedExperiment
from metacot_core.pipeline.state import PipelineState, hardware

STATE_NAME = "experiment-state.json"


def arm_result(arm: Arm) -> ArmResult | None:
    """What the arm's pipeline state holds of its SFT and evaluation, or None before it finished."""
    pipe = arm.pipeline
    state = PipelineState(pipe.state_path, pipe.key)
    evaluation = state.finished("evaluate", pipe.hashes["evaluate"])
    if evaluation is None:
        return None
    sft = state.finished("sft", pipe.hashes["sft"]) or {}
    return ArmResult(arm=arm.arm, label=arm.label, pipeline=pipe.config.name,
                     evaluation=evaluation["summary"], sft=sft.get("summary", {}),
                     micro_batch_size=pipe.sft.train.micro_batch_size, grad_accum=pipe.sft.train.grad_accum,
                     grid=dict(arm.grid), evaluated="rl" if pipe.rl is not None else "sft")


def results_markdown(exp: ResolvedExperiment, table_md: str, missing: list[str], run_id: str,
                     command: str, where: str, ran_on: str | None = None) -> str:
    cfg = exp.config
    lines = [f"# {cfg.name}", ""]
    if cfg.description:
        lines += [cfg.description.strip(), ""]
    lines += [f"- command: `{command}`", f"- hardware: {ran_on or hardware()}",
              f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
              f"- MLflow: run `{run_id}` (experiment `{cfg.experiment}`) at {where}",
              "- solve rate: share of held-out problems solved (greedy), 95% Wilson interval; train FLOPs "
              "~ 6 x params x training tokens (~: tokens estimated from the batch shape)", ""]
    if missing:
        lines += [f"Not finished yet: {', '.join(missing)}", ""]
    return "\n".join([*lines, table_md, ""])


def write_results(exp: ResolvedExperiment, run_id: str, command: str, where: str,
                  ran_on: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """results.parquet, results.md, arms.json and plots from every arm that has finished; `run_id` and
    `where` name the experiment's tracked run, `ran_on` the hardware when the arms ran elsewhere."""
    out = exp.root
    grid_keys = list(exp.config.grid)
    results = [r for r in (arm_result(a) for a in exp.arms) if r is not None]
    missing = [a.label for a in exp.arms if all(r.label != a.label for r in results)]
    table = results_table(results, grid_keys)
    rows = table.to_pylist()
    md = results_markdown(exp, markdown_table(table, grid_keys), missing, run_id, command, where, ran_on)
    (out / "results.md").write_text(md)
    arms = {a.label: {"arm": a.arm, "pipeline": a.pipeline.config.name, "config_hash": a.pipeline.key,
                      "grid": a.grid, "overrides": a.overrides, "folder": str(a.pipeline.root)}
            for a in exp.arms}
    (out / "arms.json").write_text(json.dumps(arms, indent=2, default=str))
    paths = {"parquet": write_table(table, out / "results.parquet"), "markdown": out / "results.md",
             "arms": out / "arms.json", "plots": results_plots(rows, out / "plots", grid_keys)}
    return rows, paths
