"""Run an experiment's arms with core calls only: for a machine that has PyTorch but not Prefect, Ray
or MLflow (a lent GPU box that cannot install packages, a notebook, a batch job).

    python -m cli.offline configs/countdown/sos-vs-solution-gpu-lease.yaml --only search   (the command line)
    run_pipeline_offline(load_pipeline("configs/countdown/pipeline-tiny.yaml"))             (from Python)

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

import time
from pathlib import Path
from typing import Any

from metacot_core.pipeline.config import ResolvedPipeline
from metacot_core.pipeline.loop import StageCall, in_process, run_pipeline
from metacot_core.pipeline.state import hardware
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


def run_pipeline_offline(pipe: ResolvedPipeline, by: str = "cli.offline",
                         stop_after: str | None = None, call: StageCall = in_process,
                         trial: str | None = None) -> dict[str, Any]:
    """The stage loop with an event-log tracker (up to `stop_after`); `by` and `trial` (a Tune trial's
    name) say what ran it; `call` may run a stage another way (e.g. generation on Ray)."""
    tracker = JsonlTracker(events_dir(pipe))
    return run_pipeline(pipe, tracker, call=call, stop_after=stop_after, tags=executed_tags(by, trial))
