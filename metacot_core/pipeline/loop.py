"""The stage loop: generate -> SFT -> RL (when enabled) -> evaluate, each stage once, reported to a tracker.

    results = run_pipeline(load_pipeline("configs/countdown/pipeline-tiny.yaml"), JsonlTracker(folder))

This is the only loop. The Prefect flow (flows/pipeline.py) passes the MLflow tracker and a `call`
that runs each stage as its Prefect subflow; the core runner and Ray Tune trials pass an event-log
tracker and the default `call` (every stage in this process); a sweep trial stops after SFT. So the
rules below hold for every way of running a pipeline:
  - stage folders are named by config hash; a stage whose state entry has its hash and whose output
    still exists (`state.stage_done`) is reused, not rerun;
  - a pipeline killed and started again reopens its pipeline run, marks the runs it left open KILLED,
    and continues (SFT and RL resume from their last checkpoints);
  - a dataset folder whose card matches the config is reused even without a state file;
  - one process at a time runs a given config (a lock beside its state file).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from metacot_core.evaluation.metrics import pooled_solves, wilson_interval
from metacot_core.pipeline.config import ResolvedPipeline
from metacot_core.pipeline.lock import folder_lock
from metacot_core.pipeline.stages import run_evaluate, run_generate, run_rl, run_sft
from metacot_core.pipeline.state import (
    PipelineState,
    adopt_current_dataset,
    stage_dir,
    stage_done,
    write_stage_config,
)
from metacot_core.pipeline.tracker import RUNNING, Tracker

HEADLINE = ("solve_rate", "validity_rate", "illegal_states_per_trace", "states_explored_mean",
            "tokens_per_trace_mean", "truncated_rate")
StageCall = Callable[[str, Any, Tracker], dict[str, Any]]
IN_PROCESS: dict[str, Callable[[Any, Tracker], dict[str, Any]]] = {
    "generate": run_generate, "sft": run_sft, "rl": run_rl, "evaluate": run_evaluate}


def in_process(stage: str, cfg: Any, tracker: Tracker) -> dict[str, Any]:
    """Run the stage here, with no Ray (SFT trains in this process whatever its `ray` settings say)."""
    if stage == "sft":
        cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"enabled": False})})
    return IN_PROCESS[stage](cfg, tracker)


def pipeline_tags(pipe: ResolvedPipeline) -> dict[str, str]:
    return {"stage": "pipeline", "pipeline.name": pipe.config.name, "config_hash": pipe.key}


def pipeline_params(pipe: ResolvedPipeline) -> dict[str, Any]:
    return {f"hash.{k}": v for k, v in pipe.hashes.items()} | {"name": pipe.config.name,
                                                               "rl.enabled": pipe.rl is not None}


def close_stale_children(tracker: Tracker, parent: str) -> list[str]:
    """Runs a killed attempt left RUNNING under the pipeline run, now marked KILLED."""
    stale = [run_id for run_id, status in tracker.child_runs(parent) if status == RUNNING]
    for run_id in stale:
        tracker.mark_killed(run_id)
    return stale


def run_stage(stage: str, pipe: ResolvedPipeline, cfg: Any, state: PipelineState, tracker: Tracker,
              parent: str, call: StageCall) -> dict[str, Any]:
    """The stage's summary: reused when it finished before with this hash, else run and recorded."""
    done = stage_done(pipe, stage)
    if done is not None:
        print(f"[{stage}] finished before with this config: reusing {stage_dir(pipe, stage)}", flush=True)
        return done["summary"]
    tracker.log_artifact(write_stage_config(pipe, stage), artifact_path="configs")
    before = {run_id for run_id, _ in tracker.child_runs(parent)}
    print(f"[{stage}] running", flush=True)
    start = time.perf_counter()
    summary = call(stage, cfg, tracker)
    seconds = time.perf_counter() - start
    new = [run_id for run_id, _ in tracker.child_runs(parent) if run_id not in before]
    state.finish(stage, pipe.hashes[stage], summary, new, seconds)
    tracker.log_metrics({f"seconds.{stage}": seconds})
    return summary


def run_pipeline(pipe: ResolvedPipeline, tracker: Tracker, call: StageCall = in_process,
                 stop_after: str | None = None, tags: Mapping[str, str] | None = None,
                 on_start: Callable[[PipelineState], None] | None = None) -> dict[str, Any]:
    """Every stage of `pipe` in order (up to `stop_after`), finished ones reused, under one pipeline
    run of `tracker`; returns each stage's summary, the headline metrics and the run's id.
    `on_start(state)` runs once this process holds the config (e.g. to close what a killed attempt of
    the orchestrator left open)."""
    with folder_lock(pipe.root, f".pipeline-{pipe.key}.lock"):
        state = PipelineState(pipe.state_path, pipe.key)
        if on_start is not None:
            on_start(state)
        if adopt_current_dataset(pipe, state):
            print(f"[generate] {pipe.generate.output_dir} already holds this config's dataset: reusing it",
                  flush=True)
        previous = state.run_id(tracker.kind)
        with tracker.run(f"pipeline-{pipe.config.name}", tags={**pipeline_tags(pipe), **(tags or {})},
                         resume=previous) as parent:
            if parent != previous:
                state.set_run(tracker.kind, parent)
                tracker.log_params(pipeline_params(pipe))
                tracker.log_dict(pipe.config.model_dump(mode="json"), "pipeline_config.json")
            else:
                tracker.set_tags(dict(tags or {}))
                stale = close_stale_children(tracker, parent)
                if stale:
                    print(f"resuming pipeline run {parent}; runs left open marked KILLED: {stale}",
                          flush=True)
            results = run_stages(pipe, state, tracker, parent, call, stop_after)
            results["headline"] = headline_metrics(results.get("evaluate") or {})
            if results["headline"]:
                tracker.log_metrics(results["headline"])
            results["run_id"] = parent
    return results


def run_stages(pipe: ResolvedPipeline, state: PipelineState, tracker: Tracker, parent: str,
               call: StageCall, stop_after: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    checkpoint = str(stage_dir(pipe, "sft") / "final")
    for stage in pipe.stages():
        cfg = pipe.stage_config(stage)
        if stage == "evaluate":
            cfg = cfg.model_copy(update={"checkpoint": checkpoint})
        results[stage] = run_stage(stage, pipe, cfg, state, tracker, parent, call)
        if stage == "rl":
            checkpoint = str(results["rl"].get("checkpoint") or checkpoint)
        if stage == stop_after:
            break
    return results


# ------------------------------------------------------------------------------------------- report


def headline_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Per held-out split: solve rate with its 95% interval, validity and the search-shape figures."""
    out: dict[str, float] = {}
    for split, metrics in (summary.get("splits") or {}).items():
        model = metrics.get("model", {})
        for key in (*HEADLINE, "solve_rate_ci_low", "solve_rate_ci_high", "answer_rate"):
            if isinstance(model.get(key), int | float):
                out[f"{split}.{key}"] = float(model[key])
        teacher = metrics.get("teacher", {})
        for key in ("teacher_any_solve_rate", "model_only_rate"):
            if isinstance(teacher.get(key), int | float):
                out[f"{split}.{key}"] = float(teacher[key])
    return out


def result_lines(pipe: ResolvedPipeline, results: Mapping[str, Any]) -> list[str]:
    """The per-split lines a person reads at the end of a pipeline."""
    which = "RL" if pipe.rl is not None else "SFT"
    lines = [f"== {pipe.config.name}: held-out results of the {which} model =="]
    for split, metrics in ((results.get("evaluate") or {}).get("splits") or {}).items():
        m = metrics.get("model", {})
        if "solve_rate" not in m:
            continue
        answer = f"answer-only (SoS's score) {m['answer_rate']:.3f}; " if "answer_rate" in m else ""
        line = (f"{split:>11}: solve rate {m['solve_rate']:.3f} [95% CI {m['solve_rate_ci_low']:.3f}, "
                f"{m['solve_rate_ci_high']:.3f}] over {m['n_problems']} problems; {answer}valid traces "
                f"{m.get('validity_rate', 0):.3f}; illegal states/trace "
                f"{m.get('illegal_states_per_trace', 0):.2f}")
        teacher = metrics.get("teacher", {})
        if "teacher_any_solve_rate" in teacher:
            line += (f"; teacher mix solves {teacher['teacher_any_solve_rate']:.3f}, "
                     f"model-only {teacher['model_only_rate']:.3f}")
        lines.append(line)
    pooled = pooled_solves(results.get("evaluate") or {})
    if len(lines) > 2 and pooled["n"]:
        low, high = wilson_interval(pooled["solved"], pooled["n"])
        lines.append(f"{'all':>11}: solved {pooled['solved']}/{pooled['n']} = "
                     f"{pooled['solved'] / pooled['n']:.3f} [95% CI {low:.3f}, {high:.3f}] pooled")
    return lines
