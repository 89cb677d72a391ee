"""Experiment commands of `metacot`, top-level: `run` (the whole pipeline), `sweep`, `serve`.

    metacot run --config configs/countdown/pipeline-cpu.yaml [sft.train.max_steps=100 rl.enabled=false]
    metacot sweep --config configs/countdown/sweep-cpu.yaml
    metacot serve [--port 4200]       # Prefect server + deployments; Ctrl-C stops both

A config that fails validation, or an MLflow server that does not answer, prints one line naming the
problem and exits with status 1 before any flow runs (`run` starts the temporary Prefect API first,
so that it boots during the imports: cli/local_api.py; it is stopped on the way out).
`--mlflow-fallback` logs to the embedded SQLite store when the server in MLFLOW_TRACKING_URI is down
(only when asked). SIGTERM, SIGHUP and Ctrl-C stop every server a command started (cli/boundary.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.boundary import App

app = App(no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="experiment YAML (pipeline config)")]
OverridesArg = Annotated[list[str] | None,
                         typer.Argument(help="key.sub=value overrides, e.g. sft.train.lr=1e-3")]
FallbackOpt = Annotated[bool, typer.Option("--mlflow-fallback",
                                           help="log to the local SQLite store if the MLflow server is down")]


@app.command("run")
def run(config: ConfigOpt, overrides: OverridesArg = None, mlflow_fallback: FallbackOpt = False) -> None:
    """Run an experiment end to end (generate -> SFT -> RL -> evaluate) as one Prefect flow; finished
    stages are reused and an interrupted run resumes where it stopped."""
    from cli.local_api import local_api

    # the temporary Prefect API (when none is configured) boots while the imports below run
    with local_api() as api:
        from metacot_core.pipeline.config import load_pipeline
        from tasks.tracking import check_tracking

        load_pipeline(config, overrides or [])  # fail fast, before any flow runs
        check_tracking(mlflow_fallback)
        from flows.pipeline import pipeline

        if api is not None:
            api.wait()
        results = pipeline(str(config), overrides or [], mlflow_fallback)
    typer.echo(json.dumps({"headline": results["headline"], "mlflow": results["mlflow"]}, indent=2))


@app.command("sweep")
def sweep(config: ConfigOpt, overrides: OverridesArg = None, mlflow_fallback: FallbackOpt = False) -> None:
    """Ray Tune sweep over the config's `sweep.space` with ASHA early stopping; writes best-config.yaml."""
    from flows.sweep import run_sweep, sweep_settings
    from metacot_core.pipeline.config import load_pipeline

    sweep_settings(load_pipeline(config, overrides or []), str(config))  # fail fast, before Ray starts

    result: dict[str, Any] = run_sweep(str(config), overrides or [], mlflow_fallback)
    typer.echo(json.dumps(result, indent=2, default=str))
    typer.echo(f"best config: {result['best_config']}  (metacot run --config {result['best_config']})")


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="Prefect API and UI port")] = 4200,
    host: Annotated[str, typer.Option(help="interface; the default keeps it on this machine")] = "127.0.0.1",
    home: Annotated[Path | None, typer.Option(help="PREFECT_HOME (SQLite database inside)")] = None,
    deployment: Annotated[list[str] | None, typer.Option(help="serve only these (repeatable)")] = None,
    limit: Annotated[int, typer.Option(help="flow runs at once (0: no limit)")] = 1,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="API only")] = False,
) -> None:
    """Start a local Prefect server (SQLite) and serve the metacot deployments until Ctrl-C."""
    from cli.serve import DEFAULT_HOME, run_all

    code = run_all(home or DEFAULT_HOME, host, port, not no_ui, deployment or None, limit or None,
                   echo=typer.echo)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
