"""The SFT optimizers: AdamW, or torch's Muon on the hidden matrices with AdamW for everything else.

Muon orthogonalizes each 2-D update (Newton-Schulz), which is defined for the matrices inside the
blocks; embeddings, the (tied) output layer, biases and norms stay on AdamW, as in Muon's own recipe.
The two are wrapped as one `torch.optim.Optimizer` so the rest of the trainer (one LR scheduler, one
state dict in the checkpoint, `param_groups[0]["lr"]` in the logs) does not know there are two.
Muon runs with `adjust_lr_fn="match_rms_adamw"`, which scales its update to AdamW's RMS, so both
parts take the same peak learning rate and schedule.

On the CPU the Newton-Schulz iterations run in float32 (`Float32Muon`): torch's Muon casts them to
bfloat16, which a GPU's tensor cores make cheap but which a CPU without bf16 units emulates, 19x
slower than float32 on the development machine (bench/sft_step_time.py); it doubled the SFT step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim._muon import _adjust_lr  # Muon's own learning-rate scaling (torch is pinned)

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


def newton_schulz(update: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Muon's quintic Newton-Schulz orthogonalization of a 2-D update (torch's iteration and
    coefficients) in `dtype`, returned in the update's dtype."""
    a, b, c = coefficients
    x = update.to(dtype)
    wide = update.size(0) > update.size(1)
    if wide:
        x = x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if wide else x).to(update.dtype)


class Float32Muon(torch.optim.Muon):
    """torch.optim.Muon with its Newton-Schulz iterations in float32, for the CPU (module docstring).

    Same state (`momentum_buffer`), parameter groups and update rule as torch's single-tensor Muon,
    so a checkpoint resumes under either."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            buffers: list[torch.Tensor] = []
            self._init_group(group, params, grads, buffers)
            momentum = group["momentum"]
            for param, grad, buf in zip(params, grads, buffers, strict=True):
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(update, alpha=-_adjust_lr(group["lr"], group["adjust_lr_fn"], param.shape))
        return loss


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on `hidden`, AdamW on `matrices` (decayed) and `flat` (not decayed), stepped together."""

    def __init__(self, hidden: list[torch.Tensor], matrices: list[torch.Tensor], flat: list[torch.Tensor],
                 lr: float, betas: tuple[float, float], weight_decay: float,
                 ns_dtype: torch.dtype | None = None) -> None:
        if ns_dtype is None:  # float32 on the CPU, torch's bfloat16 elsewhere
            ns_dtype = torch.float32 if all(p.device.type == "cpu" for p in hidden) else torch.bfloat16
        muon = Float32Muon if ns_dtype == torch.float32 else torch.optim.Muon
        self.muon = muon(hidden, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
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
                   weight_decay: float, fused: bool = False,
                   ns_dtype: torch.dtype | None = None) -> torch.optim.Optimizer:
    """`name` "adamw": AdamW with decay on matrices only; "muon": MuonWithAdamW (`ns_dtype`: its
    Newton-Schulz precision, None for the device's fast one)."""
    hidden, matrices, flat = split_params(model)
    if name == "muon":
        return MuonWithAdamW(hidden, matrices, flat, lr, betas, weight_decay, ns_dtype)
    decayed = {id(p) for p in hidden + matrices}
    unique = list({id(p): p for p in model.parameters() if p.requires_grad}.values())  # model order, as saved
    groups = [{"params": [p for p in unique if id(p) in decayed], "weight_decay": weight_decay},
              {"params": flat, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
