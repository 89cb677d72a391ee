"""Prefect flow `metacot-experiment`: run every arm of an experiment as a pipeline, then one results table.

    metacot experiment configs/countdown/sos-vs-solution-cpu.yaml
    metacot experiment configs/countdown/crossover-cpu.yaml --only solution sft.train.max_steps=50
    python -m flows.experiment configs/countdown/sos-vs-solution-cpu.yaml

Every arm (x grid point; see metacot_core.pipeline.experiment) is resolved before anything runs, then
the arms run one after another through `flows.pipeline.run_pipeline`, so each arm has the pipeline's
caching and resume: a killed experiment started again skips the arms and stages that finished and
resumes the one that was running. With a `tune:` block in the config (the crossover configs have one)
the arms run instead as Ray Tune trials, side by side, with core calls in the Ray workers, and are
recorded in MLflow afterwards (flows/experiment_tune.py says why and how); same folders, caching and
resume.

Arms whose stages are identical (same stage hash: e.g. two grid points that differ only in SFT
settings share the dataset; an RL arm shares its SFT with the arm without RL) do not redo them: the
later arm's stage folder becomes a link to the finished one and its pipeline state records the stage
as finished (`shared_from` in the stage summary).

Outputs, in `<output_dir>/<name>/`: results.md (the table, the command, the hardware, the date),
results.parquet (one row per arm x split; see metacot_core.evaluation.results_table) and plots/
(solve rate per arm; with a grid, solve rate vs training FLOPs). In MLflow: a run
`experiment-<name>` holding those files, the config as params and `<arm>/<split>/solve_rate`
metrics; each arm's pipeline run is nested under it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow

from flows.pipeline import run_pipeline_flow
from metacot_core.pipeline.experiment import Arm, ResolvedExperiment, load_experiment
from metacot_core.pipeline.results import STATE_NAME, write_results
from metacot_core.pipeline.state import PipelineState, share_finished_stages
from tasks.tracking import (
    check_tracking,
    end_run,
    log_experiment_results,
    nest_under,
    open_experiment_run,
    tracking_uri,
)

FLOW_NAME = "metacot-experiment"


# ------------------------------------------------------------------------------------------------ flow


def run_arm(arm: Arm, exp: ResolvedExperiment, parent_id: str, state: PipelineState) -> dict[str, Any]:
    pipes = [a.pipeline for a in exp.arms]
    shared = share_finished_stages(arm.pipeline, pipes)
    print(f"== arm {arm.label} ({arm.pipeline.config.name})"
          + (f": sharing finished {', '.join(shared)} with an identical arm" if shared else ""))
    results = run_pipeline_flow(arm.pipeline)
    run_id = results["mlflow"]["run_id"]
    nest_under(run_id, parent_id, {"experiment.arm": arm.label})
    state.finish(arm.label, arm.pipeline.key, {"headline": results["headline"]}, [run_id])
    return results


def run_experiment(config_path: str, overrides: list[str] | None = None, only: list[str] | None = None,
                   mlflow_fallback: bool = False) -> dict[str, Any]:
    """Resolve every arm, run the selected ones (finished stages reused), write and log the results."""
    exp = load_experiment(config_path, overrides or [])
    selected = exp.select(only)
    check_tracking(mlflow_fallback)
    exp.root.mkdir(parents=True, exist_ok=True)
    state = PipelineState(exp.root / STATE_NAME, exp.key)
    parent_id = open_experiment_run(exp, state)
    command = " ".join(["metacot experiment", config_path, *(overrides or []),
                        *(f"--only {name}" for name in only or [])])
    failed: list[str] = []
    try:
        from flows.experiment_tune import tune_settings

        if tune_settings(exp) is not None:
            from flows.experiment_tune import run_and_record

            failed, ran_on = run_and_record(exp, selected, config_path, overrides or [], parent_id, state)
        else:
            ran_on = None
            for arm in selected:
                run_arm(arm, exp, parent_id, state)
        rows, paths = write_results(exp, parent_id, command, tracking_uri(), ran_on)
        log_experiment_results(parent_id, rows, paths)
        if failed:
            from flows.experiment_tune import ArmsFailed

            raise ArmsFailed("some Tune trials failed (the finished arms are recorded; run the command "
                             "again to resume):\n" + "\n".join(failed))
    except BaseException:
        end_run(parent_id, "FAILED")
        raise
    end_run(parent_id, "FINISHED")
    table = Path(paths["markdown"]).read_text()
    print(table)
    print(f"results: {exp.root} (results.md, results.parquet, plots/); MLflow run {parent_id}")
    return {"rows": rows, "outputs": {k: [str(p) for p in v] if isinstance(v, list) else str(v)
                                      for k, v in paths.items()},
            "arms": [a.label for a in selected],
            "mlflow": {"run_id": parent_id, "tracking_uri": tracking_uri()}}


@flow(name=FLOW_NAME, log_prints=True, validate_parameters=True)
def experiment(config_path: str, overrides: list[str] | None = None, only: list[str] | None = None,
               mlflow_fallback: bool = False) -> dict[str, Any]:
    """Every arm of an experiment config as a pipeline run, then the results table, plots and MLflow run;
    `only` runs some arms (by arm name or `<arm>-<grid point>` label), `overrides` go to every arm."""
    return run_experiment(config_path, overrides, only, mlflow_fallback)


if __name__ == "__main__":
    experiment(sys.argv[1], sys.argv[2:])
