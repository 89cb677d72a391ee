"""Evaluation commands of `metacot` (mounted at top level): eval, eval-compare.

    metacot eval --checkpoint runs/sft/final --dataset data_out/countdown-cpu
    metacot eval --checkpoint runs/sft/final --dataset data_out/countdown-cpu --split val_target \
        --config configs/countdown/eval-cpu.yaml generation.n_samples=8 generation.temperature=1.0

Prints one line per split (solve rate with its 95% CI, validity, states, teacher comparison) and
writes the per-problem table, summary.json and plots under `output_dir`. A bad config, checkpoint
or dataset prints one line naming the problem and exits with status 1 (cli/boundary.py).

    metacot eval-compare runs/eval/search-arith runs/eval/solution --name-a arith --name-b solution

compares two evaluations of the same problems problem by problem (exact McNemar test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.boundary import App

app = App()


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="model + tokenizer directory")],
    dataset: Annotated[Path, typer.Option("--dataset", help="Parquet trace dataset directory")],
    split: Annotated[list[str] | None, typer.Option("--split", help="split to evaluate (repeatable)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="evaluation YAML")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    parent_run_id: Annotated[str | None, typer.Option(help="MLflow run of the evaluated model")] = None,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="run without Prefect")] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="with --no-flow: skip MLflow too")] = False,
) -> None:
    """Evaluate a checkpoint: decode, replay every step against the rules, compare with the teacher."""
    from flows.evaluate import build_eval_config
    from metacot_core.evaluation.report import summary_lines
    from metacot_core.evaluation.runner import check_inputs

    path = str(config) if config else None
    args = (overrides or [], str(checkpoint), str(dataset), split or None, parent_run_id)
    cfg = build_eval_config(path, *args)
    check_inputs(cfg)  # fail fast, before Prefect starts
    from flows.evaluate import evaluate, evaluate_no_flow

    if no_flow and no_track:
        from metacot_core.pipeline.stages import run_evaluate
        from metacot_core.pipeline.tracker import NullTracker

        summary = run_evaluate(cfg, NullTracker())
    else:
        from tasks.tracking import check_tracking

        check_tracking()
        summary = evaluate_no_flow(cfg) if no_flow else evaluate(cfg)
    for line in summary_lines(summary):
        typer.echo(line)
    typer.echo(json.dumps({"output_dir": cfg.output_dir, "mlflow_run_id": summary.get("mlflow_run_id")}))


@app.command("eval-compare")
def eval_compare(
    a: Annotated[Path, typer.Argument(help="first evaluation folder (or its table.parquet)")],
    b: Annotated[Path, typer.Argument(help="second evaluation folder, same problems")],
    score: Annotated[list[str] | None, typer.Option(
        "--score", help="solved (strict) and/or answer_solved (SoS's answer-only); repeatable")] = None,
    name_a: Annotated[str, typer.Option(help="label of the first")] = "a",
    name_b: Annotated[str, typer.Option(help="label of the second")] = "b",
    experiment: Annotated[str, typer.Option(help="MLflow experiment of the comparison run")] = "metacot",
    no_track: Annotated[bool, typer.Option("--no-track", help="print only, no MLflow run")] = False,
) -> None:
    """Compare two evaluations problem by problem: rates, discordant problems, exact McNemar p-value
    (see metacot_core/evaluation/paired.py); logged to MLflow as an `eval-compare` run."""
    from metacot_core.evaluation.paired import compare, markdown

    results = [r for s in (score or ["solved", "answer_solved"]) for r in compare(a, b, s)]
    table = markdown(results, name_a, name_b)
    typer.echo(table)
    if no_track:
        return
    from tasks.tracking import MlflowTracker

    params = {"a": str(a), "b": str(b), "name_a": name_a, "name_b": name_b}
    tracker = MlflowTracker(experiment)
    with tracker.run(f"eval-compare-{name_a}-vs-{name_b}", {"stage": "eval-compare"}, params) as run_id:
        tracker.log_metrics({f"{r.split}.{r.score}.{k}": float(getattr(r, k))
                             for r in results for k in ("a_rate", "b_rate", "a_only", "b_only", "p_value")})
        tracker.log_text(table, "compare.md")
        tracker.log_dict([r.to_dict() for r in results], "compare.json")
    typer.echo(json.dumps({"mlflow_run_id": run_id}))
