"""Ray Tune sweeps over pipeline settings: the search space, picking the best trial, the written config,
and a two-trial sweep end to end with every trial an MLflow run."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from flows.sweep import SweepParam, SweepSettings
from metacot_core.pipeline.config import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "countdown" / "pipeline-tiny.yaml"
SWEEP = ROOT / "configs" / "countdown" / "sweep-cpu.yaml"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_space_maps_to_tune_distributions() -> None:
    from ray.tune.search.sample import Categorical, Float, Integer

    from flows.sweep import tune_space

    space = tune_space({
        "sft.train.lr": SweepParam(kind="loguniform", low=1e-4, high=1e-2),
        "sft.model.n_layer": SweepParam(kind="choice", values=[1, 2]),
        "generate.counts.train": SweepParam(kind="randint", low=10, high=12),
        "sft.train.seed": SweepParam(kind="grid", values=[0, 1]),
    })
    assert isinstance(space["sft.train.lr"], Float) and space["sft.train.lr"].lower == 1e-4
    assert isinstance(space["sft.model.n_layer"], Categorical)
    assert space["sft.model.n_layer"].categories == [1, 2]
    assert isinstance(space["generate.counts.train"], Integer) and space["generate.counts.train"].upper == 13
    assert space["sft.train.seed"] == {"grid_search": [0, 1]}


def _settings(metric: str) -> SweepSettings:
    return SweepSettings(space={"sft.train.lr": SweepParam(kind="choice", values=[1])}, metric=metric)


def test_best_trial_uses_the_metric_and_its_direction() -> None:
    from flows.sweep import best_trial

    results = [SimpleNamespace(config={"sft.train.lr": 0.1}, metrics={"val_loss": 2.0, "solve_rate": 0.5}),
               SimpleNamespace(config={"sft.train.lr": 0.2}, metrics={"val_loss": 1.0, "solve_rate": 0.1}),
               SimpleNamespace(config={"sft.train.lr": 0.3}, metrics={"val_loss": math.nan}),  # stopped early
               SimpleNamespace(config={"sft.train.lr": 0.4}, metrics={})]  # failed before reporting
    assert best_trial(results, _settings("val_loss"))[0] == {"sft.train.lr": 0.2}
    assert best_trial(results, _settings("solve_rate"))[0] == {"sft.train.lr": 0.1}
    assert best_trial(results[2:], _settings("val_loss")) is None


def test_best_config_reproduces_the_trial(tmp_path: Path) -> None:
    from flows.sweep import write_best_config

    pipe = load_pipeline(str(SWEEP))
    params = {"sft.train.lr": 0.004, "generate.format": ["sos", "solution"], "sft.model.n_layer": 1}
    path = write_best_config(pipe, params, tmp_path / "best.yaml")
    assert "sweep" not in yaml.safe_load(path.read_text())
    best = load_pipeline(str(path))
    assert best.sft.train.lr == 0.004 and best.sft.model.n_layer == 1
    assert best.generate.formats == ["sos", "solution"]
    assert best.hashes == load_pipeline(str(SWEEP), ['sft.train.lr=0.004', 'sft.model.n_layer=1',
                                                     'generate.format=["sos", "solution"]']).hashes


@pytest.mark.e2e
def test_two_trial_sweep_logs_each_trial_and_writes_the_best_config(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from flows.sweep import run_sweep
    from tasks import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    data = yaml.safe_load(TINY.read_text())
    data["output_root"] = str(tmp_path / "runs")
    data["sweep"] = {"space": {"sft.train.lr": {"kind": "grid", "values": [0.02, 0.002]}},
                     "num_samples": 1, "max_concurrent": 2, "cpus_per_trial": 1, "eval_problems": 2,
                     "output_dir": str(tmp_path / "sweeps"), "metric": "val_loss"}
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(data))

    result = run_sweep(str(config), verbose=0)
    assert result["trials"] == 2 and result["errors"] == []
    assert result["best_params"]["sft.train.lr"] in (0.02, 0.002)
    best = load_pipeline(result["best_config"])
    assert best.sft.train.lr == result["best_params"]["sft.train.lr"]

    runs = mlflow.search_runs(experiment_names=["metacot"], output_format="list")
    parent = next(r for r in runs if r.info.run_id == result["mlflow_run_id"])
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 2
    lrs = sorted(float(r.data.params["sft.train.lr"]) for r in trials)
    assert lrs == [0.002, 0.02]
    for trial in trials:
        steps = [m.step for m in mlflow.MlflowClient().get_metric_history(trial.info.run_id, "val_loss")]
        if trial.info.status == "FINISHED":  # ran to the end: every evaluation, then the held-out check
            assert steps == [2, 4] and "solve_rate" in trial.data.metrics
        else:  # ASHA stopped it after its first report (eval_every=2), worse than the other trial there
            assert trial.info.status == "KILLED" and steps[0] == 2
    assert any(t.info.status == "FINISHED" for t in trials)
    assert parent.data.metrics["best.val_loss"] == min(t.data.metrics["val_loss"] for t in trials)
