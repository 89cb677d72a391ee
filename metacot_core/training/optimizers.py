"""The SFT optimizers: AdamW, or torch's Muon on the hidden matrices with AdamW for everything else.

Muon orthogonalizes each 2-D update (Newton-Schulz), which is defined for the matrices inside the
blocks; embeddings, the (tied) output layer, biases and norms stay on AdamW, as in Muon's own recipe.
The two are wrapped as one `torch.optim.Optimizer` so the rest of the trainer (one LR scheduler, one
state dict in the checkpoint, `param_groups[0]["lr"]` in the logs) does not know there are two.
Muon runs with `adjust_lr_fn="match_rms_adamw"`, which scales its update to AdamW's RMS, so both
parts take the same peak learning rate and schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

EMBEDDING_NAMES = ("wte", "wpe", "embed", "lm_head")


def split_params(model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """(hidden matrices, other decayed matrices, no-decay params), each parameter once (tied weights)."""
    hidden, matrices, flat, seen = [], [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if p.dim() < 2:
            flat.append(p)
        elif any(part in name for part in EMBEDDING_NAMES):
            matrices.append(p)
        else:
            hidden.append(p)
    return hidden, matrices, flat


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on `hidden`, AdamW on `matrices` (decayed) and `flat` (not decayed), stepped together."""

    def __init__(self, hidden: list[torch.Tensor], matrices: list[torch.Tensor], flat: list[torch.Tensor],
                 lr: float, betas: tuple[float, float], weight_decay: float) -> None:
        self.muon = torch.optim.Muon(hidden, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW([{"params": matrices, "weight_decay": weight_decay},
                                        {"params": flat, "weight_decay": 0.0}], lr=lr, betas=betas)
        super().__init__([{"params": hidden + matrices + flat}], {"lr": lr})
        # The scheduler and the logs read and write these groups: they are the two optimizers' own.
        self.param_groups = self.muon.param_groups + self.adamw.param_groups

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = closure() if closure is not None else None
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"muon", "adamw"}:
            raise ValueError("optimizer state: not a Muon + AdamW state (was the run started with AdamW?)")
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self.adamw.param_groups


def make_optimizer(model: torch.nn.Module, name: str, lr: float, betas: tuple[float, float],
                   weight_decay: float, fused: bool = False) -> torch.optim.Optimizer:
    """`name` "adamw": AdamW with decay on matrices only; "muon": MuonWithAdamW."""
    hidden, matrices, flat = split_params(model)
    if name == "muon":
        return MuonWithAdamW(hidden, matrices, flat, lr, betas, weight_decay)
    decayed = {id(p) for p in hidden + matrices}
    unique = list({id(p): p for p in model.parameters() if p.requires_grad}.values())  # model order, as saved
    groups = [{"params": [p for p in unique if id(p) in decayed], "weight_decay": weight_decay},
              {"params": flat, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
