"""SFT loop in-process on a tiny model: loss goes down, invariants hold, bad input fails clearly."""

from __future__ import annotations

import pytest
import torch
from sft_fixtures import tiny_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from metacot_core.config import ConfigError, build_config
from metacot_core.models import ModelConfig, build_model
from metacot_core.tokenizer import build_tokenizer, save_tokenizer
from metacot_core.training import sft
from metacot_core.training.checkpoint import CheckpointError
from metacot_core.training.config import SFTConfig
from metacot_core.training.data import collate_padded, make_examples, read_rows

TINY_MODEL = {"n_layer": 1, "d_model": 32, "n_head": 2}


def tiny_cfg(data, out, overrides: tuple[str, ...] = (), **train) -> SFTConfig:
    base = {
        "max_steps": 6,
        "seq_len": 256,
        "micro_batch_size": 2,
        "eval_every": 3,
        "checkpoint_every": 3,
        "warmup_steps": 1,
        "lr": 3e-3,
        "eval_batches": 4,
    }
    return build_config(
        SFTConfig,
        {
            "data": {"path": str(data), "val_split": "val"},
            "model": TINY_MODEL,
            "train": {**base, **train},
            "ray": {"enabled": False},
            "output_dir": str(out),
        },
        overrides,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("ds"), n_train=16, n_val=6, max_chars=1200)


@pytest.mark.e2e
def test_training_lowers_validation_loss_and_saves_a_loadable_model(data, tmp_path):
    cfg, _ = sft.prepare_run(tiny_cfg(data, tmp_path / "run", max_steps=12, eval_every=6, checkpoint_every=6))
    seen = []
    summary = sft.train(cfg, progress=False, on_metrics=lambda step, m: seen.append((step, m)))
    vals = [m["val_loss"] for _, m in seen if "val_loss" in m]
    assert len(vals) == 2 and vals[-1] < vals[0]
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]
    assert all(m["grad_norm"] > 0 and m["tokens_per_sec"] > 0 for _, m in seen)
    final = tmp_path / "run" / "final"
    model = AutoModelForCausalLM.from_pretrained(final, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(final, local_files_only=True)
    assert (final / "model.safetensors").is_file() and (final / "sft_config.json").is_file()
    assert model.get_input_embeddings().num_embeddings == len(tok)
    assert (tmp_path / "run" / "checkpoints" / "step-000006" / "trainer_state.pt").is_file()


def test_one_batch_of_two_equals_two_accumulated_batches_of_one(data):
    """TRL's invariant: the step normalises by the target tokens of the whole step."""
    rows = read_rows(data, "train", max_rows=2)
    tok = build_tokenizer(r[k] for r in rows for k in ("prompt", "trace"))
    exs, _ = make_examples(rows, tok, 512, "split")
    cfg = tiny_cfg(data, "unused")
    params = []
    for micro in (
        [collate_padded(exs, [0, 1], 0)],
        [collate_padded(exs, [0], 0), collate_padded(exs, [1], 0)],
    ):
        model = build_model(ModelConfig(**TINY_MODEL), len(tok), 1, 2, 0, seed=0)
        opt = sft.make_optimizer(model, cfg, torch.device("cpu"))
        sched = sft.make_scheduler(opt, cfg, 10)
        metrics = sft.train_step(model, opt, sched, micro, cfg, torch.device("cpu"))
        params.append((metrics["loss"], [p.detach().clone() for p in model.parameters()]))
    assert params[0][0] == pytest.approx(params[1][0], rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(params[0][1], params[1][1], strict=True))


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    assert sft.lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert sft.lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert sft.lr_factor(55, 10, 100, 0.1) == pytest.approx(0.55)  # halfway: 0.1 + 0.9 * 0.5
    assert sft.lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_bad_inputs_fail_before_anything_is_written(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer here"):
        sft.prepare_run(tiny_cfg(data, tmp_path / "a", [f"tokenizer.path={tmp_path / 'missing-tok'}"]))
    with pytest.raises(ValueError, match="not a model directory"):
        (tmp_path / "notmodel").mkdir()
        sft.prepare_run(tiny_cfg(data, tmp_path / "b", [f"model.init_from={tmp_path / 'notmodel'}"]))
    with pytest.raises(sft.DataError, match="no rows left after filtering"):
        sft.prepare_run(tiny_cfg(data, tmp_path / "c", ["data.formats=[mcts]"]))
    with pytest.raises(sft.DataError, match="leaves no room for the trace"):
        sft.prepare_run(tiny_cfg(data, tmp_path / "d", seq_len=8))
    with pytest.raises(ConfigError, match="max_steps: set max_steps or epochs"):
        build_config(SFTConfig, {"data": {"path": "x"}, "train": {"max_steps": None}})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_finished_run_is_never_overwritten(data, tmp_path):
    out = tmp_path / "run"
    (out / "final").mkdir(parents=True)
    marker = out / "final" / "config.json"
    marker.write_text("{}")
    with pytest.raises(CheckpointError, match="already holds a finished run"):
        sft.prepare_run(tiny_cfg(data, out))
    assert marker.read_text() == "{}"


def test_existing_tokenizer_is_used_not_rebuilt(data, tmp_path):
    rows = read_rows(data, "train")
    tok = build_tokenizer(r[k] for r in rows for k in ("prompt", "trace"))
    tok.add_tokens(["<extra-token-for-the-test>"])
    path = save_tokenizer(tok, tmp_path / "tok")
    cfg, run = sft.prepare_run(tiny_cfg(data, tmp_path / "run", [f"tokenizer.path={path}"]))
    assert len(run.tokenizer) == len(tok) and cfg.tokenizer.path == str(path)
