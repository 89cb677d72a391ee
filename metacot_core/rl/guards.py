"""Collapse alarms: notice when rollouts degenerate instead of silently training on them.

Two failure modes of RL on a small model: the policy learns to stop at once (empty reasoning: the
reward is 0 either way, but the KL and entropy terms can drift there), or it loops on one phrase until
max tokens. Both show up as numbers first; these functions compute them per batch and say, in one
line each, which alarm fired. The caller logs the metrics and warns or stops (GrpoConfig.on_collapse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from metacot_core.rl.config import GuardConfig


def repeated_ngram_rate(tokens: Sequence[str], n: int) -> float:
    """Share of a sequence's n-grams that repeat an earlier one: 1 - distinct / total.

    A loop of any block length drives it towards 1 (every n-gram after the first round is a repeat),
    while a search trace, whose lines carry changing numbers and node ids, stays low. Sequences shorter
    than 2n count as 0: too short to call a loop.
    """
    if len(tokens) < 2 * n:
        return 0.0
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


@dataclass(slots=True)
class CollapseReport:
    """Per-batch collapse metrics and the alarms they raised (empty list = healthy)."""

    metrics: dict[str, float]
    alarms: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return bool(self.alarms)


def check_collapse(completions: Sequence[str], cfg: GuardConfig,
                   token_lists: Sequence[Sequence[str]] | None = None) -> CollapseReport:
    """Measure empty, repetitive and duplicated completions in a batch and raise alarms past the limits.

    `token_lists` are the completions in model tokens; whitespace words stand in when not given.
    """
    n = len(completions)
    if n == 0:
        return CollapseReport(metrics={})
    tokens = [list(t) for t in token_lists] if token_lists is not None else [c.split() for c in completions]
    if len(tokens) != n:
        raise ValueError(f"check_collapse: {len(tokens)} token lists for {n} completions")
    empty = sum(len(t) < cfg.min_tokens for t in tokens) / n
    shares = [repeated_ngram_rate(t, cfg.ngram) for t in tokens]
    repeat = sum(s >= cfg.repeat_threshold for s in shares) / n
    metrics = {
        "collapse_empty_rate": empty,
        "collapse_repeat_rate": repeat,
        "repeated_ngram_rate_mean": sum(shares) / n,
        "distinct_completion_rate": len(set(completions)) / n,
    }
    alarms = []
    if empty > cfg.max_empty_rate:
        alarms.append(f"empty reasoning: {empty:.0%} of completions have < {cfg.min_tokens} tokens "
                      f"(limit {cfg.max_empty_rate:.0%})")
    if repeat > cfg.max_repeat_rate:
        alarms.append(f"repetition: {repeat:.0%} of completions repeat >= {cfg.repeat_threshold:.0%} of "
                      f"their {cfg.ngram}-grams "
                      f"(limit {cfg.max_repeat_rate:.0%})")
    return CollapseReport(metrics=metrics, alarms=alarms)
