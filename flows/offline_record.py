"""Record in MLflow the arms of an experiment that ran elsewhere with the core runner or in Tune trials.

    metacot experiment configs/countdown/sos-vs-solution-gpu-lease.yaml --record-offline

The core runner (metacot_core.pipeline.offline) leaves, per arm, the stage folders, the pipeline state
file and one event log per run (metacot_core.pipeline.tracker.JsonlTracker). This replays each
finished arm's logs into MLflow (tasks.tracking.replay): the same pipeline run with its stage runs,
params, step metrics, artifacts, datasets and model that a direct run makes, nested under the
experiment's run and tagged `executed_offline` with the hardware. Then it writes and logs the results
table (results.md names the hardware that ran the arms, not this machine). Nothing is trained or
evaluated here; an arm recorded before is not recorded twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metacot_core.pipeline.experiment import Arm, load_experiment
from metacot_core.pipeline.offline import events_dir
from metacot_core.pipeline.results import STATE_NAME, write_results
from metacot_core.pipeline.state import PipelineState, stage_done
from metacot_core.pipeline.tracker import read_runs
from tasks.tracking import (
    check_tracking,
    configure,
    end_run,
    log_experiment_results,
    open_experiment_run,
    replay,
    set_run_tag,
    tracking_uri,
)


class NotRunOffline(ValueError):
    """An arm asked for has no finished offline run to record."""


def arm_state(arm: Arm) -> tuple[PipelineState, dict[str, str]]:
    """The arm's pipeline state and the tags of its logged pipeline run; NotRunOffline when unfinished."""
    pipe = arm.pipeline
    state = PipelineState(pipe.state_path, pipe.key)
    local = state.run_id("jsonl")
    runs = read_runs(events_dir(pipe)) if local else {}
    if local not in runs or stage_done(pipe, "evaluate") is None:
        raise NotRunOffline(f"arm {arm.label}: no finished offline run in {pipe.state_path} (run "
                            f"`python -m cli.offline <config> --only {arm.arm}` and copy "
                            f"{pipe.root} here)")
    return state, runs[local].tags


def record_arm(arm: Arm, parent_id: str, state: PipelineState, experiment: str) -> str:
    """One finished offline arm as MLflow runs under `parent_id`; returns its pipeline run's id."""
    pipe = arm.pipeline
    run_id = replay(events_dir(pipe), str(state.run_id("jsonl")), experiment, parent=parent_id,
                    tags={"experiment.arm": arm.label})
    state.set_parent(run_id)
    return run_id


def record_arms(found: list[tuple[Arm, PipelineState, dict[str, str]]], parent_id: str,
                exp_state: PipelineState, experiment: str) -> str:
    """Record each (arm, state, execution tags) under the experiment's run; returns the line that says
    where they ran, for the results table."""
    for arm, state, executed in found:
        run_id = record_arm(arm, parent_id, state, experiment)
        exp_state.finish(arm.label, arm.pipeline.key, {"recorded_offline": True}, [run_id])
        print(f"recorded arm {arm.label} (ran on {executed.get('executed.hardware')}): MLflow run {run_id}")
    ran_on = sorted({executed.get("executed.hardware", "") for _, _, executed in found})
    started = sorted(executed.get("executed.started_at", "") for _, _, executed in found)
    by = sorted({executed.get("executed.by", "") for _, _, executed in found})
    trials = {executed["executed.trial"] for _, _, executed in found if executed.get("executed.trial")}
    by_text = ", ".join(by) + (f" ({len(trials)} trial{'s' if len(trials) > 1 else ''})" if trials else "")
    return f"{'; '.join(ran_on)} (run by {by_text} from {started[0]}; recorded here)" if found else ""


def record_offline(config_path: str, overrides: list[str] | None = None, only: list[str] | None = None,
                   mlflow_fallback: bool = False) -> dict[str, Any]:
    """Record every selected arm (all must have finished offline), then the results table."""
    exp = load_experiment(config_path, overrides or [])
    selected = exp.select(only)
    found = [(arm, *arm_state(arm)) for arm in selected]  # every arm checked before anything is logged
    check_tracking(mlflow_fallback)
    configure(exp.config.experiment)
    exp_state = PipelineState(exp.root / STATE_NAME, exp.key)
    parent_id = open_experiment_run(exp, exp_state)
    set_run_tag(parent_id, "executed_offline", "true")
    ran = record_arms(found, parent_id, exp_state, exp.config.experiment)
    command = " ".join(["python -m cli.offline", config_path, *(overrides or []),
                        *(f"--only {name}" for name in only or [])])
    rows, paths = write_results(exp, parent_id, command, tracking_uri(), ran_on=ran)
    log_experiment_results(parent_id, rows, paths)
    end_run(parent_id, "FINISHED")
    print(Path(paths["markdown"]).read_text())
    print(f"results: {exp.root} (results.md, results.parquet, plots/); MLflow run {parent_id}")
    return {"rows": rows, "arms": [a.label for a in selected],
            "outputs": {k: [str(p) for p in v] if isinstance(v, list) else str(v) for k, v in paths.items()},
            "mlflow": {"run_id": parent_id, "tracking_uri": tracking_uri()}}
