"""A job killed halfway resumes from its last checkpoint and continues the same loss curve."""

from __future__ import annotations

import pytest
from sft_fixtures import tiny_dataset
from test_sft_train import tiny_cfg

from metacot_core.training import sft
from metacot_core.training.checkpoint import CheckpointError


def _kill_at(step: int):
    def on_metrics(done: int, metrics: dict) -> None:
        if done == step:
            raise sft.StopTraining(f"killed at step {done}")

    return on_metrics


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("ds"), n_train=12, n_val=4, max_chars=1200)


@pytest.mark.parametrize(("batching", "optimizer"),
                         [("pack", "adamw"), ("bucket", "adamw"), ("pack", "muon")])
def test_resume_continues_the_same_loss_curve(data, tmp_path, batching, optimizer):
    # dropout on, so the test also covers the random state after resuming; muon: both optimizers' states
    over = {"max_steps": 8, "checkpoint_every": 4, "eval_every": 4, "batching": batching,
            "optimizer": optimizer}
    full_cfg, _ = sft.prepare_run(tiny_cfg(data, tmp_path / "full", ["model.dropout=0.1"], **over))
    full = sft.train(full_cfg, progress=False)

    cut_cfg, _ = sft.prepare_run(
        full_cfg.model_copy(update={"output_dir": str(tmp_path / "cut"), "tokenizer": full_cfg.tokenizer})
    )
    with pytest.raises(sft.StopTraining):
        sft.train(cut_cfg, progress=False, on_metrics=_kill_at(5))  # dies after the step-4 checkpoint
    assert not (tmp_path / "cut" / "final").exists()
    resumed = sft.train(cut_cfg, progress=False)
    assert resumed["start_step"] == 4
    want = [h["loss"] for h in full["history"][4:]]
    got = [h["loss"] for h in resumed["history"]]
    assert got == pytest.approx(want, rel=1e-6, abs=1e-7)
    assert resumed["val_loss"] == pytest.approx(full["val_loss"], rel=1e-6)
    # training compute counts the tokens before the kill too (the crossover plot's FLOPs axis)
    assert resumed["tokens_seen"] == full["tokens_seen"] > 0


def test_resume_from_an_incompatible_checkpoint_is_refused(data, tmp_path):
    cfg, _ = sft.prepare_run(tiny_cfg(data, tmp_path / "run", max_steps=4, checkpoint_every=2))
    with pytest.raises(sft.StopTraining):
        sft.train(cfg, progress=False, on_metrics=_kill_at(3))
    ckpt_dir = tmp_path / "run" / "checkpoints" / "step-000002"
    before = sorted(p.name for p in ckpt_dir.iterdir())
    changed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"micro_batch_size": 3})})
    with pytest.raises(CheckpointError, match="train.micro_batch_size was 2 in the checkpoint, now 3"):
        sft.prepare_run(changed)
    muon = cfg.model_copy(update={"train": cfg.train.model_copy(update={"optimizer": "muon"})})
    with pytest.raises(CheckpointError, match='train.optimizer was "adamw" in the checkpoint, now "muon"'):
        sft.prepare_run(muon)
    bigger = cfg.model_copy(update={"model": cfg.model.model_copy(update={"n_layer": 2})})
    with pytest.raises(CheckpointError, match="cannot resume: model was"):
        sft.prepare_run(bigger)
    never = cfg.model_copy(update={"resume": "never"})
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        sft.prepare_run(never)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == before
