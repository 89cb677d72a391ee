"""Generation runs: in-process vs Ray give the same dataset, resume works, the flow logs to MLflow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
from toy_plugin import toy  # noqa: F401  (fixture used by name)

from metacot_core.config import build_config
from metacot_core.data.card import read_card
from metacot_core.data.config import GenerateConfig
from metacot_core.data.reader import recompute_content_hash
from metacot_core.data.schema import DatasetError
from tasks import tracking
from tasks.generate import generate_dataset, run_generation

TESTS = Path(__file__).resolve().parent
TOY = {"plugins": ["toy_plugin_register"], "domain": "toy", "format": "toy",
       "search": {"algorithm": "bfs"}, "counts": {"train": 12, "val": 5}, "shard_size": 4, "workers": 1}


def toy_cfg(out: Path, **changes) -> GenerateConfig:
    return build_config(GenerateConfig, {**TOY, "output_dir": str(out), **changes})


@pytest.mark.usefixtures("toy")
def test_in_process_run_writes_card_and_resumes(tmp_path):
    cfg = toy_cfg(tmp_path / "ds")
    card = generate_dataset(cfg, progress=False)
    assert card == read_card(cfg.output_dir)
    assert card["n_rows"] == 17 and card["n_shards"] == 5
    assert card["generation"]["shards_resumed"] == 0 and card["generation"]["rows_written"] == 17
    assert card["config"]["seed"] == 0 and card["content_hash"] == recompute_content_hash(cfg.output_dir)
    (Path(cfg.output_dir) / "train" / "part-00003.parquet.tmp-1-dead").write_bytes(b"killed worker")
    (Path(cfg.output_dir) / "val" / "part-00000.parquet").unlink()
    again = generate_dataset(cfg, progress=False)
    # the deleted shard held val rows 0..3: only it is written again
    assert again["generation"]["shards_resumed"] == 4 and again["generation"]["rows_written"] == 4
    assert again["content_hash"] == card["content_hash"]
    assert not list(Path(cfg.output_dir).rglob("*.tmp-*"))


@pytest.mark.usefixtures("toy")
def test_shards_outside_the_plan_are_refused(tmp_path):
    run_generation(toy_cfg(tmp_path), progress=False)
    with pytest.raises(DatasetError, match="part-00002.parquet: shard not in this generation plan"):
        run_generation(toy_cfg(tmp_path, counts={"train": 8, "val": 5}), progress=False)


@pytest.mark.e2e
@pytest.mark.usefixtures("toy")
def test_ray_workers_give_the_same_hash_as_one_process(tmp_path, monkeypatch):
    # Ray workers are fresh processes: they import the plugin module named in the config.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    single = generate_dataset(toy_cfg(tmp_path / "one"), progress=False)
    on_ray = generate_dataset(toy_cfg(tmp_path / "ray", workers=2), progress=False)
    assert on_ray["content_hash"] == single["content_hash"]
    assert on_ray["splits"] == single["splits"]


@pytest.mark.usefixtures("toy")
def test_a_killed_ray_worker_is_retried_and_the_dataset_is_complete_and_identical(tmp_path, monkeypatch):
    from toy_plugin import CRASH_ENV

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    single = generate_dataset(toy_cfg(tmp_path / "one"), progress=False)
    marker = tmp_path / "worker-died"
    monkeypatch.setenv(CRASH_ENV, str(marker))
    on_ray = generate_dataset(toy_cfg(tmp_path / "ray", workers=2), progress=False)
    assert marker.exists(), "no worker was killed: the test did not test anything"
    assert on_ray["content_hash"] == single["content_hash"]
    assert on_ray["splits"] == single["splits"]
    assert recompute_content_hash(tmp_path / "ray") == on_ray["content_hash"]


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.e2e
@pytest.mark.usefixtures("toy")
def test_flow_logs_params_metrics_card_and_dataset(tmp_path, monkeypatch, prefect_harness):
    from flows.generate_traces import generate_traces

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    config = tmp_path / "toy.yaml"
    config.write_text(json.dumps({**TOY, "output_dir": str(tmp_path / "ds")}))
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig

    card = generate_traces(load_config(GenerateConfig, str(config), ["counts.train=6"]))
    assert card["n_rows"] == 11

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.run_name == "generate-traces" and run.info.status == "FINISHED"
    assert run.data.params["counts.train"] == "6" and run.data.params["domain"] == "toy"
    assert run.data.metrics["rows"] == 11 and run.data.metrics["solved_rate"] == card["solved_rate"]
    assert "trace_tokens.p90" in run.data.metrics and "traces_per_s" in run.data.metrics
    assert run.data.tags["dataset.content_hash"] == card["content_hash"]
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == card["content_hash"][:36]
    assert json.loads(dataset_input.dataset.source)["uri"] == str((tmp_path / "ds").resolve())
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    assert artifacts == ["card.json"]
