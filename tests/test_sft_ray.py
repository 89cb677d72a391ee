"""SFT in 2 Ray Train workers (DDP over gloo on the CPU), logged to MLflow under a parent run."""

from __future__ import annotations

import os

import mlflow
import pytest
from sft_fixtures import tiny_dataset
from test_sft_train import tiny_cfg

from tasks import tracking


@pytest.fixture
def ray_local(monkeypatch):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.e2e
def test_two_cpu_workers_train_and_everything_lands_in_mlflow(tmp_path, monkeypatch, ray_local):
    from metacot_core.pipeline.stages import run_sft
    from tasks.sft import train_sft

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    data = tiny_dataset(tmp_path / "ds", n_train=16, n_val=4, max_chars=1200)
    cfg = tiny_cfg(
        data,
        tmp_path / "run",
        ["ray.enabled=true", "ray.num_workers=2", "ray.cpus_per_worker=1", "tracking.experiment=sft-test"],
        max_steps=4,
        eval_every=2,
        micro_batch_size=1,
    )
    tracking.configure("sft-test")
    with mlflow.start_run(run_name="pipeline") as parent:
        summary = run_sft(cfg, tracking.MlflowTracker("sft-test"), train=train_sft)
    assert summary["world_size"] == 2 and summary["final_step"] == 4
    assert os.path.isfile(tmp_path / "run" / "final" / "model.safetensors")

    client = mlflow.MlflowClient()
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.data.params["ray.num_workers"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4]
    for name in ("lr", "grad_norm", "tokens_per_sec", "val_loss", "final_val_loss"):
        assert client.get_metric_history(run.info.run_id, name), name
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest and dataset_input.dataset.name == "ds"

    model_uri = f"runs:/{run.info.run_id}/model"
    try:
        logged = mlflow.search_logged_models(
            filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list"
        )
        model_uri = logged[0].model_uri
    except Exception:  # older mlflow: runs:/ URI
        pass
    parts = mlflow.transformers.load_model(model_uri, return_type="components")
    assert parts["model"].config.n_layer == 1 and len(parts["tokenizer"]) > 100
