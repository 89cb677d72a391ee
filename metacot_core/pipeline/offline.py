"""Run an experiment's arms with core calls only: for a machine that has PyTorch but not Prefect, Ray
or MLflow (a lent GPU box that cannot install packages, a notebook, a batch job).

    python -m metacot_core.pipeline.offline configs/countdown/sos-vs-solution-gpu-lease.yaml --only search
    python -m metacot_core.pipeline.offline <experiment.yaml> [--only ARM ...] [a.b=value ...]

Each arm runs through the one stage loop (metacot_core.pipeline.loop) with every stage in this process
and an event-log tracker: the very stage folders and pipeline state file the Prefect pipeline writes,
plus one JSON-lines event log per run in `<arm folder>/events/` (params, every SFT and RL step's
metrics, artifacts, the dataset, the model). A stage already finished with the same hash is reused,
and a killed SFT resumes from its last checkpoint, as in the flow. Back on a machine with MLflow,
`metacot experiment <experiment.yaml> --record-offline` replays those logs into MLflow runs
(tasks/tracking.py) and writes the experiment's results table, marked with the hardware that ran them.
Generation runs in this process (no Ray): make big datasets beforehand with `metacot generate`, or
copy them along, and they are reused when their card matches the config.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metacot_core.pipeline.config import ResolvedPipeline
from metacot_core.pipeline.loop import StageCall, in_process, run_pipeline
from metacot_core.pipeline.state import hardware, share_finished_stages
from metacot_core.pipeline.tracker import JsonlTracker

EXECUTED_KEY = "executed_offline"
EVENTS_DIR = "events"


def events_dir(pipe: ResolvedPipeline) -> Path:
    """Where the event logs of a pipeline's runs go (beside its stage folders)."""
    return pipe.root / EVENTS_DIR


def executed_tags(by: str, trial: str | None = None) -> dict[str, str]:
    """Tags saying where and how the runs were made, kept on the pipeline run for MLflow later."""
    return {EXECUTED_KEY: "true", "executed.hardware": hardware(), "executed.by": by,
            "executed.started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "executed.trial": trial or ""}


def run_pipeline_offline(pipe: ResolvedPipeline, by: str = "metacot_core.pipeline.offline",
                         stop_after: str | None = None, call: StageCall = in_process,
                         trial: str | None = None) -> dict[str, Any]:
    """The stage loop with an event-log tracker (up to `stop_after`); `by` and `trial` (a Tune trial's
    name) say what ran it; `call` may run a stage another way (e.g. generation on Ray)."""
    tracker = JsonlTracker(events_dir(pipe))
    return run_pipeline(pipe, tracker, call=call, stop_after=stop_after, tags=executed_tags(by, trial))


def split_args(argv: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """(experiment config, --only arms, overrides) from a command line."""
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m metacot_core.pipeline.offline <experiment.yaml> [--only ARM ...] "
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
    from metacot_core.pipeline.experiment import load_experiment

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
