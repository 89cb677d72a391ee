"""Training commands of `metacot`, mounted as `metacot train ...`: `sft` here (RL adds `rl`).

    metacot train sft --config configs/countdown/sft-cpu.yaml train.max_steps=300 ray.num_workers=2
    metacot train sft --config configs/countdown/sft-cpu.yaml --no-flow     (no Prefect start-up)

A bad config, dataset, tokenizer, model path or checkpoint prints one line naming the problem and
exits with status 1 (cli/boundary.py); nothing already saved is overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.boundary import App

app = App(no_args_is_help=True)

SUMMARY_KEYS = (
    "loss",
    "val_loss",
    "final_step",
    "params",
    "train_rows",
    "padding_waste",
    "final_dir",
    "mlflow_run_id",
    "overflow",
)


@app.command("sft")
def sft(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="SFT YAML")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="run without Prefect")] = False,
) -> None:
    """Supervised fine-tuning on a trace dataset (Ray Train workers, MLflow run); prints a summary."""
    from metacot_core.config import load_config
    from metacot_core.training.config import SFTConfig

    path = str(config) if config is not None else None
    cfg = load_config(SFTConfig, path, overrides or [])  # fail fast, before Prefect or Ray start
    from flows.train_sft import train_sft, train_sft_no_flow
    from tasks.tracking import check_tracking

    check_tracking()
    summary = train_sft_no_flow(cfg) if no_flow else train_sft(cfg)
    typer.echo(json.dumps(_summary(summary), indent=2, default=str))


def _summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in SUMMARY_KEYS if k in summary}


# --- RL post-training (added by the RL stage; its code lives in flows/train_rl.py and tasks/rl.py) ---

RL_SUMMARY_KEYS = ("method", "start_step", "final_step", "resumed_from", "checkpoint", "initial", "final")


@app.command("rl")
def rl(
    method: Annotated[str | None, typer.Option("--method", "-m", help="star or grpo")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="RL YAML")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="run without Prefect")] = False,
) -> None:
    """RL post-training of an SFT checkpoint: expert iteration (STaR) or GRPO; resumes when it can."""
    from flows.train_rl import load_rl_config
    from metacot_core.registry import names

    path = str(config) if config is not None else None
    if method is not None and method not in (known := names("rl")):
        raise ValueError(f"--method: {method!r} is not a registered RL method ({', '.join(known)})")
    cfg = load_rl_config(path, overrides, method)  # fail fast, before Prefect starts
    from flows.train_rl import train_rl, train_rl_no_flow
    from tasks.tracking import check_tracking

    check_tracking()
    summary = train_rl_no_flow(cfg) if no_flow else train_rl(cfg)
    typer.echo(json.dumps({k: summary[k] for k in RL_SUMMARY_KEYS if k in summary}, indent=2, default=str))
