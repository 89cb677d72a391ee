"""`metacot experiment`: run every arm of an experiment config and write its results table.

    metacot experiment configs/countdown/sos-vs-solution-cpu.yaml
    metacot experiment configs/countdown/crossover-cpu.yaml --only search sft.train.max_steps=50
    metacot experiment configs/maze/astar-vs-solution-cpu.yaml --dry-run      # resolve and list the arms
    metacot experiment configs/countdown/sos-vs-solution-gpu-lease.yaml --record-offline
        # arms run elsewhere by `python -m cli.offline` (see cli/offline.py)

Overrides go to every arm's pipeline (`sft.train.max_steps=50`), except those whose first key is an
experiment field (`name=`, `experiment=`, `output_dir=`, `base=`). Every arm is resolved before
anything runs: a bad key in any arm prints one line naming the arm and exits with status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.boundary import App
from cli.pipeline import FallbackOpt, OverridesArg

app = App(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Experiment commands (cli/main.py mounts them at the top level: `metacot experiment`)."""

ConfigArg = Annotated[Path, typer.Argument(help="experiment YAML (configs/<problem>/<experiment>.yaml)")]
OnlyOpt = Annotated[list[str] | None, typer.Option(
    "--only", help="run only this arm (an arm name, or <arm>-<grid point>); repeatable")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="resolve every arm, list them, run nothing")]
RecordOpt = Annotated[bool, typer.Option(
    "--record-offline", help="run nothing: record in MLflow the arms that "
    "`python -m cli.offline` "
    "ran (on another machine; copy the arm folders here), and write the results table")]


@app.command("experiment")
def experiment(config: ConfigArg, overrides: OverridesArg = None, only: OnlyOpt = None,
               dry_run: DryRunOpt = False, record_offline: RecordOpt = False,
               mlflow_fallback: FallbackOpt = False) -> None:
    """Run the arms of an experiment (each a pipeline: generate -> SFT -> RL -> evaluate, finished
    stages reused), then write results.md, results.parquet and plots, and log them to MLflow."""
    from metacot_core.pipeline.experiment import load_experiment

    try:
        exp = load_experiment(config, overrides or [])  # every arm, before Prefect starts
        selected = exp.select(only)
        if dry_run:
            for arm in selected:
                pipe = arm.pipeline
                typer.echo(f"{arm.label}: pipeline {pipe.config.name} ({' -> '.join(pipe.stages())}), "
                           f"config hash {pipe.key}, folder {pipe.root}")
            return
        from tasks.tracking import check_tracking

        check_tracking(mlflow_fallback)
        if record_offline:
            from flows.offline_record import record_offline as record

            result = record(str(config), overrides or [], only or None, mlflow_fallback)
        else:
            from flows.experiment import experiment as experiment_flow

            result = experiment_flow(str(config), overrides or [], only or None, mlflow_fallback)
    except Exception as err:
        from flows.experiment_tune import ArmsFailed

        if not isinstance(err, ArmsFailed):
            raise
        typer.echo(f"error: {err}", err=True)  # one line per failed trial
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"outputs": result["outputs"], "mlflow": result["mlflow"]}, indent=2))


if __name__ == "__main__":
    app()
