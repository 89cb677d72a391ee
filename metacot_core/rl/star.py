"""Expert iteration (STaR) as Stream of Search ran it, plus Searchformer's search-dynamics bootstrapping.

One round: sample k traces per training problem (`rollout`), judge each with the format's replay and
the problem's verifier (`score`), keep the correct ones (`select`), fine-tune on them (`finetune`),
repeat. keep=all keeps every distinct correct trace whose reward passes the threshold (SoS's
`countdown_star_filter.py --filter thresh`); keep=shortest keeps the shortest correct trace per
problem and falls back to the teacher's trace where none is correct (Searchformer), so the data set
never loses problems while its traces get shorter; keep=best keeps the highest-reward trace.

The model-facing steps take the model and tokenizer as arguments and return metrics as dicts; the
round driver lives in `run_star`, which tasks/rl.py wraps with tracking. Rollouts come from a
`Sampler` (default: the model itself, in this process); after each fine-tuning round the sampler gets
the new weights, so a pool of Ray rollout actors samples the same policy the learner holds.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metacot_core.evaluation.generate import pad_id
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
from metacot_core.rl.config import RLConfig, StarConfig
from metacot_core.rl.guards import check_collapse
from metacot_core.rl.rewards import Scored, summarize
from metacot_core.training.data import BatchPlan, make_examples
from metacot_core.training.sft import loss_sum

LogFn = Callable[[dict[str, float], int], None]
SaveFn = Callable[[Any, Any, int], None]


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled completion of one training problem, with its judgement."""

    problem_id: str
    prompt: str
    completion: str
    scored: Scored


@dataclass(frozen=True, slots=True)
class Kept:
    """A training example chosen for the next fine-tuning round; `source` is "model" or "teacher"."""

    problem_id: str
    prompt: str
    trace: str
    source: str
    n_tokens: int


def _correct(samples: Sequence[Sample], min_reward: float) -> list[Sample]:
    return [s for s in samples if s.scored.solved and s.scored.reward > min_reward]


def select(samples: Sequence[Sample], cfg: StarConfig,
           teacher: dict[str, Kept] | None = None) -> tuple[list[Kept], dict[str, float]]:
    """Choose the fine-tuning set of one round from judged samples, and say what was chosen.

    teacher maps problem_id -> the teacher's example (n_tokens counted with the same tokenizer as the
    samples); keep=shortest needs it for its fallback and takes a model trace only when it is strictly
    shorter than the teacher's. Problems come in first-seen order, samples in sample order.
    """
    by_problem: dict[str, list[Sample]] = {}
    for s in samples:
        by_problem.setdefault(s.problem_id, []).append(s)
    if cfg.keep == "shortest" and teacher is None:
        raise ValueError("select: keep=shortest needs the teacher traces for its fallback")
    kept: list[Kept] = []
    for pid, group in by_problem.items():
        good = _correct(group, cfg.min_reward)
        if cfg.keep == "all":
            seen: set[str] = set()
            for s in good:
                if s.completion not in seen:
                    seen.add(s.completion)
                    kept.append(_as_kept(s))
        elif cfg.keep == "best":
            if good:
                kept.append(_as_kept(max(good, key=lambda s: (s.scored.reward, -s.scored.n_tokens))))
        else:
            fallback = teacher.get(pid) if teacher else None
            shortest = min(good, key=lambda s: s.scored.n_tokens) if good else None
            if shortest is not None and (fallback is None or shortest.scored.n_tokens < fallback.n_tokens):
                kept.append(_as_kept(shortest))
            elif fallback is not None:
                kept.append(fallback)
    if cfg.keep == "shortest" and teacher:
        kept.extend(t for pid, t in teacher.items() if pid not in by_problem)
    solved_problems = sum(1 for g in by_problem.values() if _correct(g, cfg.min_reward))
    stats = {
        "kept": float(len(kept)),
        "kept_from_model": float(sum(k.source == "model" for k in kept)),
        "kept_from_teacher": float(sum(k.source == "teacher" for k in kept)),
        "problems_with_correct_sample": solved_problems / max(1, len(by_problem)),
        "kept_tokens_mean": (sum(k.n_tokens for k in kept) / len(kept)) if kept else 0.0,
    }
    return kept, stats


def _as_kept(s: Sample) -> Kept:
    return Kept(s.problem_id, s.prompt, s.completion, "model", s.scored.n_tokens)


def choose_problems(n_total: int, cfg: StarConfig, iteration: int, seed: int) -> list[int]:
    """Indices of the training problems sampled in round `iteration` (all of them when not limited)."""
    if cfg.problems_per_iteration is None or cfg.problems_per_iteration >= n_total:
        return list(range(n_total))
    rng = random.Random(f"{seed}:{iteration}")
    return sorted(rng.sample(range(n_total), cfg.problems_per_iteration))




# ----------------------------------------------------------------------------- the model-facing steps

def rollout_and_score(model: Any, tokenizer: Any, problems: Sequence[RLProblem], cfg: RLConfig,
                      iteration: int, sampler: Sampler | None = None
                      ) -> tuple[list[Sample], list[str], dict[str, float]]:
    """k samples per problem at the sampling temperature (SoS: 0.8), each judged by the verifier;
    also the sampling seconds and tokens/s."""
    name, fmt = format_of(problems)
    k = cfg.star.samples_per_problem
    sampler = sampler if sampler is not None else InProcessSampler(model, tokenizer, progress=cfg.progress)
    start = time.perf_counter()
    completions = sampler.sample([p.prompt for p in problems], k, cfg.sampling, name,
                                 seed=cfg.seed * 1_000_003 + iteration)
    seconds = time.perf_counter() - start
    scored = judge_completions(problems, completions, fmt, cfg.reward)
    expanded = [p for p in problems for _ in range(k)]
    samples = [Sample(p.problem_id, p.prompt, c.text, s)
               for p, c, s in zip(expanded, completions, scored, strict=True)]
    rates = {"time/sample_s": seconds,
             "time/sample_tokens_per_s": sum(c.n_tokens for c in completions) / max(seconds, 1e-9)}
    return samples, [c.text for c in completions], rates


def teacher_examples(tokenizer: Any, problems: Sequence[RLProblem]) -> dict[str, Kept]:
    """The dataset's solved teacher traces as fallback examples (lengths in model tokens)."""
    out = {}
    for p in problems:
        if p.teacher_solved and p.teacher_trace:
            n = len(tokenizer(p.teacher_trace, add_special_tokens=False)["input_ids"])
            out[p.problem_id] = Kept(p.problem_id, p.prompt, p.teacher_trace, "teacher", n)
    return out


def finetune(model: Any, tokenizer: Any, kept: Sequence[Kept], cfg: RLConfig,
             iteration: int) -> dict[str, float]:
    """Supervised fine-tuning on the kept traces with SFT's pieces (`<bos> prompt trace <eos>` examples,
    loss on trace and EOS only, length-bucketed batches, SFT's token loss), and a fresh AdamW per round
    as SoS restarts training for each STaR iteration. Returns mean loss per token, steps and examples.
    """
    rows = [{"problem_id": k.problem_id, "prompt": k.prompt, "trace": k.trace} for k in kept]
    examples, overflow = make_examples(rows, tokenizer, cfg.train.max_length, "truncate")
    plan = BatchPlan(examples, cfg.train.max_length, cfg.train.batch_size, "bucket", pad_id(tokenizer),
                     seed=cfg.seed * 1_000_003 + iteration)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    model.train()
    losses: list[float] = []
    steps = 0
    per_epoch = -(-len(plan.epoch(0)) // cfg.train.grad_accum)
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=per_epoch * cfg.star.epochs, desc=f"star {iteration} fine-tune", unit="step",
                   leave=False, dynamic_ncols=True)
    for epoch in range(cfg.star.epochs):
        specs = plan.epoch(epoch)
        for start in range(0, len(specs), cfg.train.grad_accum):
            group = specs[start:start + cfg.train.grad_accum]
            optimizer.zero_grad(set_to_none=True)
            batches = [plan.collate(spec).to(device) for spec in group]
            total = max(1, sum(b.n_targets for b in batches))
            summed = 0.0
            for batch in batches:
                # SFT's summed token loss over the group's target tokens: accumulation = one big batch
                loss = loss_sum(model, batch, "auto")
                (loss / total).backward()
                summed += float(loss.detach())
            losses.append(summed / total)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
            optimizer.step()
            steps += 1
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
                bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    return {"loss": sum(losses) / max(1, len(losses)), "steps": float(steps),
            "examples": float(len(examples)), "truncated": float(overflow.truncated)}


def star_round(model: Any, tokenizer: Any, problems: Sequence[RLProblem], teacher: dict[str, Kept],
               cfg: RLConfig, iteration: int, base_state: dict[str, torch.Tensor] | None = None,
               sampler: Sampler | None = None) -> dict[str, float]:
    """One round: sample k per problem, judge, select, fine-tune the model in place; returns metrics.

    With `base_state` (star.init=base, the original STaR) the weights are reset to it after sampling,
    so each round fine-tunes the SFT model on the newest model's correct traces. `sampler` (default:
    the model in this process) draws the samples and receives the fine-tuned weights.
    """
    idx = choose_problems(len(problems), cfg.star, iteration, cfg.seed)
    chosen = [problems[i] for i in idx]
    samples, texts, rates = rollout_and_score(model, tokenizer, chosen, cfg, iteration, sampler)
    metrics = {f"rollout/{k}": v for k, v in summarize([s.scored for s in samples]).items()} | rates
    report = check_collapse(texts, cfg.guards)
    metrics.update({f"guard/{k}": v for k, v in report.metrics.items()})
    if report.collapsed:
        warnings.warn(f"STaR round {iteration}: " + "; ".join(report.alarms), stacklevel=2)
    round_teacher = {p.problem_id: teacher[p.problem_id] for p in chosen if p.problem_id in teacher}
    kept, stats = select(samples, cfg.star, round_teacher if cfg.star.keep == "shortest" else None)
    metrics.update({f"select/{k}": v for k, v in stats.items()})
    if kept:
        if base_state is not None:
            model.load_state_dict(base_state)
        metrics.update({f"train/{k}": v for k, v in finetune(model, tokenizer, kept, cfg, iteration).items()})
        if sampler is not None:
            sampler.sync(model.state_dict())
    else:
        warnings.warn(f"STaR round {iteration}: no correct sample to train on; model unchanged", stacklevel=2)
        metrics["train/skipped"] = 1.0
    return metrics


def run_star(model: Any, tokenizer: Any, problems: Sequence[RLProblem],
             eval_sets: dict[str, Sequence[RLProblem]], cfg: RLConfig, log: LogFn, save: SaveFn,
             start_iteration: int = 0, base_state: dict[str, torch.Tensor] | None = None,
             sampler: Sampler | None = None) -> Any:
    """Rounds start_iteration..iterations-1: each round, then held-out eval (every eval.every rounds and
    after the last), then a checkpoint, so a resumed run continues at the next round.

    `base_state` is the SFT model's state dict, needed with star.init=base (the caller loads it from the
    SFT checkpoint, so a resumed run resets to the same weights). `sampler` must start out holding the
    weights of `model` (tasks/rl_actors.py builds its pool from it); run_star keeps it in step.
    """
    if cfg.star.init == "base" and base_state is None:
        raise ValueError("star.init=base needs the SFT weights (base_state)")
    teacher = teacher_examples(tokenizer, problems) if cfg.star.keep == "shortest" else {}
    bar = step_bar(cfg.progress, start_iteration, cfg.star.iterations, "star")
    for it in range(start_iteration, cfg.star.iterations):
        metrics = star_round(model, tokenizer, problems, teacher, cfg, it,
                             base_state if cfg.star.init == "base" else None, sampler)
        done = it + 1
        if done == cfg.star.iterations or (cfg.eval.every and done % cfg.eval.every == 0):
            metrics.update(evaluate_sets(model, tokenizer, eval_sets, cfg))
        log(metrics, done)
        bar_postfix(bar, metrics, "select/kept")
        save(model, None, done)
    if bar is not None:
        bar.close()
    return model


def run_method(r: Any, log: Callable[[dict[str, float], int], None], save: Callable[[Any, Any, int], None],
               sampler: Sampler | None) -> None:
    """The runner's entry (StarConfig.trainer): `run_star` on a prepared RLRun (rl/runner.py)."""
    base_state = None
    if r.cfg.star.init == "base":
        base_state = load_policy(r.cfg.init_checkpoint, r.cfg.device)[0].state_dict()
    run_star(r.model, r.tokenizer, r.train_problems, r.eval_sets, r.cfg, log, save, r.start, base_state,
             sampler)
