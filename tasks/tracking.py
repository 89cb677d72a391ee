"""MLflow defaults shared by every task and flow: where runs go, and nesting under a parent run.

Embedded default: a SQLite file `mlflow.db` in the project folder (artifacts in `mlartifacts/`), so
nothing needs a server. `MLFLOW_TRACKING_URI` points everything at a real server instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

PROJECT_ROOT = Path(os.environ.get("METACOT_HOME", Path.cwd())).resolve()


def default_tracking_uri() -> str:
    """The embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


def configure(experiment: str = "metacot") -> str:
    """Point MLflow at the tracking store and make sure `experiment` exists; returns its id.

    A new experiment on the embedded store gets a local artifact folder next to the database, so
    artifacts never land in an unexpected working directory.
    """
    uri = default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:"):
            location = (PROJECT_ROOT / "mlartifacts").as_uri()
        exp_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@contextmanager
def stage_run(name: str, experiment: str = "metacot", params: dict[str, Any] | None = None,
              tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run for one stage, nested under the active (pipeline) run when there is one."""
    if mlflow.active_run() is None:
        configure(experiment)
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_name=name, nested=nested, tags=tags) as run:
        if params:
            mlflow.log_params(flatten(params))
        yield run


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b": value}; values longer than MLflow's param limit are cut."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            text = str(value)
            out[name] = text if len(text) <= 6000 else text[:5997] + "..."
    return out
