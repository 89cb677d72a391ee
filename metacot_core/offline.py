"""Run an experiment's arms with core calls only: for a machine that has PyTorch but not Prefect, Ray
or MLflow (a lent GPU box that cannot install packages, a notebook, a batch job).

    python -m metacot_core.offline configs/countdown/sos-vs-solution-gpu-lease.yaml --only search
    python -m metacot_core.offline <experiment.yaml> [--only ARM ...] [a.b=value ...]

Each arm's pipeline writes the very folders the Prefect pipeline writes (dataset, SFT, RL and
evaluation folders named by config hash) and the same pipeline state file, with the stages'
summaries and seconds but no MLflow run ids; a stage already finished with the same hash is reused,
and a killed SFT resumes from its last checkpoint, as in the flow. The SFT stage also keeps its
per-step history (`history.json` in its folder), which the state file leaves out. Back on a machine
with MLflow, `metacot experiment <experiment.yaml> --record-offline` turns those folders into MLflow
runs and the experiment's results table (flows/experiment.py), marked with the hardware that ran them.
Generation runs in this process (no Ray): make big datasets beforehand with `metacot generate`, or
copy them along, and they are reused when their card matches the config.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metacot_core.data.card import CARD_NAME
from metacot_core.pipeline_config import ResolvedPipeline
from metacot_core.pipeline_state import (
    PipelineState,
    dataset_is_current,
    hardware,
    share_finished_stages,
    write_stage_config,
)

HISTORY_NAME = "history.json"
EXECUTED_KEY = "executed_offline"


def _generate(pipe: ResolvedPipeline) -> dict[str, Any]:
    from metacot_core.data.generate import checked_plan, finish_dataset, write_shard

    gen = pipe.generate
    start = time.perf_counter()
    shards = [write_shard(gen, spec) for spec in checked_plan(gen)]
    return finish_dataset(gen, shards, time.perf_counter() - start, workers=1)


def _sft(pipe: ResolvedPipeline) -> dict[str, Any]:
    from metacot_core.training import sft

    in_process = pipe.sft.ray.model_copy(update={"enabled": False})
    cfg, _ = sft.prepare_run(pipe.sft.model_copy(update={"ray": in_process}))
    summary = sft.train(cfg)
    (Path(cfg.output_dir) / HISTORY_NAME).write_text(json.dumps(summary.get("history", [])))
    return summary


def _rl(pipe: ResolvedPipeline) -> dict[str, Any]:
    from metacot_core.rl.runner import run as run_rl

    assert pipe.rl is not None
    return run_rl(pipe.rl)


def _evaluate(pipe: ResolvedPipeline, checkpoint: str) -> dict[str, Any]:
    from metacot_core.evaluation.runner import run_evaluation

    return run_evaluation(pipe.evaluate.model_copy(update={"checkpoint": checkpoint}))[1]


def _stage(stage: str, pipe: ResolvedPipeline, state: PipelineState, call: Callable[[], dict[str, Any]],
           output: Path) -> dict[str, Any]:
    """Run `call` unless this stage (same hash) finished and its output still exists."""
    done = state.finished(stage, pipe.hashes[stage])
    if done and output.exists():
        print(f"[{stage}] finished before with this config: reusing {output}", flush=True)
        return done["summary"]
    print(f"[{stage}] running", flush=True)
    write_stage_config(pipe, stage)  # kept beside the stage folders, as the flow keeps it
    start = time.perf_counter()
    summary = call()
    state.finish(stage, pipe.hashes[stage], summary, [], time.perf_counter() - start)
    return summary


def run_pipeline_offline(pipe: ResolvedPipeline, by: str = "metacot_core.offline",
                         stop_after: str | None = None,
                         make_dataset: Callable[[ResolvedPipeline], dict[str, Any]] | None = None,
                         trial: str | None = None) -> dict[str, Any]:
    """Every stage of one pipeline in this process (up to `stop_after`), skipping finished ones;
    returns the summaries. `by` (and `trial`, the Tune trial's name) say in the state file what ran
    it, for MLflow later; `make_dataset` replaces the in-process generation (e.g. with Ray's)."""
    generate = make_dataset or _generate
    state = PipelineState(pipe.state_path, pipe.key)
    state.data[EXECUTED_KEY] = {"hardware": hardware(), "by": by, "trial": trial,
                                "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    state.save()
    data_dir = Path(pipe.generate.output_dir)
    card = dataset_is_current(pipe)
    if card is not None and not state.finished("generate", pipe.hashes["generate"]):
        print(f"[generate] {data_dir} already holds this config's dataset: reusing it", flush=True)
        state.finish("generate", pipe.hashes["generate"], {"content_hash": card["content_hash"],
                                                           "cached": True}, [])
    results = {"generate": _stage("generate", pipe, state, lambda: generate(pipe), data_dir / CARD_NAME)}
    if stop_after == "generate":
        return results
    final = Path(pipe.sft.output_dir) / "final"
    results["sft"] = _stage("sft", pipe, state, lambda: _sft(pipe), final)
    checkpoint = str(final)
    if pipe.rl is not None:
        results["rl"] = _stage("rl", pipe, state, lambda: _rl(pipe), Path(pipe.rl.output_dir))
        checkpoint = str(results["rl"].get("checkpoint") or checkpoint)
    results["evaluate"] = _stage("evaluate", pipe, state, lambda: _evaluate(pipe, checkpoint),
                                 Path(pipe.evaluate.output_dir) / "summary.json")
    return results


def split_args(argv: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """(experiment config, --only arms, overrides) from a command line."""
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m metacot_core.offline <experiment.yaml> [--only ARM ...] "
                         "[a.b=value ...]")
    only: list[str] = []
    overrides: list[str] = []
    rest = list(argv[1:])
    while rest:
        item = rest.pop(0)
        if item == "--only":
            if not rest:
                raise SystemExit("--only needs an arm name")
            only.append(rest.pop(0))
        else:
            overrides.append(item)
    return argv[0], only, overrides


def main(argv: Sequence[str] | None = None) -> int:
    from metacot_core.experiment_config import load_experiment

    config, only, overrides = split_args(list(sys.argv[1:] if argv is None else argv))
    exp = load_experiment(config, overrides)
    for arm in exp.select(only or None):
        shared = share_finished_stages(arm.pipeline, [a.pipeline for a in exp.arms])
        print(f"== arm {arm.label} ({arm.pipeline.config.name}) on {hardware()}"
              + (f": sharing finished {', '.join(shared)} with an identical arm" if shared else ""),
              flush=True)
        start = time.perf_counter()
        results = run_pipeline_offline(arm.pipeline)
        for split, metrics in (results["evaluate"].get("splits") or {}).items():
            model = metrics.get("model", {})
            print(f"   {split}: solve rate {model.get('solve_rate')} over {model.get('n_problems')} "
                  f"(answer-only {model.get('answer_rate')})", flush=True)
        print(f"== arm {arm.label}: {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
