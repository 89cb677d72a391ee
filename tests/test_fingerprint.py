"""The algorithm fingerprint on hand-worked trees: order similarity tells BFS from DFS where SoS's set
alignment cannot, a BFS-like output is closest to BFS, a DFS-then-BFS trace is cut at the switch, and
garbage gets a verdict. Plus the expansion order of real Countdown traces (searched and parsed back)."""

from __future__ import annotations

import random

import pytest

from metacot_core.evaluation.fingerprint import (
    distinct,
    family,
    fingerprint,
    key_text,
    lcs_length,
    order_similarity,
    quantile,
    segment,
    set_alignment,
    teacher_similarities,
)
from metacot_core.evaluation.teacher import check_tree, run_strategies
from metacot_core.registry import get_domain, get_format, get_search
from metacot_core.search.config import SearchConfig, StrategyMix


def tree_orders(depth: int, branching: int) -> tuple[list[str], list[str]]:
    """DFS and BFS expansion orders of a complete tree; nodes named by their path ("r", "r0", "r01")."""
    def kids(node: str) -> list[str]:
        return [node + str(i) for i in range(branching)] if len(node) - 1 < depth else []

    def dfs(node: str) -> list[str]:
        return [node] + [x for k in kids(node) for x in dfs(k)]

    bfs, queue = [], ["r"]
    while queue:
        node = queue.pop(0)
        bfs.append(node)
        queue += kids(node)
    return dfs("r"), bfs


def test_lcs_of_distinct_sequences_by_hand() -> None:
    assert lcs_length("abcde", "aebdc") == 3  # a, b, c (or a, b, d)
    assert lcs_length("abc", "xyz") == 0
    assert lcs_length("", "abc") == 0
    assert lcs_length("abca", "acb") == 2  # the repeated "a" is dropped: a, b or a, c
    assert distinct("abca") == ["a", "b", "c"]
    assert order_similarity("abcd", "abcd") == 1.0
    assert order_similarity("abcd", "dcba") == 0.25
    assert order_similarity("ab", "abcd") == 0.5  # normalized by the larger, like SoS's alignment
    assert order_similarity("", "") == 0.0


def test_bfs_and_dfs_over_the_same_states() -> None:
    # Binary tree of depth 2: r, r0, r1, r00, r01, r10, r11.
    dfs, bfs = tree_orders(2, 2)
    assert dfs == ["r", "r0", "r00", "r01", "r1", "r10", "r11"]
    assert bfs == ["r", "r0", "r1", "r00", "r01", "r10", "r11"]
    assert set_alignment(dfs, bfs) == 1.0  # SoS's alignment: the same states, indistinguishable
    # LCS: r, r0, r00, r01, r10, r11 (r1 is out of place) = 6 of 7.
    assert order_similarity(dfs, bfs) == pytest.approx(6 / 7)
    # An output that runs BFS but swaps two siblings on the last level is closest to BFS.
    output = ["r", "r0", "r1", "r01", "r00", "r10", "r11"]
    fp = fingerprint(output, {"dfs": dfs, "bfs": bfs})
    assert fp.closest == "bfs" and fp.similarity == pytest.approx(6 / 7)
    assert fp.similarities["dfs"] == pytest.approx(5 / 7)  # r, r0, r01, r10, r11
    assert fp.set_alignment == 1.0 and not fp.combines


def test_dfs_then_bfs_is_segmented_at_the_switch() -> None:
    # Ternary tree of depth 3 (40 nodes): DFS through the subtree of r0 (13 nodes after the root:
    # 14 states), then BFS order over everything left (26 states).
    dfs, bfs = tree_orders(3, 3)
    assert len(dfs) == 40 and order_similarity(dfs, bfs) == pytest.approx(0.75)
    switch = dfs.index("r1")
    mixed = dfs[:switch] + [x for x in bfs if x not in dfs[:switch]]
    assert switch == 14
    parts = segment(mixed, {"dfs": dfs, "bfs": bfs})
    assert [(p.start, p.end, p.strategy) for p in parts] == [(0, 14, "dfs"), (14, 40, "bfs")]
    assert [p.matched for p in parts] == [14, 26]  # every state explained by its segment's strategy
    fp = fingerprint(mixed, {"dfs": dfs, "bfs": bfs})
    assert fp.combines and fp.combines_algorithms
    # Either pure order stays one segment.
    assert [p.strategy for p in segment(dfs, {"dfs": dfs, "bfs": bfs})] == ["dfs"]
    assert [p.strategy for p in segment(bfs, {"dfs": dfs, "bfs": bfs})] == ["bfs"]


def test_novel_search_and_garbage_verdicts() -> None:
    dfs, bfs = tree_orders(2, 2)
    reversed_leaves = ["r", "r11", "r10", "r01", "r00", "r1", "r0"]  # legal states, in no strategy's order
    fp = fingerprint(reversed_leaves, {"dfs": dfs, "bfs": bfs})
    assert fp.novel and fp.similarity < 0.75
    for garbage in ([], ["not a state"]):
        fp = fingerprint(garbage, {"dfs": dfs, "bfs": bfs})
        assert fp.similarity == 0.0
    empty = fingerprint([], {"dfs": dfs})
    assert empty.closest is None and not empty.novel and not empty.combines  # "no search"
    assert fingerprint(["r"], {}).closest is None  # no teacher ran: still a verdict
    assert segment([], {"dfs": dfs}) == []


def test_truncated_output_is_compared_with_teacher_prefixes() -> None:
    dfs, bfs = tree_orders(3, 3)
    cut = dfs[:10]
    assert fingerprint(cut, {"dfs": dfs, "bfs": bfs}).novel  # 10 / 40 against the whole DFS
    fp = fingerprint(cut, {"dfs": dfs, "bfs": bfs}, truncated=True)
    assert fp.closest == "dfs" and fp.similarity == 1.0 and not fp.novel


def test_teacher_similarities_and_helpers() -> None:
    dfs, bfs = tree_orders(2, 2)
    sims = teacher_similarities({"dfs": dfs, "bfs": bfs}, reseeded={"dfs": dfs, "bfs": bfs[::-1]})
    assert sims["distinct"] == [pytest.approx(6 / 7)]
    assert sims["leave_one_out"] == [pytest.approx(6 / 7)] * 2
    assert sims["same_strategy"] == [1.0, pytest.approx(1 / 7)]
    assert sims["best_of_mix"] == [1.0, pytest.approx(2 / 7)]  # reversed BFS vs DFS: r01 before r1
    assert quantile([0.0, 1.0], 0.05) == pytest.approx(0.05)
    assert family("beam3-mult") == "beam" and family("dfs-sum") == "dfs" and family("astar") == "astar"
    assert key_text((3, (1, 2))) == "[3,[1,2]]" and key_text(frozenset({2, 1})) == "[1,2]"


def test_countdown_expansion_order_survives_linearize_and_parse() -> None:
    """A teacher DFS written as SoS text and parsed back has the expansion order the search had, and
    a re-entered parent (SoS's DFS returns to it between children) is not a new expansion."""
    problem = get_domain("countdown").from_instance({"numbers": [3, 34, 40, 14], "target": 57})
    fmt = get_format("sos")
    cfg = SearchConfig(algorithm="dfs", heuristic="sum")
    result = get_search("dfs")(problem, cfg, random.Random(0))
    searched = check_tree(problem, result.events).expanded
    parsed = check_tree(problem, fmt.parse(fmt.prompt(problem) + fmt.linearize(problem, result))).expanded
    assert parsed == searched and len(searched) == len(set(searched)) > 1
    beam = SearchConfig(algorithm="beam", beam_width=3)
    runs = run_strategies(problem, StrategyMix(strategies=[cfg, beam]))
    assert runs[0].expanded == tuple(searched) and runs[0].algorithm == "dfs"
    fp = fingerprint(parsed, {r.label: r.expanded for r in runs})
    assert fp.closest == "dfs-sum" and fp.similarity == 1.0
