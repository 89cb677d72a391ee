"""The SFT optimizers: which parameters Muon gets, and that the pair behaves as one optimizer."""

from __future__ import annotations

import pytest
import torch

from metacot_core.models import ModelConfig, build_model
from metacot_core.training.optimizers import MuonWithAdamW, make_optimizer, split_params


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
