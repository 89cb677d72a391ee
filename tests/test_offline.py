"""Arms run with core calls only (`python -m cli.offline`, for a machine without
Prefect, Ray or MLflow), then recorded in MLflow here (`metacot experiment --record-offline`): the
recorded runs and results table must hold what the offline run measured, nothing may be logged for an
arm that did not finish, and neither a second offline run nor a second record may redo or duplicate work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from cli.offline import main, split_args
from metacot_core.pipeline.experiment import load_experiment
from metacot_core.pipeline.offline import EXECUTED_KEY, events_dir
from metacot_core.pipeline.state import PipelineState
from metacot_core.pipeline.tracker import read_runs

ROOT = Path(__file__).resolve().parents[1]
TINY = "configs/countdown/pipeline-tiny.yaml"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the stage config paths inside the pipeline YAMLs are relative to the repo


def _config(tmp_path: Path) -> str:
    data = {"name": "tiny-offline", "base": TINY, "experiment": "exp-offline",
            "overrides": ["evaluate.splits=[val_target]"],
            "arms": {"search": ["generate.format=sos"], "solution": ["generate.format=solution"]},
            "output_dir": str(tmp_path / "out")}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_split_args_reads_only_and_overrides() -> None:
    assert split_args(["e.yaml", "--only", "a", "x.y=1", "--only", "b"]) == ("e.yaml", ["a", "b"], ["x.y=1"])
    with pytest.raises(SystemExit, match="usage"):
        split_args([])
    with pytest.raises(SystemExit, match="--only needs"):
        split_args(["e.yaml", "--only"])


def test_the_offline_runner_imports_no_orchestration_package() -> None:
    code = ("import sys, cli.offline as m; m.split_args(['x']); "
            "print(sorted({n.split('.')[0] for n in sys.modules} & {'prefect', 'ray', 'mlflow', 'typer'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.e2e
def test_offline_arms_are_recorded_in_mlflow_once_with_their_measurements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from flows.offline_record import NotRunOffline, record_offline
    from tasks import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    mlflow.set_tracking_uri(uri)  # an earlier test may have pointed MLflow's global URI at its server
    config = _config(tmp_path)

    def runs() -> list:
        return mlflow.search_runs(experiment_names=["exp-offline"], output_format="list")

    # Only one arm ran: recording both is refused before anything is logged.
    assert main([config, "--only", "search"]) == 0
    with pytest.raises(NotRunOffline, match="arm solution: no finished offline run"):
        record_offline(config)
    assert mlflow.get_experiment_by_name("exp-offline") is None or runs() == []

    assert main([config, "--only", "solution"]) == 0
    exp = load_experiment(config)
    search = next(a for a in exp.arms if a.arm == "search").pipeline
    state = json.loads(search.state_path.read_text())
    logged = read_runs(events_dir(search))
    executed = logged[state["runs"]["jsonl"]].tags
    assert executed["executed.by"] == "cli.offline"
    assert all(len(entry["run_ids"]) == 1 for entry in state["stages"].values())  # the stage's logged run
    finished_at = {k: v["finished_at"] for k, v in state["stages"].items()}
    assert main([config, "--only", "search"]) == 0  # a second offline run reuses every finished stage
    again = json.loads(search.state_path.read_text())
    assert {k: v["finished_at"] for k, v in again["stages"].items()} == finished_at

    result = record_offline(config)
    parent = mlflow.get_run(result["mlflow"]["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags[EXECUTED_KEY] == "true"
    pipelines = [r for r in runs() if r.info.run_name.startswith("pipeline-tiny-offline-")]
    assert len(pipelines) == 2
    [sft_log] = [r for r in logged.values() if r.name.startswith("sft-")]
    history = [(step, value) for key, value, _, step in sft_log.metrics if key == "loss"]
    summary = json.loads((Path(search.evaluate.output_dir) / "summary.json").read_text())
    client = mlflow.MlflowClient()
    for run in pipelines:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["executed.hardware"] == executed["executed.hardware"]
    [recorded] = [r for r in pipelines if r.data.tags["experiment.arm"] == "search"]
    stages = {r.data.tags["stage"]: r for r in client.search_runs(
        [recorded.info.experiment_id], f"tags.mlflow.parentRunId = '{recorded.info.run_id}'")}
    losses = client.get_metric_history(stages["sft"].info.run_id, "loss")
    assert len(history) > 0 and [(m.step, m.value) for m in sorted(losses, key=lambda m: m.step)] == [
        (step, pytest.approx(value)) for step, value in history]
    solve = summary["splits"]["val_target"]["model"]["solve_rate"]
    assert recorded.data.metrics["val_target.solve_rate"] == pytest.approx(solve)
    assert {"configs", "pipeline_config.json"} <= {a.path for a in client.list_artifacts(
        recorded.info.run_id)}
    assert {"eval"} <= {a.path for a in client.list_artifacts(stages["evaluate"].info.run_id)}

    out = tmp_path / "out" / "tiny-offline"
    rows = pq.read_table(out / "results.parquet").to_pylist()
    [row] = [r for r in rows if r["arm"] == "search"]
    assert row["solve_rate"] == pytest.approx(solve) and row["n"] == 4
    md = (out / "results.md").read_text()
    assert f"- hardware: {executed['executed.hardware']} (run by cli.offline from" in md
    assert "python -m cli.offline" in md

    before = {r.info.run_id for r in runs()}
    assert record_offline(config)["mlflow"]["run_id"] == parent.info.run_id  # recorded twice: no new runs
    assert {r.info.run_id for r in runs()} == before
    assert PipelineState(search.state_path, search.key).parent_run_id == recorded.info.run_id
