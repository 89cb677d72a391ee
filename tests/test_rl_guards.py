"""Collapse alarms fire on degenerate rollouts and stay quiet on search traces."""

from __future__ import annotations

import pytest

from metacot_core.rl.config import GuardConfig
from metacot_core.rl.guards import check_collapse, repeated_ngram_rate

TRACE = (
    "Current State: 13:[43, 15, 18, 9], Operations: []\n"
    "Exploring Operation: 43-15=28, Resulting Numbers: [18, 9, 28]\n"
    "Generated Node #0,0: 13:[18, 9, 28] Operation: 43-15=28\n"
    "Exploring Operation: 43-18=25, Resulting Numbers: [15, 9, 25]\n"
    "Generated Node #0,1: 13:[15, 9, 25] Operation: 43-18=25\n"
    "Moving to Node #0,1\n"
    "Current State: 13:[15, 9, 25], Operations: ['43-18=25']\n"
)


def test_repeated_ngram_rate_by_hand() -> None:
    # "a b a b a b" with n=2: bigrams ab ba ab ba ab -> 5 total, 2 distinct -> 1 - 2/5 = 0.6
    assert repeated_ngram_rate("a b a b a b".split(), 2) == pytest.approx(0.6)
    # all distinct -> 0; too short (< 2n tokens) -> 0
    assert repeated_ngram_rate("a b c d e f".split(), 2) == 0.0
    assert repeated_ngram_rate("a a a".split(), 2) == 0.0


def test_loop_of_a_long_block_is_caught() -> None:
    block = "Moving to Node #0,1 Current State: 13:[15, 9, 25], Operations: ['43-18=25'] ".split()
    looped = block * 20
    assert repeated_ngram_rate(looped, 8) > 0.9
    assert repeated_ngram_rate(TRACE.split(), 8) < 0.2


def test_check_collapse_quiet_on_search_traces() -> None:
    report = check_collapse([TRACE, TRACE.replace("43", "44")], GuardConfig())
    assert not report.collapsed
    assert report.metrics["collapse_empty_rate"] == 0.0
    assert report.metrics["distinct_completion_rate"] == 1.0


def test_check_collapse_flags_empty_reasoning() -> None:
    # 3 of 4 completions have fewer than 3 tokens: 75% > 50% limit
    report = check_collapse(["", "Goal", "No solution", TRACE], GuardConfig())
    assert report.metrics["collapse_empty_rate"] == pytest.approx(0.75)
    assert report.collapsed
    assert "empty reasoning" in report.alarms[0]


def test_check_collapse_flags_repetition() -> None:
    loop = " ".join(["Moving to Node #0,0"] * 40)
    report = check_collapse([loop, loop, loop, TRACE], GuardConfig())
    assert report.metrics["collapse_repeat_rate"] == pytest.approx(0.75)
    assert any("repetition" in a for a in report.alarms)
    assert report.metrics["distinct_completion_rate"] == pytest.approx(0.5)


def test_check_collapse_uses_model_tokens_when_given() -> None:
    report = check_collapse(["x", "y"], GuardConfig(min_tokens=3), token_lists=[["a"] * 5, ["b"] * 5])
    assert report.metrics["collapse_empty_rate"] == 0.0
    with pytest.raises(ValueError, match="token lists"):
        check_collapse(["x", "y"], GuardConfig(), token_lists=[["a"]])


def test_no_alarm_on_any_stream_of_search_reference_trace() -> None:
    # calibration: the 400 SoS reference traces repeat at most ~47% of their 8-grams (threshold 80%)
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos"
    if not root.is_dir():
        pytest.skip(f"{root}: SoS reference traces not present")
    traces = [json.loads(line)["search_path"] for f in sorted(root.glob("*.jsonl"))
              for line in f.read_text().splitlines()]
    report = check_collapse(traces, GuardConfig())
    assert len(traces) == 400
    assert report.metrics["collapse_repeat_rate"] == 0.0 and not report.collapsed
