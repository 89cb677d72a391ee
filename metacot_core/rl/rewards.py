"""Verifiable rewards: the format's replay judges every step, the problem's verifier the answer.

The evaluator's judge (metacot_core.evaluation.judge: the format's replay, then the problem's own
verifier on the extracted solution, never raising) scores RL rollouts too, so a reward can only be
earned by a trace whose every step is legal and whose final solution verifies; nothing here
pattern-matches the text. Pure functions (completions in, floats out, like TRL's `trl/rewards/`),
so a Ray actor or a test can call them without any training state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metacot_core.evaluation.judge import join_prompt, judge
from metacot_core.problems.base import Problem
from metacot_core.rl.config import RewardConfig
from metacot_core.search.events import Create, Generate
from metacot_core.traces.base import Reason, TraceFormat, Verdict


@dataclass(frozen=True, slots=True)
class Scored:
    """One completion's reward and the facts it was computed from (logged as metrics)."""

    reward: float
    solved: bool
    valid: bool
    reason: str | None
    states_explored: int
    n_tokens: int
    solution: tuple[str, ...] | None = None
    nodes_generated: int = 0


def nodes_generated(fmt: TraceFormat, text: str) -> int | None:
    """Children the trace generated (Generate / A* Create events): SoS's "explored" count, which is the
    number of "Exploring Operation" lines. None when the text does not parse."""
    try:
        events = fmt.parse(text)
    except Exception:  # noqa: BLE001 - any parse failure means "unknown", the caller falls back
        return None
    return sum(1 for e in events if isinstance(e, Generate | Create))


def length_factor(cfg: RewardConfig, explored: int, n_tokens: int) -> float:
    """The multiplier a solved trace's reward gets for its length (1.0 when no length term is set).

    budget: Stream of Search's rating 1 - (explored + 1) / budget with explored = nodes generated,
    floored at 0 so that an over-budget success never scores below a failure. discount: gamma ** tokens,
    the discounted return of a reward paid at the last token.
    """
    if cfg.length == "budget":
        return max(0.0, 1.0 - (explored + 1) / cfg.budget)
    if cfg.length == "discount":
        return cfg.gamma**n_tokens
    return 1.0


def verdict_reward(verdict: Verdict, n_tokens: int, cfg: RewardConfig, explored: int | None = None) -> float:
    """solved x length factor x cfg.solved, plus cfg.format_weight for a valid (legal) non-empty trace.

    The judge calls empty output valid (nothing illegal was written); paying the format term for it
    would reward collapsing to no reasoning at all, so an empty trace earns nothing.
    """
    reward = 0.0
    if verdict.solved:
        count = verdict.states_visited if explored is None else explored
        reward += cfg.solved * length_factor(cfg, count, n_tokens)
    if verdict.valid and verdict.reason is not Reason.EMPTY:
        reward += cfg.format_weight
    return reward


def score_completion(problem: Problem, fmt: TraceFormat, completion: str, cfg: RewardConfig,
                     n_tokens: int | None = None, truncated: bool = False, prompt: str = "") -> Scored:
    """Judge `prompt + completion` against `problem` and turn the verdict into a reward.

    `n_tokens` is the completion's length in model tokens (the discount term needs it); without it
    whitespace-separated words stand in, which is what the word-level tokenizer counts anyway.
    `truncated` (decoding hit max tokens) makes an unfinished search "ran out of tokens", never solved.
    """
    judgement = judge(problem, fmt, completion, truncated=truncated, prompt=prompt)
    verdict = judgement.verdict
    length = len(completion.split()) if n_tokens is None else n_tokens
    generated = nodes_generated(fmt, join_prompt(prompt, completion)) if verdict.solved else None
    return Scored(
        reward=verdict_reward(verdict, length, cfg, generated),
        solved=bool(verdict.solved),
        valid=bool(verdict.valid),
        reason=None if judgement.solved else judgement.label,
        states_explored=int(verdict.states_visited),
        n_tokens=length,
        solution=tuple(verdict.solution) if verdict.solution else None,
        nodes_generated=generated or 0,
    )


def score(problems: Sequence[Problem], completions: Sequence[str], fmt: TraceFormat, cfg: RewardConfig,
          n_tokens: Sequence[int] | None = None, truncated: Sequence[bool] | None = None,
          prompts: Sequence[str] | None = None) -> list[Scored]:
    """Score completions pairwise with their problems (aligned lists; repeat a problem per sample)."""
    n = len(completions)
    for name, seq in (("problems", problems), ("token counts", n_tokens), ("truncated flags", truncated),
                      ("prompts", prompts)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"score: {len(seq)} {name} but {n} completions")
    return [
        score_completion(p, fmt, c, cfg,
                         None if n_tokens is None else n_tokens[i],
                         False if truncated is None else truncated[i],
                         "" if prompts is None else prompts[i])
        for i, (p, c) in enumerate(zip(problems, completions, strict=True))
    ]


def reward_function(fmt: TraceFormat, cfg: RewardConfig) -> Callable[..., list[float]]:
    """A TRL-style reward `(completions, problems=...) -> list[float]` bound to a format and settings."""

    def reward(completions: Sequence[str], problems: Sequence[Problem],
               prompts: Sequence[str] | None = None, **_: object) -> list[float]:
        return [s.reward for s in score(problems, completions, fmt, cfg, prompts=prompts)]

    return reward


def summarize(scored: Sequence[Scored]) -> dict[str, float]:
    """Batch metrics: reward mean/std, solve and valid-trace rates, mean length and states explored."""
    n = len(scored)
    if n == 0:
        return {}
    rewards = [s.reward for s in scored]
    mean = sum(rewards) / n
    var = sum((r - mean) ** 2 for r in rewards) / n
    solved = [s for s in scored if s.solved]
    return {
        "reward_mean": mean,
        "reward_std": var**0.5,
        "solve_rate": len(solved) / n,
        "valid_rate": sum(s.valid for s in scored) / n,
        "trace_tokens_mean": sum(s.n_tokens for s in scored) / n,
        "states_explored_mean": sum(s.states_explored for s in scored) / n,
        "states_explored_solved_mean": sum(s.states_explored for s in solved) / max(1, len(solved)),
        "nodes_generated_solved_mean": sum(s.nodes_generated for s in solved) / max(1, len(solved)),
    }
