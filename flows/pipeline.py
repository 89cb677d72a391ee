"""Prefect flow `metacot-pipeline`: generate traces -> SFT -> RL (optional) -> evaluate, one experiment.

Run it:
    metacot run --config configs/countdown/pipeline-cpu.yaml
    metacot run --config configs/countdown/pipeline-cpu.yaml sft.train.max_steps=100 rl.enabled=false
    python -m flows.pipeline configs/countdown/pipeline-tiny.yaml

Each stage is the stage's own flow run as a subflow, so the Prefect UI shows the same flow runs as
running the stages one by one. Everything lands under one MLflow parent run (`pipeline-<name>`) with a
nested run per stage. Stage folders are named by config hash (see metacot_core.pipeline_config), and
a small state file next to them records each finished stage and its MLflow run ids:
  - a re-run with the same config skips finished stages and reuses the dataset and checkpoints;
  - a pipeline killed during SFT, started again, reopens the same parent run, skips generation (no
    second generate run), marks the killed stage's run KILLED, and SFT resumes from its checkpoint;
  - a dataset folder whose card matches the config is reused even without a state file.
Generation is retried (`generate.retries`); training is not, a re-run resumes it instead.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from prefect import flow

from metacot_core.data.card import CARD_NAME
from metacot_core.output_lock import output_lock
from metacot_core.pipeline_config import ResolvedPipeline, load_pipeline
from metacot_core.pipeline_state import PipelineState, dataset_is_current, write_stage_config
from tasks import tracking

FLOW_NAME = "metacot-pipeline"
HEADLINE = ("solve_rate", "validity_rate", "illegal_states_per_trace", "states_explored_mean",
            "tokens_per_trace_mean", "truncated_rate")


class TrackingUnreachable(RuntimeError):
    """The configured MLflow server does not answer."""


# --------------------------------------------------------------------------------------------- tracking


def check_tracking(fallback: bool = False, timeout: float = 3.0) -> str:
    """The tracking URI to use; a server that does not answer is an error unless `fallback` is set,
    in which case runs go to the embedded SQLite store (and the environment variable is dropped)."""
    uri = tracking.default_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return uri
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return uri
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
        reason = str(getattr(err, "reason", err))
    local = f"sqlite:///{tracking.PROJECT_ROOT / 'mlflow.db'}"
    if not fallback:
        raise TrackingUnreachable(
            f"MLflow tracking server {uri} is not reachable ({reason}); start it (metacot mlflow-server), "
            f"fix MLFLOW_TRACKING_URI, or pass --mlflow-fallback to log to {local}")
    print(f"warning: MLflow server {uri} is not reachable ({reason}); logging to {local} as asked")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return tracking.default_tracking_uri()


def _run_exists(run_id: str | None) -> bool:
    if not run_id:
        return False
    try:
        mlflow.get_run(run_id)
    except Exception:  # noqa: BLE001 - each store raises its own error for an unknown id
        return False
    return True


def child_runs(parent_id: str) -> list[Any]:
    """Runs nested directly under `parent_id`, oldest first."""
    client = mlflow.MlflowClient()
    exp = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                              order_by=["attributes.start_time ASC"], max_results=1000)
    return list(runs)


def close_stale_children(parent_id: str) -> list[str]:
    """Mark runs left RUNNING under the parent by a killed pipeline as KILLED; returns their ids."""
    client = mlflow.MlflowClient()
    stale = [r.info.run_id for r in child_runs(parent_id) if r.info.status == "RUNNING"]
    for run_id in stale:
        client.set_terminated(run_id, status="KILLED")
    return stale


# ----------------------------------------------------------------------------------------------- stages


def stage_generate(pipe: ResolvedPipeline) -> dict[str, Any]:
    from flows.generate_traces import generate_traces

    subflow = generate_traces.with_options(retries=pipe.config.generate.retries, retry_delay_seconds=2)
    return subflow(config_path=write_stage_config(pipe, "generate"), overrides=[])


def stage_sft(pipe: ResolvedPipeline) -> dict[str, Any]:
    from flows.train_sft import train_sft

    subflow = train_sft.with_options(retries=pipe.config.sft.retries)  # a retry resumes the checkpoint
    return subflow(config_path=write_stage_config(pipe, "sft"), overrides=[])


def stage_rl(pipe: ResolvedPipeline) -> dict[str, Any]:
    from flows.train_rl import train_rl

    subflow = train_rl.with_options(retries=pipe.config.rl.retries)
    return subflow(config_path=write_stage_config(pipe, "rl"), overrides=[])


def stage_evaluate(pipe: ResolvedPipeline, checkpoint: str) -> dict[str, Any]:
    from flows.evaluate import evaluate

    subflow = evaluate.with_options(retries=pipe.config.evaluate.retries)
    return subflow(config_path=write_stage_config(pipe, "evaluate"), overrides=[], checkpoint=checkpoint)


def run_stage(stage: str, pipe: ResolvedPipeline, state: PipelineState, parent_id: str,
              call: Callable[[], dict[str, Any]], outputs: list[Path]) -> dict[str, Any]:
    """Run `call` unless the state says this stage (same hash) finished and its outputs still exist."""
    done = state.finished(stage, pipe.hashes[stage])
    if done and all(p.exists() for p in outputs):
        print(f"[{stage}] finished before with this config: reusing {', '.join(map(str, outputs))}")
        return done["summary"]
    before = {r.info.run_id for r in child_runs(parent_id)}
    print(f"[{stage}] running")
    start = time.perf_counter()
    summary = call()
    seconds = time.perf_counter() - start
    new = [r.info.run_id for r in child_runs(parent_id) if r.info.run_id not in before]
    state.finish(stage, pipe.hashes[stage], summary, new, seconds)
    return summary


@contextmanager
def parent_run(pipe: ResolvedPipeline, state: PipelineState) -> Iterator[mlflow.ActiveRun]:
    """The pipeline's MLflow run: the one a killed earlier attempt opened, else a new one."""
    tracking.configure(pipe.config.experiment)
    if _run_exists(state.parent_run_id):
        with mlflow.start_run(run_id=state.parent_run_id) as run:
            stale = close_stale_children(run.info.run_id)
            if stale:
                print(f"resuming pipeline run {run.info.run_id}; runs left open marked KILLED: {stale}")
            yield run
        return
    tags = {"stage": "pipeline", "pipeline.name": pipe.config.name, "config_hash": pipe.key}
    with mlflow.start_run(run_name=f"pipeline-{pipe.config.name}", tags=tags) as run:
        state.set_parent(run.info.run_id)
        mlflow.log_params({f"hash.{k}": v for k, v in pipe.hashes.items()}
                          | {"name": pipe.config.name, "rl.enabled": pipe.rl is not None})
        mlflow.log_dict(pipe.config.model_dump(mode="json"), "pipeline_config.json")
        yield run


# ------------------------------------------------------------------------------------------------- flow


def run_pipeline(pipe: ResolvedPipeline, mlflow_fallback: bool = False) -> dict[str, Any]:
    """Every stage in order (skipping finished ones) under one MLflow parent run; returns the results."""
    check_tracking(mlflow_fallback)
    state = PipelineState(pipe.state_path, pipe.key)
    results: dict[str, Any] = {}
    with output_lock(pipe.state_path), parent_run(pipe, state) as parent:  # one live run per config
        pid = parent.info.run_id
        data_dir = Path(pipe.generate.output_dir)
        card = dataset_is_current(pipe)
        if card is not None and not state.finished("generate", pipe.hashes["generate"]):
            print(f"[generate] {data_dir} already holds this config's dataset: reusing it")
            state.finish("generate", pipe.hashes["generate"], {"content_hash": card["content_hash"],
                                                               "cached": True}, [])
        results["generate"] = run_stage("generate", pipe, state, pid, lambda: stage_generate(pipe),
                                        [data_dir / CARD_NAME])
        final = Path(pipe.sft.output_dir) / "final"
        results["sft"] = run_stage("sft", pipe, state, pid, lambda: stage_sft(pipe), [final])
        checkpoint = str(final)
        if pipe.rl is not None:
            results["rl"] = run_stage("rl", pipe, state, pid, lambda: stage_rl(pipe),
                                      [Path(pipe.rl.output_dir)])
            checkpoint = str(results["rl"].get("checkpoint") or checkpoint)
        results["evaluate"] = run_stage("evaluate", pipe, state, pid,
                                        lambda: stage_evaluate(pipe, checkpoint),
                                        [Path(pipe.evaluate.output_dir) / "summary.json"])
        headline = headline_metrics(results["evaluate"])
        if headline:
            mlflow.log_metrics(headline)
        results["headline"] = headline
        results["mlflow"] = {"run_id": pid, "experiment_id": parent.info.experiment_id,
                             "tracking_uri": mlflow.get_tracking_uri()}
    print(report(pipe, results))
    return results


@flow(name=FLOW_NAME, log_prints=True, validate_parameters=True)
def pipeline(config_path: str, overrides: list[str] | None = None,
             mlflow_fallback: bool = False) -> dict[str, Any]:
    """One experiment end to end: generate -> SFT -> RL (when enabled) -> evaluate; returns each
    stage's summary, the headline metrics and where the MLflow runs are."""
    return run_pipeline(load_pipeline(config_path, overrides or []), mlflow_fallback)


# ----------------------------------------------------------------------------------------------- report


def headline_metrics(summary: dict[str, Any]) -> dict[str, float]:
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


def report(pipe: ResolvedPipeline, results: dict[str, Any]) -> str:
    """The lines a person reads at the end: per-split results and where to look in MLflow."""
    which = "RL" if pipe.rl is not None else "SFT"
    lines = [f"== {pipe.config.name}: held-out results of the {which} model =="]
    for split, metrics in (results["evaluate"].get("splits") or {}).items():
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
    ml = results["mlflow"]
    lines.append(f"MLflow: parent run {ml['run_id']} (experiment {pipe.config.experiment!r}, id "
                 f"{ml['experiment_id']}) at {ml['tracking_uri']}")
    page = f"#/experiments/{ml['experiment_id']}/runs/{ml['run_id']}"
    if not ml["tracking_uri"].startswith("http"):
        lines.append(f"  browse: metacot mlflow-server, then http://127.0.0.1:5000/{page}")
    else:
        lines.append(f"  browse: {ml['tracking_uri'].rstrip('/')}/{page}")
    lines.append(f"stage folders: {pipe.root}")
    return "\n".join(lines)


if __name__ == "__main__":
    pipeline(sys.argv[1], sys.argv[2:])
