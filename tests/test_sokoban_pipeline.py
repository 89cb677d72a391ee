"""Sokoban end to end through the core pipeline loop (generate -> SFT -> evaluate) at tiny size.

It proves the domain is wired through the generic interface alone: the registry finds the package
(no `plugins:`), the dataset carries the `row_fields` column, and the evaluation summary holds the
plan block computed by the Domain's `plan_metrics` hook from the problems' `eval_reference` and
`completion_fields`. The model is untrained, so only the plumbing is checked, not the numbers.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from metacot_core.pipeline.config import load_pipeline
from metacot_core.pipeline.loop import run_pipeline
from metacot_core.pipeline.tracker import NullTracker

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "sokoban" / "pipeline-tiny.yaml"
PLAN_KEYS = {"n_levels", "optimal_rate", "swc", "ilr", "deadlocks_per_trace", "deadlock_trace_share"}


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_tiny_sokoban_pipeline_reports_the_sokoban_plan_metrics(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the config names its stage files relative to the repository
    pipe = load_pipeline(TINY, [f"output_root={tmp_path}"])
    assert pipe.generate.plugins == [] and pipe.generate.domain == "sokoban"
    results = run_pipeline(pipe, NullTracker())

    rows = pq.read_table(Path(pipe.generate.output_dir) / "test").to_pylist()
    assert len(rows) == 4 and all(r["format"] == "sokoban-astar" and r["optimal_length"] > 0 for r in rows)

    split = results["evaluate"]["splits"]["test"]
    assert split["model"]["n_problems"] == 4
    plans = split["maze"]  # the plan block's summary key, whichever domain computes it
    assert PLAN_KEYS <= set(plans), sorted(plans)
    assert plans["n_levels"] == 4
    assert 0.0 <= plans["optimal_rate"] <= 1.0 and 0.0 <= plans["deadlock_trace_share"] <= 1.0
    assert "teacher" in split and "headline" in results
