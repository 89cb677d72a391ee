"""GRPO arithmetic checked against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from metacot_core.rl.grpo_math import (
    aggregate,
    clipped_surrogate,
    group_advantages,
    grpo_loss,
    kl_k3,
    token_logprobs,
)


def test_group_advantages_one_winner_of_four() -> None:
    # rewards 1,0,0,0: mean 0.25; deviations 0.75, -0.25 x3; squares 0.5625 + 3 x 0.0625 = 0.75;
    # unbiased variance 0.75 / 3 = 0.25, std 0.5; advantages 0.75/0.5 = 1.5 and -0.25/0.5 = -0.5
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), group_size=4, eps=0.0)
    assert torch.allclose(adv, torch.tensor([1.5, -0.5, -0.5, -0.5]))


def test_group_advantages_are_per_group() -> None:
    # group 2 = 1,1,0,0: mean 0.5, deviations +-0.5, squares sum 1, unbiased var 1/3, std 0.57735;
    # 0.5 / 0.57735 = 0.866025. Group 3 is all ones: no spread, advantage 0 (not nan).
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(rewards, group_size=4)
    expected = torch.tensor([1.5, -0.5, -0.5, -0.5, 0.866025, 0.866025, -0.866025, -0.866025, 0, 0, 0, 0])
    assert torch.allclose(adv, expected, atol=1e-3)  # eps=1e-4 in the denominator moves the 4th digit
    assert not torch.isnan(adv).any()


def test_group_advantages_unscaled_is_mean_centered() -> None:
    # Dr. GRPO: 1,0,0,0 minus the mean 0.25
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), group_size=4, scale=False)
    assert torch.allclose(adv, torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_group_advantages_rejects_ragged_groups() -> None:
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.zeros(6), group_size=4)


def test_kl_k3_by_hand() -> None:
    # policy p = 0.5, reference q = 0.25: d = log q - log p = log 0.5 = -0.693147;
    # exp(d) - d - 1 = 0.5 + 0.693147 - 1 = 0.193147. Same distribution: exp(0) - 0 - 1 = 0.
    logp = torch.log(torch.tensor([0.5, 0.3]))
    ref = torch.log(torch.tensor([0.25, 0.3]))
    assert torch.allclose(kl_k3(logp, ref), torch.tensor([0.193147, 0.0]), atol=1e-6)


def test_clipped_surrogate_four_quadrants() -> None:
    # eps = 0.2, so ratios are clipped into [0.8, 1.2]
    # ratio 1.5, A=+1: min(1.5, 1.2) = 1.2 -> loss -1.2, clipped
    # ratio 0.5, A=+1: min(0.5, 0.8) = 0.5 -> loss -0.5, not clipped (pessimistic side)
    # ratio 0.5, A=-1: min(-0.5, -0.8) = -0.8 -> loss 0.8, clipped
    # ratio 1.5, A=-1: min(-1.5, -1.2) = -1.5 -> loss 1.5, not clipped
    ratios = torch.tensor([[1.5], [0.5], [0.5], [1.5]])
    old = torch.zeros(4, 1)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, clipped = clipped_surrogate(torch.log(ratios), old, adv, 0.2, 0.2)
    assert torch.allclose(loss, torch.tensor([[-1.2], [-0.5], [0.8], [1.5]]))
    assert clipped.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]


def test_clipped_surrogate_asymmetric_upper_bound() -> None:
    # DAPO clip-higher: eps_low 0.2, eps_high 0.28; ratio 1.5, A=+1 -> min(1.5, 1.28) = 1.28
    loss, _ = clipped_surrogate(torch.log(torch.tensor([[1.5]])), torch.zeros(1, 1), torch.tensor([1.0]),
                                0.2, 0.28)
    assert loss.item() == pytest.approx(-1.28)


def test_aggregate_sequence_vs_token() -> None:
    # row 1 has tokens 1,2,3 (mean 2); row 2 has one token 4 (mean 4)
    # sequence: (2 + 4) / 2 = 3;  token: (1 + 2 + 3 + 4) / 4 = 2.5
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(per_token, mask, "sequence").item() == pytest.approx(3.0)
    assert aggregate(per_token, mask, "token").item() == pytest.approx(2.5)
    # an empty completion adds 0 instead of nan: (2 + 0) / 2 = 1
    assert aggregate(per_token, torch.tensor([[1, 1, 1], [0, 0, 0]]), "sequence").item() == pytest.approx(1.0)


def test_grpo_loss_value_and_gradient_by_hand() -> None:
    # two completions of two tokens, on-policy (old = current, ratio 1), A = +1 and -1,
    # policy prob 0.5 and reference prob 0.25 at every token, beta 0.1.
    # per token: surrogate -A x 1 = -1 (row 1), +1 (row 2); KL k3 = 0.193147 (see above)
    # row means: -1 + 0.0193147, 1 + 0.0193147; loss = mean = 0.0193147
    logp = torch.log(torch.full((2, 2), 0.5)).requires_grad_(True)
    old = logp.detach().clone()
    ref = torch.log(torch.full((2, 2), 0.25))
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 2)
    loss, metrics = grpo_loss(logp, old, ref, adv, mask, clip_eps=0.2, beta=0.1, loss_agg="sequence")
    assert loss.item() == pytest.approx(0.0193147, abs=1e-6)
    assert metrics["kl"] == pytest.approx(0.193147, abs=1e-6)
    assert metrics["policy_loss"] == pytest.approx(0.0)
    assert metrics["clip_fraction"] == 0.0
    loss.backward()
    # d/dlogp of -exp(logp - old) A at ratio 1 is -A; d k3/dlogp = 1 - exp(ref - logp) = 1 - 0.5 = 0.5.
    # Each token is weighted 1 / (2 tokens x 2 rows) = 1/4:
    # row 1: (-1 + 0.1 x 0.5) / 4 = -0.2375;  row 2: (1 + 0.05) / 4 = 0.2625
    expected = torch.tensor([[-0.2375, -0.2375], [0.2625, 0.2625]])
    assert torch.allclose(logp.grad, expected, atol=1e-6)


def test_grpo_loss_needs_reference_when_beta_positive() -> None:
    z = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(z, z, None, torch.ones(1), torch.ones(1, 1), clip_eps=0.2, beta=0.1)


def test_token_aggregation_batch_invariance() -> None:
    # token mode: one batch of both rows equals the token-weighted mix of each row alone
    # (3 tokens of row 1, 1 of row 2), the invariant that gradient accumulation relies on.
    torch.manual_seed(0)
    logp = torch.randn(2, 3)
    old = logp + 0.1 * torch.randn(2, 3)
    adv = torch.tensor([0.7, -1.3])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    both, _ = grpo_loss(logp, old, None, adv, mask, clip_eps=0.2, loss_agg="token")
    one, _ = grpo_loss(logp[:1], old[:1], None, adv[:1], mask[:1], clip_eps=0.2, loss_agg="token")
    two, _ = grpo_loss(logp[1:], old[1:], None, adv[1:], mask[1:], clip_eps=0.2, loss_agg="token")
    assert both.item() == pytest.approx((3 * one.item() + 1 * two.item()) / 4, abs=1e-6)


def test_token_logprobs_uniform_logits() -> None:
    # uniform logits over 4 tokens: every log-prob is log(1/4) = -1.386294, entropy log 4 = 1.386294
    ids = torch.tensor([[0, 3, 1, 2]])
    logp, ent = token_logprobs(torch.zeros(1, 4, 4), ids)
    assert logp.shape == (1, 3)
    assert torch.allclose(logp, torch.full((1, 3), -math.log(4)))
    assert torch.allclose(ent, torch.full((1, 3), math.log(4)))


def test_token_logprobs_picks_the_next_token() -> None:
    # logits favour token 2 at position 0: log softmax([0, 0, log 2]) at index 2 = log(2/4) = -0.693147
    logits = torch.zeros(1, 2, 3)
    logits[0, 0, 2] = math.log(2.0)
    logp, _ = token_logprobs(logits, torch.tensor([[0, 2]]))
    assert logp.item() == pytest.approx(math.log(0.5), abs=1e-6)
