"""DFS and beam search: golden tiny cases (exact events and SoS text), unsolvable, budget, generic path."""

from __future__ import annotations

import random

import pytest

from metacot_core import registry
from metacot_core.domains.countdown.problem import CountdownProblem
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.search._common import GIVE_UP, LEAF
from metacot_core.search.beam import beam
from metacot_core.search.config import SearchConfig, sos_mix
from metacot_core.search.dfs import dfs
from metacot_core.search.events import Backtrack, DeadEnd, Expand, Generate, Goal

SOS = SosFormat()


def _cfg(algorithm: str, heuristic: str = "sum", width: int = 1, **kw: object) -> SearchConfig:
    return SearchConfig(algorithm=algorithm, heuristic=heuristic, beam_width=width, **kw)


def _text(problem: CountdownProblem, result) -> str:
    return SOS.prompt(problem) + SOS.linearize(problem, result)


def test_beam_golden_events_mult_width2():
    # 24 from [4, 9, 3], mult heuristic (distance to the nearest factor of 24 among 2,3,4,6,8,12,24):
    # root children with h = 0 are 9+3 -> [4, 12], 9-3 -> [4, 6], 9/3 -> [4, 3] (in that order); width 2
    # keeps the first two. Children of [4, 12]: 12-4=8 and 12/4=3 (h 0) beat 4+12=16 (h 4), both leaves,
    # both named #0,0,0 (SoS numbers leaves by the non-leaf siblings before them). Children of [4, 6]:
    # 4*6=24 and 6-4=2 (h 0) kept, the shuffle puts 6-4=2 first, then 4*6=24 is the goal.
    p = CountdownProblem([4, 9, 3], 24)
    r = beam(p, _cfg("beam", "mult", 2), random.Random(0))
    root = ((4, 9, 3), ())
    a = ((4, 12), ("9+3=12",))
    b = ((4, 6), ("9-3=6",))
    assert r.events == [
        Expand("0", root),
        Generate("0,0", "0", "9+3=12", a),
        Generate("0,1", "0", "9-3=6", b),
        Backtrack("0,0"),
        Expand("0,0", a),
        Generate("0,0,0", "0,0", "12-4=8", ((8,), ("9+3=12", "12-4=8"))),
        DeadEnd("0,0,0", ((8,), ("9+3=12", "12-4=8")), LEAF),
        Generate("0,0,0", "0,0", "12/4=3", ((3,), ("9+3=12", "12/4=3"))),
        DeadEnd("0,0,0", ((3,), ("9+3=12", "12/4=3")), LEAF),
        Backtrack("0,1"),
        Expand("0,1", b),
        Generate("0,1,0", "0,1", "6-4=2", ((2,), ("9-3=6", "6-4=2"))),
        DeadEnd("0,1,0", ((2,), ("9-3=6", "6-4=2")), LEAF),
        Generate("0,1,0", "0,1", "4*6=24", ((24,), ("9-3=6", "4*6=24"))),
        Goal("0,1,0", ((24,), ("9-3=6", "4*6=24"))),
    ]
    assert r.solution_text == ["9-3=6", "4*6=24"] and r.solution == [(1, 2, "-"), (0, 1, "*")]
    assert r.n_expanded == 3 and r.n_generated == 6 and p.verify(r.solution_text)


def test_beam_golden_text_unsolvable_gives_up():
    # 97 from [2, 3, 5] is impossible. Width 1 keeps 3*5=15 (h (95+82)/2 = 88.5), then 2*15=30 (h 67);
    # the leaf is popped, has no children, the heap runs dry: "No solution found." with no newline.
    p = CountdownProblem([2, 3, 5], 97)
    r = beam(p, _cfg("beam", "sum", 1), random.Random(0))
    assert _text(p, r) == (
        "Current State: 97:[2, 3, 5], Operations: []\n"
        "Exploring Operation: 3*5=15, Resulting Numbers: [2, 15]\n"
        "Generated Node #0,0: 97:[2, 15] Operation: 3*5=15\n"
        "Moving to Node #0,0\n"
        "Current State: 97:[2, 15], Operations: ['3*5=15']\n"
        "Exploring Operation: 2*15=30, Resulting Numbers: [30]\n"
        "30,97 unequal: No Solution\n"
        "Moving to Node #0,0,0\n"
        "Current State: 97:[30], Operations: ['3*5=15', '2*15=30']\n"
        "No solution found."
    )
    assert not r.solved and r.solution is None and r.events[-1] == DeadEnd("", None, GIVE_UP)


DFS_24 = """Current State: 24:[4, 9, 3], Operations: []
Exploring Operation: 9*3=27, Resulting Numbers: [4, 27]
Generated Node #0,0: 24:[4, 27] Operation: 9*3=27
Moving to Node #0,0
Current State: 24:[4, 27], Operations: ['9*3=27']
Exploring Operation: 27-4=23, Resulting Numbers: [23]
23,24 unequal: No Solution
Moving to Node #0,0
Current State: 24:[4, 27], Operations: ['9*3=27']
Exploring Operation: 4+27=31, Resulting Numbers: [31]
31,24 unequal: No Solution
Moving to Node #0
Current State: 24:[4, 9, 3], Operations: []
Exploring Operation: 4*3=12, Resulting Numbers: [9, 12]
Generated Node #0,1: 24:[9, 12] Operation: 4*3=12
Moving to Node #0,1
Current State: 24:[9, 12], Operations: ['4*3=12']
Exploring Operation: 9+12=21, Resulting Numbers: [21]
21,24 unequal: No Solution
Moving to Node #0,1
Current State: 24:[9, 12], Operations: ['4*3=12']
Exploring Operation: 12-9=3, Resulting Numbers: [3]
3,24 unequal: No Solution
Moving to Node #0
Current State: 24:[4, 9, 3], Operations: []
Exploring Operation: 4+9=13, Resulting Numbers: [3, 13]
Generated Node #0,2: 24:[3, 13] Operation: 4+9=13
"""


def test_dfs_golden_sum_prefix_and_goal():
    # Sum heuristic, threshold = target 24. Root children by h = mean distance to 24 of the two numbers
    # left: 9*3 -> [4, 27] h 11.5, 4*3 -> [9, 12] h 13.5, then the h-16 ties 4+9, 4+3, 9+3 in
    # generation order. Under [4, 27]: 27-4=23 (h 1) and 4+27=31 (h 7) are kept, 4*27=108 (h 84 > 24)
    # is pruned. Between siblings DFS goes back to the parent and writes its state again.
    p = CountdownProblem([4, 9, 3], 24)
    r = dfs(p, _cfg("dfs"))
    text = _text(p, r)
    assert text.startswith(DFS_24)
    assert text.endswith("Exploring Operation: 4*6=24, Resulting Numbers: [24]\n24,24 equal: Goal Reached\n")
    assert "108" not in text
    assert r.solution_text == ["9-3=6", "4*6=24"] and r.n_expanded == 9
    # Leaf children are never written with an id; ours follow beam's rule (non-leaf siblings before).
    assert r.events[5] == DeadEnd("0,0,0", ((23,), ("9*3=27", "27-4=23")), LEAF)


def test_dfs_unsolvable_exhausts_and_ends_without_closing_line():
    p = CountdownProblem([2, 3, 5], 97)
    r = dfs(p, _cfg("dfs"))
    text = _text(p, r)
    assert not r.solved and r.solution is None
    assert text.endswith("0,97 unequal: No Solution\n") and "Goal Reached" not in text
    assert r.n_expanded == 1 + 9  # root and its 9 children (3 pairs x 3 or 4 operations)
    # leaves: 3 each under [2, 15] [3, 10] [5, 6] [3, 7], 4 (exact division too) under [5, 5] [2, 8]
    # [5, 1] [3, 3] [2, 2]: 12 + 20 = 32; no threshold cut (every h is below 97).
    assert text.count("Exploring Operation") == r.n_generated == 9 + 32


def test_budget_respected():
    p = CountdownProblem([2, 3, 5], 97)
    for algorithm, width in (("dfs", 1), ("beam", 3)):
        search = dfs if algorithm == "dfs" else beam
        r = search(p, _cfg(algorithm, width=width, node_budget=3), random.Random(0))
        assert r.n_expanded == 3 and not r.solved and r.meta["budget_exhausted"]
        assert len({(e.node, e.state) for e in r.events if isinstance(e, Expand)}) == 3  # re-entries aside
        assert r.events[-1] == DeadEnd("", None, GIVE_UP)
        assert SOS.linearize(p, r).endswith("No solution found.")


def test_prune_threshold_override():
    p = CountdownProblem([4, 9, 3], 24)
    pruned = dfs(p, _cfg("dfs", prune_threshold=10.0))
    assert all(e.node == "0" for e in pruned.events)  # every root child has h > 10: nothing kept
    unpruned = dfs(p, _cfg("dfs", prune_threshold=float("inf")))
    assert unpruned.n_generated > dfs(p, _cfg("dfs")).n_generated or unpruned.solution_text


class _Hidden:
    """Countdown without its fast path: the searches must fall back to the Problem protocol."""

    domain = "countdown"
    acyclic = True

    def __init__(self, problem: CountdownProblem):
        self._p = problem
        self.prune_threshold = problem.prune_threshold

    def __getattr__(self, name: str):
        if name in ("scored_children", "make_child"):
            raise AttributeError(name)
        return getattr(self._p, name)


@pytest.mark.parametrize("label", ["dfs-sum", "dfs-mult", "beam1-sum", "beam3-mult", "beam5-sum"])
def test_generic_protocol_path_matches_fast_path(label):
    rng = random.Random(11)
    cfg = next(s for s in sos_mix().strategies if s.label == label)
    search = registry.get_search(cfg.algorithm)
    for _ in range(15):
        nums = [rng.randint(1, 30) for _ in range(4)]
        p = CountdownProblem(nums, rng.randint(10, 60))
        fast = search(p, cfg, random.Random(5))
        slow = search(_Hidden(p), cfg, random.Random(5))
        assert fast.events == slow.events and fast.solution == slow.solution
        assert fast.n_expanded == slow.n_expanded


class _Line:
    """A 1-D walk 0..6 with a goal at 5, both moves legal: cycles everywhere (a plugin-like domain)."""

    domain = "line"

    def initial_state(self):
        return 0

    def actions(self, s):
        return [a for a in ("left", "right") if 0 <= s + (1 if a == "right" else -1) <= 6]

    def apply(self, s, a):
        return s + (1 if a == "right" else -1)

    def is_goal(self, s):
        return s == 5

    def heuristic(self, s, name="default"):
        return abs(5 - s)

    def cost(self, s, a):
        return 1.0

    def render_state(self, s):
        return str(s)

    def render_action(self, s, a):
        return str(self.apply(s, a))


@pytest.mark.parametrize("algorithm", ["dfs", "beam"])
def test_generic_domain_with_cycles(algorithm):
    cfg = _cfg(algorithm, "default", 2, node_budget=50)
    r = registry.get_search(algorithm)(_Line(), cfg, random.Random(0))
    assert r.solved and r.solution == ["right"] * 5 and r.solution_text == ["1", "2", "3", "4", "5"]
    assert r.n_expanded <= 50


def test_sos_mix_weights_match_sos():
    mix = sos_mix()
    total = sum(s.weight for s in mix.strategies)
    dfs_share = sum(s.weight for s in mix.strategies if s.algorithm == "dfs") / total
    assert dfs_share == pytest.approx(0.5)
    assert {s.label for s in mix.strategies} >= {"dfs-sum", "beam3-mult", "beam5-sum"}
