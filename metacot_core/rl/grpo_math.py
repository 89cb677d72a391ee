"""The arithmetic of GRPO: group-normalized advantages, the clipped objective and the k3 KL.

Kept apart from the training loop so that tests can check each formula on numbers worked out by
hand (tests/test_rl_math.py) without a model. Shapes: B sequences, T token positions; `mask` is 1 on
completion tokens (the ones the policy chose) and 0 on prompt and padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """A_i = (r_i - mean(group)) / (std(group) + eps), groups being consecutive runs of `group_size`.

    std is the unbiased (n - 1) estimate, as TRL computes it. A group whose rewards are all equal gets
    advantage 0 everywhere: it carries no signal about which sample was better. `scale=False` keeps
    only the mean subtraction (Dr. GRPO), which does not up-weight groups with a tiny spread.
    """
    if rewards.dim() != 1:
        raise ValueError(f"group_advantages: rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f"group_advantages: {rewards.numel()} rewards do not split into "
                         f"groups of {group_size}")
    groups = rewards.float().view(-1, group_size)
    centered = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centered = centered / (groups.std(dim=1, keepdim=True) + eps)
    return centered.reshape(-1)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(d) - d - 1 with d = ref_logp - logp.

    Unbiased for samples drawn from the policy, never negative, and lower-variance than -d (Schulman,
    "Approximating KL divergence"); the GRPO paper uses this form.
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def clipped_surrogate(logp: Tensor, old_logp: Tensor, advantages: Tensor, eps_low: float,
                      eps_high: float) -> tuple[Tensor, Tensor]:
    """Per-token PPO loss -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) and where clipping bit.

    `advantages` is one value per sequence (B,), broadcast over its tokens.
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = (clipped < unclipped).float()
    return loss, was_clipped


def aggregate(per_token: Tensor, mask: Tensor, mode: str) -> Tensor:
    """Reduce a (B, T) per-token quantity over completion tokens.

    sequence: mean over each completion's tokens, then over completions (GRPO paper; long completions
    weigh as much as short ones). token: one mean over every completion token (DAPO; long completions
    weigh more). A completion with no token contributes 0 rather than dividing by zero.
    """
    mask = mask.to(per_token.dtype)
    if mode == "token":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if mode == "sequence":
        per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return per_seq.mean()
    raise ValueError(f"aggregate: unknown mode {mode!r}; known: sequence, token")


def grpo_loss(logp: Tensor, old_logp: Tensor, ref_logp: Tensor | None, advantages: Tensor, mask: Tensor,
              *, clip_eps: float, clip_eps_high: float | None = None, beta: float = 0.0,
              loss_agg: str = "sequence") -> tuple[Tensor, dict[str, float]]:
    """The GRPO objective to minimize: clipped surrogate + beta x k3 KL, reduced by `loss_agg`.

    Returns the loss and detached metrics (policy loss, KL, clip fraction) for logging.
    """
    surrogate, was_clipped = clipped_surrogate(logp, old_logp, advantages, clip_eps,
                                               clip_eps if clip_eps_high is None else clip_eps_high)
    per_token = surrogate
    metrics: dict[str, float] = {}
    if beta > 0.0:
        if ref_logp is None:
            raise ValueError("grpo_loss: beta > 0 needs reference log-probabilities")
        kl = kl_k3(logp, ref_logp)
        per_token = per_token + beta * kl
        metrics["kl"] = float(aggregate(kl.detach(), mask, loss_agg))
    elif ref_logp is not None:
        metrics["kl"] = float(aggregate(kl_k3(logp.detach(), ref_logp), mask, loss_agg))
    loss = aggregate(per_token, mask, loss_agg)
    metrics["policy_loss"] = float(aggregate(surrogate.detach(), mask, loss_agg))
    metrics["clip_fraction"] = float(aggregate(was_clipped, mask, "token"))
    return loss, metrics


def token_logprobs(logits: Tensor, input_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probability of each next token and the policy entropy at each position.

    logits (B, T, V) from a causal LM over input_ids (B, T); outputs are (B, T - 1), position t being
    the prediction of token t + 1. Computed through log_softmax in float32 for stability.
    """
    logp_all = F.log_softmax(logits[:, :-1].float(), dim=-1)
    target = input_ids[:, 1:].unsqueeze(-1)
    logp = logp_all.gather(-1, target).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(dim=-1)
    return logp, entropy
