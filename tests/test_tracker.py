"""The Tracker implementations of the one stage loop: event logs, statuses, nesting, replay into MLflow.

The replay test runs the tiny pipeline twice, once reporting straight to MLflow and once to event logs
replayed into MLflow afterwards, and compares the two run trees: the offline and Tune paths must give
the same runs, params, metric names, artifacts, datasets and model as a direct run.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from metacot_core.pipeline.tracker import FAILED, FINISHED, KILLED, JsonlTracker, NullTracker, read_runs

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "countdown" / "pipeline-tiny.yaml")


def test_jsonl_runs_nest_and_end_with_the_right_status(tmp_path: Path) -> None:
    tracker = JsonlTracker(tmp_path)
    with tracker.run("parent", tags={"stage": "pipeline"}, params={"a": {"b": 1}}) as parent:
        with tracker.run("ok") as ok:
            tracker.log_metrics({"loss": 2.0}, step=3)
            tracker.step_logger()(4, {"loss": 1.5, "note": "not a number"})
        with pytest.raises(ValueError), tracker.run("bad"):
            raise ValueError("boom")
        with pytest.raises(KeyboardInterrupt), tracker.run("stopped"):
            raise KeyboardInterrupt
    runs = read_runs(tmp_path)
    assert runs[parent].params == {"a.b": "1"} and runs[parent].tags == {"stage": "pipeline"}
    assert [status for _, status in tracker.child_runs(parent)] == [FINISHED, FAILED, KILLED]
    assert runs[ok].parent == parent and [(k, v, s) for k, v, _, s in runs[ok].metrics] == [
        ("loss", 2.0, 3), ("loss", 1.5, 4)]
    assert runs[parent].status == FINISHED


def test_a_resumed_run_keeps_its_id_and_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    tracker = JsonlTracker(tmp_path)
    with tracker.run("p") as first:
        pass
    with (tmp_path / f"{first}.jsonl").open("a") as log:
        log.write('{"event": "metrics", "step"')  # a writer killed mid-line
    with tracker.run("p", resume=first) as again:
        tracker.log_metrics({"x": 1.0})
    assert again == first
    run = read_runs(tmp_path)[first]
    assert run.status == FINISHED and [m[0] for m in run.metrics] == ["x"]
    with tracker.run("p", resume="no-such-run") as fresh:
        assert fresh != first


def test_the_null_tracker_keeps_nothing(tmp_path: Path) -> None:
    tracker = NullTracker()
    with tracker.run("x", params={"a": 1}) as run_id:
        tracker.log_metrics({"m": 1.0})
        tracker.step_logger()(1, {"m": 2.0})
    assert run_id and tracker.child_runs(run_id) == [] and list(tmp_path.iterdir()) == []


def _tree(client: mlflow.MlflowClient, run_id: str) -> dict:
    """What a run tree holds, without the values that differ between two runs of one config
    (times, ids, absolute folders), keyed by run name."""
    run = client.get_run(run_id)
    exp = run.info.experiment_id
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")
    skip_tags = ("mlflow.", "executed", "experiment.arm", "resumed_from")
    return {
        "name": run.info.run_name, "status": run.info.status,
        "tags": sorted(k for k in run.data.tags if not k.startswith(skip_tags)),
        "params": sorted(run.data.params),
        "metrics": sorted(run.data.metrics),
        "artifacts": sorted(a.path for a in client.list_artifacts(run_id)),
        "inputs": sorted((d.dataset.digest, d.tags[0].value) for d in run.inputs.dataset_inputs),
        "children": sorted((_tree(client, c.info.run_id) for c in children), key=lambda t: t["name"]),
    }


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_replayed_event_logs_give_the_run_tree_of_a_direct_run(tmp_path: Path, monkeypatch) -> None:
    from metacot_core.pipeline.config import load_pipeline
    from metacot_core.pipeline.loop import run_pipeline
    from tasks import tracking

    monkeypatch.chdir(ROOT)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    mlflow.set_tracking_uri(uri)
    overrides = ["experiment=tree-test", "sft.tracking.log_model=true"]
    direct = load_pipeline(TINY, [*overrides, f"output_root={tmp_path / 'direct'}"])
    logged = load_pipeline(TINY, [*overrides, f"output_root={tmp_path / 'logged'}"])
    assert direct.hashes == logged.hashes

    first = run_pipeline(direct, tracking.MlflowTracker("tree-test"))
    events = tmp_path / "events"
    second = run_pipeline(logged, JsonlTracker(events))
    replayed = tracking.replay(events, second["run_id"], "tree-test")
    assert tracking.replay(events, second["run_id"], "tree-test") == replayed  # not made twice

    client = mlflow.MlflowClient()
    a, b = _tree(client, first["run_id"]), _tree(client, replayed)
    assert a == b
    assert [c["name"] for c in a["children"]][:1] and "model" in json.dumps(a)
    sft = client.search_runs([client.get_run(replayed).info.experiment_id],
                             f"tags.mlflow.parentRunId = '{replayed}' and tags.stage = 'sft'")[0]
    assert len(client.get_metric_history(sft.info.run_id, "loss")) == direct.sft.train.max_steps


@pytest.mark.parametrize("on_before", [False, True])
def test_quiet_progress_leaves_transformers_bars_as_it_found_them(on_before: bool) -> None:
    """Logging a model used to turn transformers' bars back on for good, so every later load in the
    pipeline (the evaluation's) printed a "Loading weights" bar."""
    from transformers.utils import logging

    from tasks.tracking import quiet_progress

    before = logging.is_progress_bar_enabled()
    try:
        (logging.enable_progress_bar if on_before else logging.disable_progress_bar)()
        with quiet_progress():
            assert not logging.is_progress_bar_enabled()
        assert logging.is_progress_bar_enabled() is on_before
    finally:
        (logging.enable_progress_bar if before else logging.disable_progress_bar)()
