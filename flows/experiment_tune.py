"""An experiment's arms (x grid points) as Ray Tune trials: the crossover sweep runs its compute points
side by side, on local Ray or on the cluster in RAY_ADDRESS.

    metacot experiment configs/countdown/crossover-cpu.yaml            # its `tune:` block turns it on
    metacot experiment configs/countdown/crossover-cpu.yaml tune.max_concurrent=1

Why trials run the core pipeline, not the Prefect one: a Prefect pipeline is a chain of subflows that
must run in the flow's process, and a Tune trial runs in a Ray worker. So each trial runs its arms with
`metacot_core.pipeline.offline.run_pipeline_offline` (the one stage loop with an event-log tracker: the
same stage folders, hashes, state file, stage reuse and SFT checkpoint resume as the Prefect
pipeline), and the experiment flow replays every finished arm's logs into MLflow afterwards exactly as
`--record-offline` does (the same runs a direct run makes, tagged with the hardware and the trial).

Order of work: the datasets first, in this process (grid points share theirs; making one dataset in
several trials at once would race), then one trial per group of arms that share an SFT stage
(`trial_groups`: an RL arm runs after the arm it starts from, in the same trial). A failed trial does
not stop the others; the finished arms are recorded and the results table written before the failure
is raised, and running the command again resumes (finished stages are reused, a killed SFT resumes
from its last checkpoint).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from metacot_core.config import build_config
from metacot_core.pipeline.experiment import Arm, ResolvedExperiment, load_experiment
from metacot_core.pipeline.offline import run_pipeline_offline
from metacot_core.pipeline.stages import run_generate
from metacot_core.pipeline.state import PipelineState, share_finished_stages, stage_done


class TuneArms(BaseModel):
    """The experiment's `tune:` block: run the arms (x grid points) as Ray Tune trials side by side."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: the arms run in sequence as Prefect pipelines")
    max_concurrent: int = Field(2, ge=1, description="trials at once")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs Ray reserves per trial (and torch threads)")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs Ray reserves per trial (0.5: two share one)")


def tune_settings(exp: ResolvedExperiment) -> TuneArms | None:
    """The checked `tune:` block when it turns Tune on, else None; ConfigError in one line."""
    if exp.config.tune is None:
        return None
    settings = build_config(TuneArms, exp.config.tune)
    return settings if settings.enabled else None


def trial_groups(arms: list[Arm]) -> list[list[Arm]]:
    """Arms that must run in one Tune trial, in order: those with the same SFT stage (an RL arm and the
    arm it starts from), so the shared SFT is trained once, by the first of them, and linked for the
    rest. Arms in different groups share at most their dataset, which is made before the trials."""
    groups: dict[tuple[str, str], list[Arm]] = {}
    for arm in arms:
        groups.setdefault((arm.pipeline.hashes["generate"], arm.pipeline.hashes["sft"]), []).append(arm)
    return list(groups.values())


class ArmsFailed(RuntimeError):
    """Some Tune trials failed; the arms that finished were recorded."""


def pending(arms: list[Arm]) -> list[Arm]:
    """Arms whose evaluation has not finished (or whose output is gone)."""
    return [a for a in arms if stage_done(a.pipeline, "evaluate") is None]


def make_datasets(exp: ResolvedExperiment, arms: list[Arm]) -> None:
    """Every dataset the arms need, each made once (the rest link to it), before any trial starts;
    generation fans its shards out over Ray as the pipeline's generate stage does."""
    pipes = [a.pipeline for a in exp.arms]
    for arm in arms:
        share_finished_stages(arm.pipeline, pipes)
        run_pipeline_offline(arm.pipeline, by="metacot experiment (dataset before the Tune trials)",
                             stop_after="generate", call=ray_generation)


def ray_generation(stage: str, cfg: Any, tracker: Any) -> dict[str, Any]:
    """The generate stage with its shards on Ray (the only stage made before the trials)."""
    from tasks.generate import generate_dataset

    return run_generate(cfg, tracker, make=generate_dataset)


def last_line(error: BaseException) -> str:
    """The raised exception's own line from a Ray error (whose text is the whole remote traceback)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def run_group(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """One Tune trial: the arms of one group in order, each reported when its evaluation finishes."""
    import torch
    from ray import tune

    os.chdir(setup["cwd"])  # Tune starts trials in their own folder; the config's paths are relative
    torch.set_num_threads(max(1, int(setup["cpus_per_trial"])))
    exp = load_experiment(setup["config_path"], setup["overrides"])
    by_label = {a.label: a for a in exp.arms}
    pipes = [a.pipeline for a in exp.arms]
    trial = tune.get_context().get_trial_name()
    for done, label in enumerate(config["labels"], start=1):
        arm = by_label[label]
        share_finished_stages(arm.pipeline, pipes)
        start = time.perf_counter()
        results = run_pipeline_offline(arm.pipeline, by="Ray Tune trial", trial=trial)
        splits = (results["evaluate"].get("splits") or {}).values()
        rates = [s["model"]["solve_rate"] for s in splits if "solve_rate" in s.get("model", {})]
        tune.report({"arms_finished": done, "seconds": time.perf_counter() - start,
                     "solve_rate": sum(rates) / len(rates) if rates else math.nan})


def run_trials(exp: ResolvedExperiment, arms: list[Arm], settings: TuneArms, config_path: str,
               overrides: list[str], verbose: int = 1) -> list[str]:
    """Datasets, then a Tune trial per group of `arms`; returns one line per failed trial."""
    from ray import tune

    from tasks.ray_runtime import ensure_ray

    todo = pending(arms)
    if not todo:
        return []
    make_datasets(exp, todo)
    groups = trial_groups(todo)
    setup = {"config_path": str(Path(config_path).resolve()), "overrides": list(overrides),
             "cpus_per_trial": settings.cpus_per_trial, "cwd": os.getcwd()}
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    started = ensure_ray(max(1, math.ceil(settings.max_concurrent * settings.cpus_per_trial)))
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(run_group, setup=setup), resources),
            param_space={"labels": tune.grid_search([[a.label for a in g] for g in groups])},
            tune_config=tune.TuneConfig(max_concurrent_trials=settings.max_concurrent),
            run_config=tune.RunConfig(name=f"arms-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str((exp.root / "tune").resolve()), verbose=verbose),
        )
        results = tuner.fit()
        return [f"{', '.join(r.config['labels'])}: {last_line(r.error)} (traceback: {r.path}/error.txt)"
                for r in results if r.error is not None]
    finally:
        if started:
            import ray

            ray.shutdown()


def run_and_record(exp: ResolvedExperiment, arms: list[Arm], config_path: str, overrides: list[str],
                   parent_id: str, exp_state: PipelineState) -> tuple[list[str], str | None]:
    """Run the arms as trials, then record in MLflow every arm the trials finished (now or in an
    earlier, interrupted attempt); returns (failed trials, where the recorded arms ran)."""
    from flows.offline_record import NotRunOffline, arm_state, record_arms

    settings = tune_settings(exp)
    assert settings is not None
    failed = run_trials(exp, arms, settings, config_path, overrides)
    experiment = exp.config.experiment
    found = []
    for arm in arms:
        try:
            found.append((arm, *arm_state(arm)))
        except NotRunOffline:  # failed in its trial, or finished earlier by the Prefect pipeline
            continue
    return failed, record_arms(found, parent_id, exp_state, experiment) or None
