"""The SFT optimizers: which parameters Muon gets, and that the pair behaves as one optimizer."""

from __future__ import annotations

import pytest
import torch

from metacot_core.models import ModelConfig, build_model
from metacot_core.training.optimizers import (
    Float32Muon,
    MuonWithAdamW,
    make_optimizer,
    newton_schulz,
    split_params,
)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_muon_gets_the_hidden_matrices_only(arch):
    model = build_model(ModelConfig(preset="1m", arch=arch, n_layer=1), 40, 0, 1, 2)
    hidden, matrices, flat = split_params(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert hidden and all(p.dim() == 2 for p in hidden)
    assert not any(k in names[id(p)] for p in hidden for k in ("wte", "wpe", "embed", "lm_head"))
    assert all(p.dim() < 2 for p in flat)
    assert {names[id(p)] for p in matrices} & {"transformer.wte.weight", "model.embed_tokens.weight"}
    assert len(hidden) + len(matrices) + len(flat) == len(list(model.parameters()))  # tied: once


def test_muon_pair_steps_schedules_and_reloads_as_one_optimizer():
    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="1m", n_layer=1), 40, 0, 1, 2)
    opt = make_optimizer(model, "muon", 1e-2, (0.9, 0.95), 0.1)
    assert isinstance(opt, MuonWithAdamW)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (step + 1))
    x = torch.randint(0, 40, (4, 24))
    losses = []
    for _ in range(5):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert opt.muon.param_groups[0]["lr"] == opt.adamw.param_groups[0]["lr"] == pytest.approx(1e-2 / 6)
    again = make_optimizer(model, "muon", 1e-2, (0.9, 0.95), 0.1)
    again.load_state_dict(opt.state_dict())
    assert again.muon.state_dict()["state"].keys() == opt.muon.state_dict()["state"].keys()
    with pytest.raises(ValueError, match="not a Muon"):
        again.load_state_dict(make_optimizer(model, "adamw", 1e-2, (0.9, 0.95), 0.1).state_dict())


def test_newton_schulz_in_bfloat16_is_torchs_own_iteration():
    from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, EPS, _zeropower_via_newtonschulz

    coefficients = (DEFAULT_A, DEFAULT_B, DEFAULT_C)
    for shape in [(16, 48), (48, 16), (32, 32)]:
        g = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        ours = newton_schulz(g, coefficients, 5, EPS, torch.bfloat16)
        assert torch.equal(ours, _zeropower_via_newtonschulz(g, coefficients, 5, EPS).to(g.dtype))


def test_float32_muon_steps_as_torchs_muon_up_to_bfloat16_rounding():
    """Same update rule and state: the two runs differ only by Newton-Schulz's bf16 rounding, and the
    float32 optimizer's state loads into torch's (a CPU checkpoint resumes on a GPU)."""
    torch.manual_seed(0)
    weights = [torch.randn(24, 40), torch.randn(40, 24)]
    runs = []
    for cls in (Float32Muon, torch.optim.Muon):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        opt = cls(params, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
        for step in range(3):
            for i, p in enumerate(params):
                p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(10 * step + i))
            opt.step()
        runs.append((params, opt))
    (ours, ours_opt), (theirs, theirs_opt) = runs
    for a, b, w in zip(ours, theirs, weights, strict=True):
        moved = (b - w).abs().mean()
        assert (a - b).abs().mean() < 0.05 * moved  # bf16 has 8 bits of mantissa
    theirs_opt.load_state_dict(ours_opt.state_dict())
    buffers = [o.state[ps[0]]["momentum_buffer"] for ps, o in runs]
    assert torch.equal(*buffers)


def test_cpu_pair_uses_the_float32_muon():
    model = build_model(ModelConfig(preset="1m", n_layer=1), 40, 0, 1, 2)
    assert type(make_optimizer(model, "muon", 1e-2, (0.9, 0.95), 0.1).muon) is Float32Muon
