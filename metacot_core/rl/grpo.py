"""GRPO with a verifiable reward: rollout, score, advantages, loss, one function each.

Each step samples G completions for each of a few training problems, judges them with the format's
replay and the problem's verifier (metacot_core.rl.rewards), normalizes rewards within each group,
and minimizes the clipped surrogate plus beta x k3 KL to the frozen SFT model (metacot_core.rl.grpo_math).

Written here rather than taken from TRL's GRPOTrainer: TRL is not a dependency, and its trainer
assumes a hub model id or a PreTrainedTokenizer with a chat template, `datasets` rows, accelerate
and (for speed) vLLM; our models are built from scratch with a word-level `tokenizers` vocabulary,
rollouts must stop at the trace format's stop strings and be judged by our replay, and the loop is
a few dozen lines once the math is separate. Learns in-process on CPU or one GPU; rollouts come from
a `Sampler`, by default the policy in this process, or Ray actors with a copy of it (tasks/rl_actors.py)
that receive the new weights after every step's update.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from metacot_core.evaluation.generate import Completion, encode_prompt, pad_id
from metacot_core.rl.common import (
    InProcessSampler,
    RLProblem,
    Sampler,
    bar_postfix,
    evaluate_sets,
    format_of,
    judge_completions,
    load_policy,
    step_bar,
)
from metacot_core.rl.config import RLConfig
from metacot_core.rl.grpo_math import group_advantages, grpo_loss, token_logprobs
from metacot_core.rl.guards import check_collapse
from metacot_core.rl.rewards import summarize

LogFn = Callable[[dict[str, float], int], None]
SaveFn = Callable[[Any, Any, int], None]


class CollapseError(RuntimeError):
    """Rollouts degenerated (empty or looping) and the config says to stop rather than train on them."""


def completion_ids(tokenizer: Any, completion: Completion) -> list[int]:
    """The token ids the policy produced for a completion, EOS included when it ended on EOS.

    Rebuilt by encoding the decoded text: with a word-level vocabulary the round trip is exact, and
    the loss must score the very text the reward judged (stop strings cut the decoded text).
    """
    ids = list(tokenizer(completion.text, add_special_tokens=False)["input_ids"])
    ended_on_eos = not completion.truncated and completion.stop is None
    if ended_on_eos and tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return ids


def build_batch(tokenizer: Any, prompts: Sequence[str], completions: Sequence[Completion],
                max_length: int) -> dict[str, Tensor]:
    """Right-padded prompt + completion ids, attention mask, and the mask of completion positions.

    loss_mask[b, t] = 1 when token t + 1 of row b is a completion token (the policy's choice), aligned
    with token_logprobs' outputs. Rows longer than max_length are cut at the end.
    """
    rows, starts = [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        p_ids = encode_prompt(tokenizer, prompt)
        rows.append((p_ids + completion_ids(tokenizer, completion))[:max_length])
        starts.append(len(p_ids))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id(tokenizer), dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width - 1), dtype=torch.float32)
    for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attn[i, : len(row)] = 1
        loss_mask[i, max(0, start - 1): len(row) - 1] = 1.0
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask}


def sequence_logprobs(model: Any, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Per-token log-probs of the batch's own next tokens and the entropy at each position."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return token_logprobs(logits, batch["input_ids"])


def _slice(batch: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
    return {k: v[idx] for k, v in batch.items()}


def _trim(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop padding columns no row uses (after rows were selected from a wider batch)."""
    width = int(batch["attention_mask"].sum(dim=1).max())
    return {k: v[:, : width - 1] if k == "loss_mask" else v[:, :width] for k, v in batch.items()}


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def problems_for_step(n_total: int, per_step: int, step: int, seed: int) -> list[int]:
    """Problem indices of step `step`: epochs of a seeded permutation, so every problem comes up in turn."""
    out: list[int] = []
    start = step * per_step
    while len(out) < per_step:
        epoch, offset = divmod(start + len(out), n_total)
        order = list(range(n_total))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        take = min(per_step - len(out), n_total - offset)
        out.extend(order[offset: offset + take])
    return out


def update(policy: Any, reference: Any | None, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor],
           advantages: Tensor, cfg: RLConfig, totals: tuple[int, float] | None = None) -> dict[str, float]:
    """updates_per_batch optimizer steps on one rollout batch, in micro-batches of train.batch_size.

    With one update per batch the old policy is the current one, so its log-probs are the current
    ones detached (ratio exactly 1, as TRL does for num_iterations=1) and cost no forward pass.

    Each micro-batch loss is weighted by its share of the batch (sequences or tokens, per loss_agg), so
    the summed gradient equals the full-batch gradient whatever the micro-batch size. `totals`
    (sequences, completion tokens) of the whole rollout batch, when rows with zero advantage were left
    out of `batch`, keeps the mean over the whole batch as the GRPO objective defines it.
    """
    g, t = cfg.grpo, cfg.train
    device = next(policy.parameters()).device
    policy.eval()  # dropout off: old, new and reference log-probs must come from the same function
    rows = batch["input_ids"].shape[0]
    # micro-batches of similar lengths, each cut to its longest row: right padding behind a causal model
    # changes no log-prob, and the weighted sum of micro-batch losses does not depend on the grouping
    order = torch.argsort(batch["attention_mask"].sum(dim=1), descending=True, stable=True)
    chunks = [order[i: i + t.batch_size] for i in range(0, rows, t.batch_size)]
    reuse_old = g.updates_per_batch == 1  # the policy has not moved yet: old log-probs = current, detached
    with torch.no_grad():
        old = ([None] * len(chunks) if reuse_old else
               [sequence_logprobs(policy, _to(_trim(_slice(batch, c)), device))[0] for c in chunks])
        ref = ([sequence_logprobs(reference, _to(_trim(_slice(batch, c)), device))[0] for c in chunks]
               if reference is not None else [None] * len(chunks))
    n, total_tokens = totals if totals is not None else (rows, float(batch["loss_mask"].sum()))
    total_tokens = max(1.0, total_tokens)
    sums: dict[str, float] = {}
    for _ in range(g.updates_per_batch):
        optimizer.zero_grad(set_to_none=True)
        for c, old_lp, ref_lp in zip(chunks, old, ref, strict=True):
            mb = _to(_trim(_slice(batch, c)), device)
            logp, entropy = sequence_logprobs(policy, mb)
            old_lp = logp.detach() if old_lp is None else old_lp
            loss, m = grpo_loss(logp, old_lp, ref_lp, advantages[c].to(device), mb["loss_mask"],
                                clip_eps=g.clip_eps, clip_eps_high=g.clip_eps_high, beta=g.beta,
                                loss_agg=g.loss_agg)
            share = (len(c) / n) if g.loss_agg == "sequence" else float(mb["loss_mask"].sum()) / total_tokens
            (loss * share).backward()
            m["loss"] = float(loss.detach())
            mask_sum = mb["loss_mask"].sum().clamp(min=1)
            m["entropy"] = float((entropy.detach() * mb["loss_mask"]).sum() / mask_sum)
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + v * share / g.updates_per_batch
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), t.max_grad_norm)
        optimizer.step()
        sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm) / g.updates_per_batch
    return sums


def grpo_step(policy: Any, reference: Any | None, optimizer: torch.optim.Optimizer, tokenizer: Any,
              problems: Sequence[RLProblem], cfg: RLConfig, step: int,
              sampler: Sampler | None = None) -> dict[str, float]:
    """One GRPO step on `problems`: rollout -> score -> advantages -> loss and update; returns metrics.

    `sampler` (default: the policy in this process) draws the groups and receives the updated weights.
    """
    g = cfg.grpo
    clock = Clock()
    name, fmt = format_of(problems)
    prompts = [p.prompt for p in problems]
    source = sampler if sampler is not None else InProcessSampler(policy, tokenizer)
    completions = source.sample(prompts, g.group_size, cfg.sampling, name, seed=cfg.seed * 1_000_003 + step)
    sample_s = clock.lap("time/sample_s")
    clock.times["time/sample_tokens_per_s"] = sum(c.n_tokens for c in completions) / max(sample_s, 1e-9)
    scored = judge_completions(problems, completions, fmt, cfg.reward)
    clock.lap("time/judge_s")
    rewards = torch.tensor([s.reward for s in scored], dtype=torch.float32)
    advantages = group_advantages(rewards, g.group_size, scale=g.scale_advantages)
    metrics = {f"rollout/{k}": v for k, v in summarize(scored).items()}
    report = check_collapse([c.text for c in completions], cfg.guards)
    metrics.update({f"guard/{k}": v for k, v in report.metrics.items()})
    if report.collapsed:
        message = f"GRPO step {step}: " + "; ".join(report.alarms)
        if g.on_collapse == "stop":
            raise CollapseError(message)
        warnings.warn(message, stacklevel=2)
    informative = advantages != 0
    metrics["rollout/informative_fraction"] = float(informative.float().mean())
    # with no KL term a zero-advantage sequence adds nothing to the loss: skip its forward passes
    keep = torch.ones_like(informative) if g.beta > 0 else informative
    metrics["rollout/kept"] = float(keep.sum())
    if not bool(keep.any()):
        metrics["train/skipped"] = 1.0
        return metrics | clock.times
    full = build_batch(tokenizer, [prompts[i // g.group_size] for i in range(len(completions))], completions,
                       cfg.train.max_length)
    idx = keep.nonzero().flatten()
    totals = (len(completions), float(full["loss_mask"].sum()))
    train = update(policy, reference, optimizer, _trim(_slice(full, idx)), advantages[idx], cfg, totals)
    clock.lap("time/update_s")
    source.sync(policy.state_dict())
    clock.lap("time/sync_s")
    metrics.update({f"train/{k}": v for k, v in train.items()})
    return metrics | clock.times


class Clock:
    """Seconds spent in each named phase of a step (`lap` closes the phase that just ended)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.times: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.last
        self.last = now
        return self.times[name]


def make_optimizer(model: Any, cfg: RLConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def run_grpo(policy: Any, reference: Any | None, tokenizer: Any, train_problems: Sequence[RLProblem],
             eval_sets: dict[str, Sequence[RLProblem]], cfg: RLConfig, optimizer: torch.optim.Optimizer,
             log: LogFn, save: SaveFn, start_step: int = 0, sampler: Sampler | None = None) -> Any:
    """Steps start_step..steps-1; evaluates every eval.every steps and at the end, saving after each.

    `save(policy, optimizer, step)` writes a resumable checkpoint; a run resumed from step s calls this
    with start_step=s and the restored optimizer, and draws the same problems it would have drawn.
    `sampler` must start out holding the policy's weights; each step keeps it in step.
    """
    g = cfg.grpo
    bar = step_bar(cfg.progress, start_step, g.steps, "grpo")
    for step in range(start_step, g.steps):
        idx = problems_for_step(len(train_problems), g.prompts_per_step, step, cfg.seed)
        batch = [train_problems[i] for i in idx]
        metrics = grpo_step(policy, reference, optimizer, tokenizer, batch, cfg, step, sampler)
        done = step + 1
        last = done == g.steps
        if last or (cfg.eval.every and done % cfg.eval.every == 0):
            metrics.update(evaluate_sets(policy, tokenizer, eval_sets, cfg))
        log(metrics, done)
        bar_postfix(bar, metrics, "rollout/kept")
        if last or done % g.checkpoint_every == 0:
            save(policy, optimizer, done)
    if bar is not None:
        bar.close()
    return policy


def reference_model(cfg: RLConfig) -> Any | None:
    """The frozen SFT model the KL term pulls towards (None when beta = 0)."""
    if cfg.grpo.beta <= 0.0:
        return None
    ref, _ = load_policy(cfg.init_checkpoint, cfg.device)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def run_method(r: Any, log: Callable[[dict[str, float], int], None], save: Callable[[Any, Any, int], None],
               sampler: Sampler | None) -> None:
    """The runner's entry (GrpoConfig.trainer): `run_grpo` on a prepared RLRun (rl/runner.py)."""
    optimizer = make_optimizer(r.model, r.cfg)
    if r.state.get("optimizer") is not None:
        optimizer.load_state_dict(r.state["optimizer"])
    run_grpo(r.model, reference_model(r.cfg), r.tokenizer, r.train_problems, r.eval_sets, r.cfg, optimizer,
             log, save, r.start, sampler)
