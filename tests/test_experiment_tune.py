"""An experiment whose arms run as Ray Tune trials (the crossover sweep): each dataset is made once, a
failed trial does not stop the others, the finished arms are in MLflow and the results table, and
running the command again resumes with only the missing arm."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from flows.experiment_tune import trial_groups, tune_settings
from metacot_core.pipeline.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[1]
TINY = "configs/countdown/pipeline-tiny.yaml"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the stage config paths inside the pipeline YAMLs are relative to the repo


def _config(tmp_path: Path, arms: dict[str, list[str]], grid: dict | None = None) -> str:
    data = {"name": "tiny-tune", "base": TINY, "experiment": "exp-tune", "arms": arms,
            "grid": grid or {}, "output_dir": str(tmp_path / "out"),
            "tune": {"max_concurrent": 2, "cpus_per_trial": 1}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_arms_sharing_an_sft_stage_run_in_one_trial(tmp_path: Path) -> None:
    config = _config(tmp_path, {"search": ["generate.format=sos"],
                                "search-star": ["generate.format=sos", "rl.enabled=true"],
                                "solution": ["generate.format=solution"]},
                     grid={"sft.train.max_steps": [2, 4]})
    exp = load_experiment(config)
    groups = [[a.label for a in g] for g in trial_groups(exp.arms)]
    assert groups == [["search-max_steps2", "search-star-max_steps2"],
                      ["search-max_steps4", "search-star-max_steps4"],
                      ["solution-max_steps2"], ["solution-max_steps4"]]
    assert tune_settings(exp) is not None
    assert tune_settings(load_experiment(config, ["tune.enabled=false"])) is None


@pytest.mark.e2e
def test_grid_as_tune_trials_records_arms_and_resumes_after_a_failed_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from flows.experiment import run_experiment
    from flows.experiment_tune import ArmsFailed
    from tasks import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    mlflow.set_tracking_uri(uri)  # an earlier test may have pointed MLflow's global URI at its server
    config = _config(tmp_path, {"solution": ["generate.format=solution"]},
                     grid={"sft.train.max_steps": [2, 4]})
    exp = load_experiment(config)
    broken = next(a for a in exp.arms if a.label == "solution-max_steps4")
    blocker = Path(broken.pipeline.sft.output_dir)
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the SFT folder goes: its trial fails")

    with pytest.raises(ArmsFailed, match=r"solution-max_steps4: NotADirectoryError: .* \(traceback: "):
        run_experiment(config)

    def runs() -> list:
        return mlflow.search_runs(experiment_names=["exp-tune"], output_format="list")

    [parent] = [r for r in runs() if r.info.run_name == "experiment-tiny-tune"]
    assert parent.info.status == "FAILED"
    pipelines = [r for r in runs() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [r.data.tags["experiment.arm"] for r in pipelines] == ["solution-max_steps2"]
    for run in pipelines:
        assert run.data.tags["executed.by"] == "Ray Tune trial" and run.data.tags["executed.trial"]
        assert "val_target.solve_rate" in run.data.metrics
    client = mlflow.MlflowClient()
    under = f"tags.mlflow.parentRunId = '{pipelines[0].info.run_id}' and tags.stage = 'sft'"
    [sft] = client.search_runs([parent.info.experiment_id], under)
    history = client.get_metric_history(sft.info.run_id, "loss")  # the replayed SFT run's step metrics
    assert max(m.step for m in history) == 2
    out = tmp_path / "out" / "tiny-tune"
    md = (out / "results.md").read_text()
    assert "Not finished yet: solution-max_steps4" in md and "(run by Ray Tune trial (1 trial) from" in md
    # the dataset is made once, before the trials; the other grid point links to it
    made, linked = (Path(a.pipeline.generate.output_dir) for a in exp.arms)
    assert not made.is_symlink() and linked.is_symlink() and (linked / "card.json").is_file()

    blocker.unlink()
    before = {r.info.run_id for r in runs()}
    result = run_experiment(config)  # resumes: only the failed arm runs
    new = [r for r in runs() if r.info.run_id not in before]
    [pipeline] = [r for r in new if r.data.tags.get("stage") == "pipeline"]  # replayed like a direct run:
    assert pipeline.data.tags["experiment.arm"] == "solution-max_steps4"  # one pipeline run, its stage runs
    assert all(r.data.tags["mlflow.parentRunId"] == pipeline.info.run_id for r in new if r is not pipeline)
    assert result["mlflow"]["run_id"] == parent.info.run_id
    assert mlflow.get_run(parent.info.run_id).info.status == "FINISHED"
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert sorted((r["arm"], r["sft.train.max_steps"]) for r in rows) == [("solution", 2), ("solution", 4)]
    assert (out / "plots" / "solve_rate_vs_flops.png").is_file()
    state = json.loads((out / "experiment-state.json").read_text())
    assert len(state["stages"]) == 2
