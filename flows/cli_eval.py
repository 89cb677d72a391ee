"""Evaluation command of `metacot` (mounted at top level): eval.

    metacot eval --checkpoint runs/sft/final --dataset data_out/countdown-cpu
    metacot eval --checkpoint runs/sft/final --dataset data_out/countdown-cpu --split val_target \
        --config configs/countdown/eval-cpu.yaml generation.n_samples=8 generation.temperature=1.0

Prints one line per split (solve rate with its 95% CI, validity, states, teacher comparison) and
writes the per-problem table, summary.json and plots under `output_dir`. A bad config, checkpoint
or dataset prints one line naming the problem and exits with status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from metacot_core.config import ConfigError

app = typer.Typer()


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
    from metacot_core.data.schema import DatasetError
    from metacot_core.evaluation.report import summary_lines

    path = str(config) if config else None
    args = (overrides or [], str(checkpoint), str(dataset), split or None, parent_run_id)
    try:
        from flows.evaluate import build_eval_config
        from tasks.evaluate import check_inputs

        cfg = build_eval_config(path, *args)
        check_inputs(cfg)  # fail fast, before Prefect starts
        if no_flow:
            from flows.evaluate import evaluate_without_prefect

            summary = evaluate_without_prefect(cfg, track=not no_track)
        else:
            from flows.evaluate import evaluate

            summary = evaluate(path, *args)
    except (ConfigError, DatasetError, FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    for line in summary_lines(summary):
        typer.echo(line)
    typer.echo(json.dumps({"output_dir": cfg.output_dir, "mlflow_run_id": summary.get("mlflow_run_id")}))
