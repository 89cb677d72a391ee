"""RL progress bars: one per GRPO step / STaR round showing reward, samples kept and tokens/s; off when
progress=false; per-phase timings in a step's metrics."""

from __future__ import annotations

import io

from metacot_core.rl.common import bar_postfix, step_bar
from metacot_core.rl.grpo import Clock


def test_disabled_bar_is_none_and_postfix_is_a_no_op():
    bar = step_bar(False, 0, 10, "grpo")
    assert bar is None
    bar_postfix(bar, {"rollout/reward_mean": 1.0}, "rollout/kept")  # nothing to update, no error


def test_bar_shows_reward_kept_and_tokens_per_second():
    stream = io.StringIO()
    bar = step_bar(True, 2, 10, "grpo", file=stream)
    bar_postfix(bar, {"rollout/reward_mean": 0.25, "rollout/kept": 96.0, "time/sample_tokens_per_s": 1234.4},
                "rollout/kept")
    bar.refresh()
    text = stream.getvalue()
    bar.close()
    assert bar.n == 3 and "grpo" in text
    assert "reward=0.250" in text and "kept=96" in text and "tok_s=1234" in text


def test_clock_sums_laps_per_phase():
    clock = Clock()
    clock.lap("a")
    clock.lap("b")
    first = clock.times["a"]
    clock.lap("a")
    assert set(clock.times) == {"a", "b"} and clock.times["a"] >= first >= 0.0
