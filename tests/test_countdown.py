"""Countdown: rules, heuristics as SoS defines them, solvability, config errors, splits without leakage."""

from __future__ import annotations

import itertools
import random
from functools import partial

import numpy as np
import pytest
from pydantic import ValidationError

from metacot_core import registry
from metacot_core.config import ConfigError, build_config
from metacot_core.domains.countdown.problem import (
    CountdownConfig,
    CountdownDomain,
    CountdownProblem,
    held_out_input,
    mult_heuristic,
    reference_solution,
    solvable,
    solvable_batch,
    sum_heuristic,
)
from metacot_core.problems.base import Problem, UnsolvableProblemError

DOMAIN = CountdownDomain()


def _brute(nums: list[int], target: int) -> bool:
    """Every way of combining two numbers, recursively, straight from the rules."""
    if len(nums) == 1:
        return nums[0] == target
    for i, j in itertools.combinations(range(len(nums)), 2):
        a, b = nums[i], nums[j]
        lo, hi = min(a, b), max(a, b)
        results = [a + b, a * b, hi - lo] + ([hi // lo] if lo and hi % lo == 0 else [])
        rest = [nums[k] for k in range(len(nums)) if k not in (i, j)]
        if any(_brute(rest + [r], target) for r in results):
            return True
    return False


def test_protocol_and_registry():
    p = CountdownProblem([43, 15, 18, 9], 13)
    assert isinstance(p, Problem)
    assert registry.get_domain("countdown").name == "countdown"
    assert p.render_state(p.initial_state()) == "13:[43, 15, 18, 9]"
    assert p.to_instance() == {"numbers": [43, 15, 18, 9], "target": 13}
    actions = p.actions(p.initial_state())
    # SoS order: pairs (0,1), (0,2), ...; per pair +, *, larger-minus-smaller, exact division.
    assert actions[:3] == [(0, 1, "+"), (0, 1, "*"), (0, 1, "-")]
    assert p.render_action(p.initial_state(), (0, 1, "-")) == "43-15=28"
    assert p.apply(p.initial_state(), (0, 1, "-")) == ((18, 9, 28), ("43-15=28",))
    assert p.render_action(p.initial_state(), (2, 3, "/")) == "18/9=2"
    assert (0, 1, "/") not in actions  # 43 / 15 is not exact


def test_verify():
    p = CountdownProblem([43, 15, 18, 9], 13)
    assert p.verify(["15*18=270", "270/9=30", "43-30=13"])
    assert not p.verify(["15*18=270", "270/9=30"])  # not all numbers used
    assert not p.verify(["15*18=271", "271/9=30", "43-30=13"])  # wrong arithmetic
    assert not p.verify(["30-43=13"])  # smaller minus larger, and 30 not available
    assert not p.verify(["15*18=270", "270/9=30", "43-30=13", "13+0=13"])
    assert not p.verify(["hello"]) and not p.verify([None])  # type: ignore[list-item]
    assert CountdownProblem([7, 7], 1).verify(["7/7=1"]) and not CountdownProblem([7, 7], 1).verify(["7-7=0"])


def test_heuristics_as_sos():
    # sum: mean |n - target| (plain distance for one number); mult: distance to the nearest factor of
    # the target in 2..target, summed. Target 24's factors: 2, 3, 4, 6, 8, 12, 24.
    assert sum_heuristic([18, 9, 28], 13) == (5 + 4 + 15) / 3
    assert sum_heuristic([20], 13) == 7
    assert mult_heuristic([4, 27], 24) == 0 + 3
    assert mult_heuristic([100, 5], 24) == 76 + 1
    p = CountdownProblem([18, 9, 28], 13)
    assert p.heuristic(p.initial_state(), "sum") == p.heuristic(p.initial_state()) == 8.0
    with pytest.raises(ValueError, match="heuristic"):
        p.heuristic(p.initial_state(), "manhattan")


def test_fast_children_match_protocol():
    rng = random.Random(0)
    for _ in range(50):
        p = CountdownProblem([rng.randint(0, 40) for _ in range(rng.randint(2, 5))], rng.randint(1, 60))
        state = p.initial_state()
        for name in ("sum", "mult"):
            items = p.scored_children(state, name)
            acts = p.actions(state)
            assert len(items) == len(acts)
            for item, action in zip(items, acts, strict=True):
                text, child, act, goal, leaf = p.make_child(state, item)
                assert act == action and child == p.apply(state, action)
                assert text == p.render_action(state, action)
                assert item[0] == p.heuristic(child, name) and goal == p.is_goal(child)


def test_solvable_matches_brute_force():
    rng = random.Random(1)
    for n in (2, 3, 4):
        for _ in range(150 if n == 4 else 300):
            nums = [rng.randint(0, 25) for _ in range(n)]
            target = rng.randint(1, 60)
            assert solvable(nums, target) == _brute(nums, target), (nums, target)
    for _ in range(20):
        nums = [rng.randint(1, 9) for _ in range(5)]
        assert solvable(nums, 50) == _brute(nums, 50)


def test_batch_check_agrees():
    rng = random.Random(2)
    for n in (2, 3, 4):
        for _ in range(40):
            target = rng.randint(10, 100)
            draws = np.array([[rng.randint(0, 99) for _ in range(n)] for _ in range(32)])
            expected = [solvable(row.tolist(), target) for row in draws]
            assert solvable_batch(draws, target).tolist() == expected


def test_reference_solution_and_unsolvable():
    steps = reference_solution([43, 15, 18, 9], 13)
    assert steps == ["15*18=270", "270/9=30", "43-30=13"]  # SoS's generator found exactly this
    assert reference_solution([2, 3, 5], 97) is None
    p = DOMAIN.from_instance({"numbers": [2, 3, 5], "target": 97})
    with pytest.raises(UnsolvableProblemError, match="cannot make 97"):
        p.reference_solution()


@pytest.mark.parametrize(("override", "field"), [
    ({"num_count": 1}, "num_count"),
    ({"num_count": 7}, "num_count"),
    ({"target_min": 50, "target_max": 20}, "target_min"),
    ({"min_number": 10, "max_number": 5}, "min_number"),
    ({"held_out_target_fraction": 1.0}, "held_out_target_fraction"),
    ({"max_number": 0}, "max_number"),
    ({"nums": 4}, "nums"),
])
def test_bad_config_names_field(override, field):
    with pytest.raises(ValidationError, match=field):
        CountdownConfig(**override)
    with pytest.raises(ConfigError, match=field):
        build_config(CountdownConfig, override)


@pytest.mark.parametrize(("instance", "match"), [
    ([1, 2, 3], "instance"),
    ({"numbers": [1, 2]}, "target"),
    ({"numbers": "1,2", "target": 3}, "instance.numbers"),
    ({"numbers": [1, 2.5], "target": 3}, "instance.numbers"),
    ({"numbers": [1, 2], "target": True}, "instance.target"),
    ({"numbers": [1, 2], "target": 3, "extra": 1}, "unknown keys"),
    ({"numbers": [5], "target": 5}, "at least 2"),
    ({"numbers": [1, -2], "target": 3}, "non-negative"),
    ({"numbers": [1, 2], "target": 0}, "target"),
])
def test_from_instance_errors(instance, match):
    with pytest.raises(ValueError, match=match):
        DOMAIN.from_instance(instance)


def test_make_is_deterministic_and_solvable():
    cfg = CountdownConfig()
    a = [DOMAIN.make(cfg, "train", i, 7).to_instance() for i in range(30)]
    b = [DOMAIN.make(cfg, "train", i, 7).to_instance() for i in reversed(range(30))][::-1]
    assert a == b  # each index alone, in any order (what shard workers rely on)
    assert a != [DOMAIN.make(cfg, "train", i, 8).to_instance() for i in range(30)]
    for inst in a:
        assert 10 <= inst["target"] <= 100 and all(1 <= x <= 99 for x in inst["numbers"])
        assert solvable(inst["numbers"], inst["target"])
    with pytest.raises(ValueError, match="split"):
        DOMAIN.make(cfg, "test", 0, 0)


def test_sos_held_out_targets():
    cfg = CountdownConfig()
    assert DOMAIN.targets_for(cfg, "val_target", 4) == tuple(sorted([81, 96, 89, 39, 41, 62, 57, 14, 87]))


def test_splits_never_leak():
    cfg = CountdownConfig()
    seed = 3
    train = [DOMAIN.make(cfg, "train", i, seed) for i in range(3000)]
    train_keys = {(tuple(sorted(p.numbers)), p.target) for p in train}
    train_sets = {tuple(sorted(p.numbers)) for p in train}
    held_targets = set(DOMAIN.targets_for(cfg, "val_target", seed))
    assert not any(p.target in held_targets for p in train)
    assert not any(held_out_input(p.numbers, cfg.held_out_inputs_fraction, seed) for p in train)
    val_inputs = [DOMAIN.make(cfg, "val_inputs", i, seed) for i in range(1000)]
    assert not {tuple(sorted(p.numbers)) for p in val_inputs} & train_sets
    assert all(p.target not in held_targets for p in val_inputs)
    val_target = [DOMAIN.make(cfg, "val_target", i, seed) for i in range(1000)]
    assert all(p.target in held_targets for p in val_target)
    harder = [DOMAIN.make(cfg, "harder", i, seed) for i in range(200)]
    assert all(len(p.numbers) == 5 for p in harder)
    for split in (val_inputs, val_target, harder):
        assert not {(tuple(sorted(p.numbers)), p.target) for p in split} & train_keys
    # target first (as SoS): every training target is drawn, whatever its share of solvable draws
    counts = {t: 0 for t in DOMAIN.targets_for(cfg, "train", seed)}
    for p in train:
        counts[p.target] += 1
    assert min(counts.values()) > 0


def test_val_inputs_needs_a_fraction():
    cfg = CountdownConfig(held_out_inputs_fraction=0.0)
    with pytest.raises(ValueError, match="held_out_inputs_fraction"):
        DOMAIN.make(cfg, "val_inputs", 0, 0)
    cfg = CountdownConfig(held_out_target_fraction=0.0)
    with pytest.raises(ValueError, match="held_out_target_fraction"):
        DOMAIN.make(cfg, "val_target", 0, 0)


@pytest.mark.parametrize("count", [3, 5])
def test_other_sizes(count):
    cfg = CountdownConfig(num_count=count)
    for i in range(20):
        p = DOMAIN.make(cfg, "train", i, 0)
        assert len(p.numbers) == count and p.verify(p.reference_solution())


def test_block_drawing_equals_one_index_at_a_time():
    # make() draws blocks of indices together; each index must still be what its own rng gives.
    from metacot_core.domains.countdown.problem import _split_accepts, draw_solvable

    cfg = CountdownConfig()
    for split in ("train", "val_inputs"):
        targets = DOMAIN.targets_for(cfg, split, 9)
        for index in (0, 5, 63, 64, 130):
            rng = random.Random(f"countdown/9/{split}/{index}")
            target = rng.choice(targets)
            nums = draw_solvable(rng, target, 4, 1, 99, partial(_split_accepts, split, fraction=0.1, seed=9))
            fresh = CountdownDomain().make(cfg, split, index, 9)
            assert (fresh.numbers, fresh.target) == (tuple(nums), target)
