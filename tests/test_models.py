"""Model presets built from config (never downloaded), SDPA attention, local checkpoints."""

from __future__ import annotations

import pytest
import torch

from metacot_core.config import ConfigError, build_config
from metacot_core.models import PRESETS, ModelConfig, build_model, count_parameters, load_local_model

VOCAB = 1400


@pytest.mark.parametrize(
    "preset,low,high",
    [("1m", 0.4e6, 1.5e6), ("25m", 20e6, 32e6), ("100m", 85e6, 115e6), ("sos-250m", 190e6, 260e6)],
)
def test_preset_sizes(preset, low, high):
    with torch.device("meta"):  # sizes without allocating memory
        model = build_model(ModelConfig(preset=preset), VOCAB, 1, 2, 0)
    assert low <= count_parameters(model) <= high


def test_sos_preset_is_the_papers_gpt_neo():
    with torch.device("meta"):
        model = build_model(ModelConfig(preset="sos-250m"), VOCAB, 1, 2, 0)
    cfg = model.config
    assert (cfg.model_type, cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.max_position_embeddings) == (
        "gpt_neo",
        16,
        1024,
        16,
        4096,
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neo"])
def test_each_architecture_builds_and_runs(arch):
    model = build_model(ModelConfig(preset="1m", arch=arch, n_layer=2, d_model=64), VOCAB, 1, 2, 0)
    if arch != "gpt_neo":
        assert model.config._attn_implementation == "sdpa"
    out = model(input_ids=torch.randint(0, VOCAB, (2, 16)))
    assert out.logits.shape == (2, 16, VOCAB)


def test_same_seed_same_weights():
    a = build_model(ModelConfig(n_layer=1, d_model=32), VOCAB, 1, 2, 0, seed=3)
    b = build_model(ModelConfig(n_layer=1, d_model=32), VOCAB, 1, 2, 0, seed=3)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_init_from_a_saved_model_and_from_a_folder_that_is_not_one(tmp_path):
    model = build_model(ModelConfig(n_layer=1, d_model=32), VOCAB, 1, 2, 0)
    model.save_pretrained(tmp_path / "m")
    loaded = build_model(ModelConfig(init_from=str(tmp_path / "m")), VOCAB, 1, 2, 0)
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a model directory"):
        load_local_model(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_local_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        build_model(ModelConfig(init_from=str(tmp_path / "m")), VOCAB + 10, 1, 2, 0)


def test_bad_presets_are_config_errors():
    with pytest.raises(ConfigError, match="preset: .*unknown preset"):
        build_config(ModelConfig, {"preset": "7b"})
    with pytest.raises(ConfigError, match="not divisible"):
        build_config(ModelConfig, {"d_model": 100, "n_head": 3})
    assert set(PRESETS) == {"1m", "25m", "100m", "sos-250m"}


def test_flops_per_token_is_six_n_plus_attention():
    from metacot_core.models import flops_per_token

    model = build_model(ModelConfig(n_layer=2, d_model=64, n_head=2), VOCAB, 1, 2, 0)
    non_embedding = count_parameters(model) - model.get_input_embeddings().weight.numel()
    assert flops_per_token(model, 128) == 6 * non_embedding + 12 * 2 * 64 * 128
