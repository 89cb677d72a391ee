"""The verifiable reward on real Stream of Search traces (table-driven), its length terms, and STaR's
selection of training traces from judged samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metacot_core.registry import get_domain, get_format
from metacot_core.rl.config import RewardConfig, StarConfig
from metacot_core.rl.rewards import Scored, length_factor, reward_function, score, score_completion, summarize
from metacot_core.rl.star import Kept, Sample, choose_problems, select

SOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos" / "train.jsonl"


def _records() -> list[dict]:
    if not SOS.is_file():
        pytest.skip(f"{SOS}: SoS reference traces not present")
    return [json.loads(line) for line in SOS.read_text().splitlines()]


def _case(solved: bool) -> tuple[object, str, str, dict]:
    """(problem, prompt, completion, record) of the first reference trace that did / did not solve."""
    rec = next(r for r in _records() if (r["rating"] > 0) == solved)
    problem = get_domain("countdown").from_instance({"numbers": rec["nums"], "target": rec["target"]})
    prompt = get_format("sos").prompt(problem)
    assert rec["search_path"].startswith(prompt)
    return problem, prompt, rec["search_path"][len(prompt):], rec


def _corrupt_arithmetic(text: str) -> str:
    """Change the result of the first "Exploring Operation: a+b=c" line to c+1."""
    head, sep, tail = text.partition("Exploring Operation: ")
    op, rest = tail.split(",", 1)
    left, result = op.split("=")
    return f"{head}{sep}{left}={int(result) + 1},{rest}"


@pytest.mark.parametrize(
    ("name", "make", "truncated", "reward", "solved", "valid", "reason"),
    [
        ("solved", lambda p, c: c, False, 1.0, True, True, None),
        ("gave up", None, False, 0.0, False, True, "no_goal_claimed"),
        ("empty", lambda p, c: "", False, 0.0, False, True, "empty"),  # the judge: nothing illegal written
        ("wrong arithmetic", lambda p, c: _corrupt_arithmetic(c), False, 0.0, False, False,
         "wrong_arithmetic"),
        ("cut before the goal", lambda p, c: c[: len(c) // 2], True, 0.0, False, True, "ran_out_of_tokens"),
        ("goal line only", lambda p, c: c.split("\n")[-2] + "\n", False, 0.0, False, False, None),
    ],
)
def test_reward_table(name, make, truncated, reward, solved, valid, reason) -> None:
    fmt = get_format("sos")
    if make is None:
        problem, prompt, completion, _ = _case(solved=False)
    else:
        problem, prompt, completion, _ = _case(solved=True)
        completion = make(problem, completion)
    s = score_completion(problem, fmt, completion, RewardConfig(), truncated=truncated, prompt=prompt)
    assert (s.reward, s.solved) == (reward, solved), name
    if valid is not None and name != "goal line only":
        assert s.valid == valid, name
    if reason is not None:
        assert s.reason == reason, name


def test_format_term_pays_for_a_legal_search_that_gives_up() -> None:
    problem, prompt, completion, _ = _case(solved=False)
    s = score_completion(problem, get_format("sos"), completion, RewardConfig(format_weight=0.1),
                         prompt=prompt)
    assert s.reward == pytest.approx(0.1)  # valid but unsolved: only the format term
    empty = score_completion(problem, get_format("sos"), "", RewardConfig(format_weight=0.1), prompt=prompt)
    assert empty.valid and empty.reward == 0.0  # no pay for writing nothing (collapse to empty reasoning)


def test_budget_length_term_reproduces_every_sos_rating() -> None:
    # SoS rates a trace max(0, 1 - (count("Exploring Operation") + 1) / 1152) when its goal verifies,
    # else 0. The budget term with budget 1152 must give the reference file's rating for every record.
    fmt, domain = get_format("sos"), get_domain("countdown")
    cfg = RewardConfig(length="budget", budget=1152)
    records = _records()
    for rec in records:
        problem = domain.from_instance({"numbers": rec["nums"], "target": rec["target"]})
        prompt = fmt.prompt(problem)
        s = score_completion(problem, fmt, rec["search_path"][len(prompt):], cfg, prompt=prompt)
        assert s.reward == pytest.approx(rec["rating"], abs=1e-12), rec["search_path"][:60]
        if s.solved:
            assert s.nodes_generated == rec["search_path"].count("Exploring Operation")
    assert sum(r["rating"] > 0 for r in records) > 50  # both outcomes were really exercised


def test_length_factor_by_hand() -> None:
    # budget 100: 1 - (9 + 1) / 100 = 0.9; over budget floors at 0; discount 0.5 ** 3 = 0.125
    assert length_factor(RewardConfig(length="budget", budget=100), 9, 0) == pytest.approx(0.9)
    assert length_factor(RewardConfig(length="budget", budget=100), 500, 0) == 0.0
    assert length_factor(RewardConfig(length="discount", gamma=0.5), 0, 3) == pytest.approx(0.125)
    assert length_factor(RewardConfig(), 500, 500) == 1.0


def test_score_batch_and_trl_style_function() -> None:
    problem, prompt, completion, _ = _case(solved=True)
    fmt = get_format("sos")
    out = score([problem, problem], [completion, ""], fmt, RewardConfig(), prompts=[prompt, prompt])
    assert [s.reward for s in out] == [1.0, 0.0]
    assert reward_function(fmt, RewardConfig())([completion, "junk"], problems=[problem, problem],
                                                prompts=[prompt, prompt]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="2 problems but 1 completions"):
        score([problem, problem], [completion], fmt, RewardConfig())
    stats = summarize(out)
    assert stats["solve_rate"] == 0.5 and stats["reward_mean"] == 0.5 and stats["reward_std"] == 0.5


# ----------------------------------------------------------------------------------- STaR selection

def _s(pid: str, text: str, solved: bool, n: int, reward: float | None = None) -> Sample:
    r = (1.0 if solved else 0.0) if reward is None else reward
    return Sample(pid, f"prompt-{pid}", text, Scored(r, solved, solved, None, 0, n))


SAMPLES = [
    _s("a", "long", True, 30), _s("a", "short", True, 10), _s("a", "short", True, 10),
    _s("a", "bad", False, 5),
    _s("b", "bad1", False, 3), _s("b", "bad2", False, 4),
    _s("c", "mid", True, 20, reward=0.2), _s("c", "low", True, 25, reward=0.1),
]
TEACHER = {"a": Kept("a", "prompt-a", "teacher-a", "teacher", 15),
           "b": Kept("b", "prompt-b", "teacher-b", "teacher", 50),
           "c": Kept("c", "prompt-c", "teacher-c", "teacher", 12),
           "d": Kept("d", "prompt-d", "teacher-d", "teacher", 40)}


def test_select_all_keeps_distinct_correct_samples() -> None:
    kept, stats = select(SAMPLES, StarConfig(keep="all"))
    assert [(k.problem_id, k.trace) for k in kept] == [
        ("a", "long"), ("a", "short"), ("c", "mid"), ("c", "low")]
    assert stats["problems_with_correct_sample"] == pytest.approx(2 / 3)


def test_select_threshold_is_strict_like_sos() -> None:
    # SoS keeps rating > threshold: 0.2 > 0.15 kept, 0.1 dropped
    kept, _ = select(SAMPLES, StarConfig(keep="all", min_reward=0.15))
    assert [k.trace for k in kept] == ["long", "short", "mid"]


def test_select_shortest_falls_back_to_teacher() -> None:
    kept, stats = select(SAMPLES, StarConfig(keep="shortest"), TEACHER)
    # a: shortest correct (10) beats the teacher (15); b: none correct -> teacher;
    # c: shortest correct is 20, the teacher's 12 is shorter -> teacher; d: never sampled -> teacher
    assert [(k.problem_id, k.trace, k.source) for k in kept] == [
        ("a", "short", "model"), ("b", "teacher-b", "teacher"), ("c", "teacher-c", "teacher"),
        ("d", "teacher-d", "teacher")]
    assert stats["kept_from_teacher"] == 3.0 and stats["kept_from_model"] == 1.0


def test_select_best_and_shortest_without_teacher() -> None:
    kept, _ = select(SAMPLES, StarConfig(keep="best"))
    assert [k.trace for k in kept] == ["short", "mid"]  # a: ties on reward 1 -> fewer tokens; c: 0.2 > 0.1
    with pytest.raises(ValueError, match="teacher"):
        select(SAMPLES, StarConfig(keep="shortest"))


def test_choose_problems_is_seeded_and_complete_by_default() -> None:
    assert choose_problems(5, StarConfig(), 0, 0) == [0, 1, 2, 3, 4]
    cfg = StarConfig(problems_per_iteration=3)
    first = choose_problems(10, cfg, 1, 7)
    assert first == choose_problems(10, cfg, 1, 7) and len(first) == 3
    assert first != choose_problems(10, cfg, 2, 7) or first != choose_problems(10, cfg, 3, 7)
