"""`python -m cli.offline EXPERIMENT.yaml [--only ARM ...] [a.b=value ...]`: an experiment's arms with core
calls only, for a machine that has PyTorch but not Prefect, Ray or MLflow (a lent GPU box).

Each arm runs through the one stage loop with an event-log tracker
(metacot_core.pipeline.offline.run_pipeline_offline); back on a machine with MLflow,
`metacot experiment EXPERIMENT.yaml --record-offline` replays the logs into MLflow runs. This module
imports only the standard library and metacot_core, so it runs where typer, Prefect, Ray and MLflow
are missing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no per-file bars (see cli/main.py)

from metacot_core.pipeline.offline import run_pipeline_offline  # noqa: E402
from metacot_core.pipeline.state import hardware, share_finished_stages  # noqa: E402


def split_args(argv: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """(experiment config, --only arms, overrides) from a command line."""
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m cli.offline <experiment.yaml> [--only ARM ...] "
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
