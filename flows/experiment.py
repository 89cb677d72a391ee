"""Prefect flow `metacot-experiment`: run every arm of an experiment as a pipeline, then one results table.

    metacot experiment configs/countdown/sos-vs-solution-cpu.yaml
    metacot experiment configs/countdown/crossover-cpu.yaml --only solution sft.train.max_steps=50
    python -m flows.experiment configs/countdown/sos-vs-solution-cpu.yaml

Every arm (x grid point; see metacot_core.experiment_config) is resolved before anything runs, then
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

import json
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
from prefect import flow

from flows.pipeline import check_tracking, run_pipeline
from metacot_core.evaluation.results_plots import results_plots
from metacot_core.evaluation.results_table import ArmResult, markdown_table, results_table, write_table
from metacot_core.experiment_config import Arm, ResolvedExperiment, load_experiment
from metacot_core.pipeline_state import PipelineState, hardware, share_finished_stages
from tasks import tracking

FLOW_NAME = "metacot-experiment"
STATE_NAME = "experiment-state.json"
ROW_METRICS = ("solve_rate", "ci_low", "ci_high", "validity_rate")


# ---------------------------------------------------------------------------------------------- MLflow


def _params(exp: ResolvedExperiment) -> dict[str, str]:
    cfg = exp.config
    params = {"name": cfg.name, "base": cfg.base, "overrides": json.dumps(cfg.overrides),
              "grid": json.dumps(cfg.grid), "cli_overrides": json.dumps(exp.cli_overrides),
              "n_pipelines": str(len(exp.arms)), "config_hash": exp.key}
    params |= {f"arm.{name}": json.dumps(items) for name, items in cfg.arms.items()}
    return {k: v if len(v) <= 6000 else v[:5997] + "..." for k, v in params.items()}


def open_parent(exp: ResolvedExperiment, state: PipelineState) -> str:
    """The experiment's MLflow run: the one an earlier attempt with the same arms opened, else new."""
    exp_id = tracking.configure(exp.config.experiment)
    client = mlflow.MlflowClient()  # after configure: a client binds the tracking URI when it is made
    if state.parent_run_id:
        try:
            client.update_run(state.parent_run_id, status="RUNNING")
            return state.parent_run_id
        except Exception:  # noqa: BLE001 - each store raises its own error for an unknown id
            pass
    tags = {"stage": "experiment", "experiment.name": exp.config.name, "config_hash": exp.key}
    run = client.create_run(exp_id, run_name=f"experiment-{exp.config.name}", tags=tags)
    run_id = run.info.run_id
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(k, v) for k, v in sorted(_params(exp).items())])
    client.log_dict(run_id, exp.config.model_dump(mode="json"), "experiment_config.json")
    state.set_parent(run_id)
    return run_id


def log_results(run_id: str, rows: list[dict[str, Any]], paths: dict[str, Any]) -> None:
    """`<label>/<split>/<metric>` metrics and the table, markdown and plots as artifacts."""
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    metrics = []
    for row in rows:
        split = row["split"] + (f"/{row['format']}" if row.get("format") else "")
        metrics += [Metric(f"{row['label']}/{split}/{k}", float(row[k]), now, 0) for k in ROW_METRICS
                    if row.get(k) is not None]
    for i in range(0, len(metrics), 500):  # MLflow's batch limit
        client.log_batch(run_id, metrics=metrics[i:i + 500])
    for key in ("markdown", "parquet", "arms"):
        client.log_artifact(run_id, str(paths[key]))
    for plot in paths["plots"]:
        client.log_artifact(run_id, str(plot), artifact_path="plots")


# --------------------------------------------------------------------------------------------- results


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
                     command: str, ran_on: str | None = None) -> str:
    cfg = exp.config
    lines = [f"# {cfg.name}", ""]
    if cfg.description:
        lines += [cfg.description.strip(), ""]
    lines += [f"- command: `{command}`", f"- hardware: {ran_on or hardware()}",
              f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
              f"- MLflow: run `{run_id}` (experiment `{cfg.experiment}`) at {mlflow.get_tracking_uri()}",
              "- solve rate: share of held-out problems solved (greedy), 95% Wilson interval; train FLOPs "
              "~ 6 x params x training tokens (~: tokens estimated from the batch shape)", ""]
    if missing:
        lines += [f"Not finished yet: {', '.join(missing)}", ""]
    return "\n".join([*lines, table_md, ""])


def write_results(exp: ResolvedExperiment, run_id: str, command: str,
                  ran_on: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """results.parquet, results.md, arms.json and plots from every arm that has finished; `ran_on`
    names the hardware when the arms ran elsewhere (default: this machine)."""
    out = exp.root
    grid_keys = list(exp.config.grid)
    results = [r for r in (arm_result(a) for a in exp.arms) if r is not None]
    missing = [a.label for a in exp.arms if all(r.label != a.label for r in results)]
    table = results_table(results, grid_keys)
    rows = table.to_pylist()
    md = results_markdown(exp, markdown_table(table, grid_keys), missing, run_id, command, ran_on)
    (out / "results.md").write_text(md)
    arms = {a.label: {"arm": a.arm, "pipeline": a.pipeline.config.name, "config_hash": a.pipeline.key,
                      "grid": a.grid, "overrides": a.overrides, "folder": str(a.pipeline.root)}
            for a in exp.arms}
    (out / "arms.json").write_text(json.dumps(arms, indent=2, default=str))
    paths = {"parquet": write_table(table, out / "results.parquet"), "markdown": out / "results.md",
             "arms": out / "arms.json", "plots": results_plots(rows, out / "plots", grid_keys)}
    return rows, paths


# ------------------------------------------------------------------------------------------------ flow


def run_arm(arm: Arm, exp: ResolvedExperiment, parent_id: str, state: PipelineState,
            mlflow_fallback: bool) -> dict[str, Any]:
    pipes = [a.pipeline for a in exp.arms]
    shared = share_finished_stages(arm.pipeline, pipes)
    print(f"== arm {arm.label} ({arm.pipeline.config.name})"
          + (f": sharing finished {', '.join(shared)} with an identical arm" if shared else ""))
    results = run_pipeline(arm.pipeline, mlflow_fallback)
    run_id = results["mlflow"]["run_id"]
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "mlflow.parentRunId", parent_id)  # nests the pipeline run in the UI
    client.set_tag(run_id, "experiment.arm", arm.label)
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
    parent_id = open_parent(exp, state)
    client = mlflow.MlflowClient()
    command = " ".join(["metacot experiment", config_path, *(overrides or []),
                        *(f"--only {name}" for name in only or [])])
    failed: list[str] = []
    try:
        if exp.config.runs_with_tune:
            from flows.experiment_tune import run_and_record

            failed, ran_on = run_and_record(exp, selected, config_path, overrides or [], parent_id, state)
        else:
            ran_on = None
            for arm in selected:
                run_arm(arm, exp, parent_id, state, mlflow_fallback)
        rows, paths = write_results(exp, parent_id, command, ran_on)
        log_results(parent_id, rows, paths)
        if failed:
            from flows.experiment_tune import ArmsFailed

            raise ArmsFailed("some Tune trials failed (the finished arms are recorded; run the command "
                             "again to resume):\n" + "\n".join(failed))
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    client.set_terminated(parent_id, status="FINISHED")
    table = Path(paths["markdown"]).read_text()
    print(table)
    print(f"results: {exp.root} (results.md, results.parquet, plots/); MLflow run {parent_id}")
    return {"rows": rows, "outputs": {k: [str(p) for p in v] if isinstance(v, list) else str(v)
                                      for k, v in paths.items()},
            "arms": [a.label for a in selected],
            "mlflow": {"run_id": parent_id, "tracking_uri": mlflow.get_tracking_uri()}}


@flow(name=FLOW_NAME, log_prints=True, validate_parameters=True)
def experiment(config_path: str, overrides: list[str] | None = None, only: list[str] | None = None,
               mlflow_fallback: bool = False) -> dict[str, Any]:
    """Every arm of an experiment config as a pipeline run, then the results table, plots and MLflow run;
    `only` runs some arms (by arm name or `<arm>-<grid point>` label), `overrides` go to every arm."""
    return run_experiment(config_path, overrides, only, mlflow_fallback)


if __name__ == "__main__":
    experiment(sys.argv[1], sys.argv[2:])
