"""Sokoban domain: rules, heuristics, instance JSON, generation and splits, bad input, generic searches."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacot_core import registry
from metacot_core.domains.sokoban.generate import SokobanConfig, SokobanDomain, level_bucket
from metacot_core.domains.sokoban.level import (
    MAX_BOXES,
    MAX_SIDE,
    Level,
    border,
    dead_corner,
    level_from_instance,
    parse_state_tokens,
)
from metacot_core.domains.sokoban.problem import SokobanProblem
from metacot_core.problems.base import Problem, UnsolvableProblemError
from metacot_core.search.astar import astar
from metacot_core.search.bfs import bfs
from metacot_core.search.config import SearchConfig
from metacot_core.search.dfs import dfs
from metacot_core.search.mcts import mcts

DOMAIN = SokobanDomain()
CFG = SokobanConfig()
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def room(boxes, docks, player, extra_walls=()) -> SokobanProblem:
    """A 7x7 room: border walls plus `extra_walls`."""
    return SokobanProblem(Level.build(7, 7, [*border(7, 7), *extra_walls], boxes, docks, player))


def test_moves_pushes_and_blocked_moves():
    # player (2,3); boxes right of it at (3,3) and (4,3); a wall below the player at (2,4)
    p = room([(3, 3), (4, 3)], [(1, 1), (5, 5)], (2, 3), extra_walls=[(2, 4)])
    s = p.initial_state()
    assert p.move(s, "right") is None  # box pushed into another box
    assert p.move(s, "down") is None  # into a wall
    assert p.move(s, "up") == ((2, 2), ((3, 3), (4, 3)))
    assert p.actions(s) == ["up", "left"]
    q = room([(4, 3)], [(1, 1)], (3, 3))
    assert q.move(q.initial_state(), "right") == ((4, 3), ((5, 3),))  # a push: box moves one cell on
    r = room([(5, 3)], [(1, 1)], (4, 3))
    assert r.move(r.initial_state(), "right") is None  # box pushed into the border wall
    with pytest.raises(ValueError, match="action"):
        r.apply(r.initial_state(), "right")


def test_dead_corner_push_is_pruned_but_legal_by_the_plain_rules():
    # box (4,1) pushed right from (3,1) lands on (5,1): walls above (5,0) and right (6,1), not a dock
    p = room([(4, 1)], [(1, 5)], (3, 1))
    s = p.initial_state()
    pushed = p.move(s, "right")
    assert pushed == ((4, 1), ((5, 1),)) and dead_corner(p.level, (5, 1))
    assert "right" not in p.actions(s)
    assert p.is_deadlocked(pushed)
    assert p.is_deadlocked(s)  # (4,1) lies along the top wall, the dock is off row 1: a dead square
    docked = room([(4, 1)], [(5, 1)], (3, 1))
    assert "right" in docked.actions(docked.initial_state())  # a corner dock is no dead corner


def test_heuristics_worked_by_hand():
    # boxes (2,2) and (4,4); docks (2,4) and (5,1)
    p = room([(2, 2), (4, 4)], [(2, 4), (5, 1)], (1, 1))
    s = p.initial_state()
    # default: nearest free dock per box: (2,2)->(2,4) = 2, (4,4)->(2,4) = 2 -> 4
    assert p.heuristic(s) == 4.0 == p.heuristic(s, "searchformer") == p.heuristic(s, "manhattan")
    # box (2,2) on dock (2,4): the other box may only use the free dock (5,1): |4-5| + |4-1| = 4
    docked = ((1, 1), ((2, 4), (4, 4)))
    assert p.heuristic(docked) == 4.0  # Searchformer: open docks only
    assert p.heuristic(docked, "manhattan") == 2.0  # any dock: (4,4)->(2,4) = 2, docked box 0
    assert p.heuristic(s, "zero") == 0.0
    with pytest.raises(ValueError, match="heuristic"):
        p.heuristic(s, "nope")


def test_protocol_rendering_prompt_and_state_words():
    p = room([(2, 2), (4, 4)], [(2, 4), (5, 1)], (1, 1))
    assert isinstance(p, Problem)
    s = p.initial_state()
    assert p.render_state(s) == "1,1/2,2/4,4"
    assert p.render_action(s, "right") == "2,1"
    prompt = p.searchformer_prompt()
    assert prompt.startswith("worker 1 1 box 2 2 box 4 4 dock 5 1 dock 2 4 wall 0 0 wall 1 0")
    assert p.searchformer_prompt().endswith("wall 6 6\n")
    assert p.instance_prompt() == "problem " + p.searchformer_prompt()  # the generic mcts format's
    assert p.state_tokens(s) == ["worker", "1", "1", "box", "2", "2", "box", "4", "4"]
    assert p.parse_state(p.state_tokens(s)) == s == parse_state_tokens(" ".join(p.state_tokens(s)).split())
    bad_words = (["worker", "1"], ["box", "1", "1"], ["worker", "1", "1", "dock", "2", "2"],
                 ["worker", "x", "1"])
    for bad in bad_words:
        with pytest.raises(ValueError, match="state|coordinate"):
            parse_state_tokens(bad)
    rows = p.render_text().splitlines()
    assert rows[1:5] == ["#@   .#", "# $   #", "#     #", "# . $ #"]
    assert p.render_text(((2, 4), ((2, 2), (5, 1)))).splitlines()[1] == "#    *#"


def test_verify_is_the_one_verifier():
    p = SokobanProblem(Level.build(7, 3, border(7, 3), [(2, 1)], [(4, 1)], (1, 1)))
    assert p.verify(["2,1", "3,1"])
    assert not p.verify(["2,1"])  # does not reach the goal
    assert not p.verify(["3,1"])  # not one cell away
    assert not p.verify(["1,0"])  # into a wall
    assert not p.verify(["2,1", "3,1", "4,1"])  # pushes the box off the dock into the wall: blocked
    for junk in (None, [None], ["a,b"], [""], ["1,1,1"], [["2", "1"]], "2,1"):
        assert p.verify(junk) is False


def random_level(data: st.DataObject) -> Level:
    """Any playable level: boxes, docks (possibly under boxes) and player on distinct-enough cells."""
    w, h = data.draw(st.integers(3, 9)), data.draw(st.integers(3, 9))
    order = data.draw(st.permutations([(x, y) for y in range(h) for x in range(w)]))
    n = data.draw(st.integers(1, MAX_BOXES))
    k = data.draw(st.integers(0, n))  # docks order[k:k+n]: n - k of them under a box at the start
    boxes, docks, player, rest = order[:n], order[k:k + n], order[2 * n], order[2 * n + 1:]
    walls = data.draw(st.lists(st.sampled_from(rest), unique=True)) if rest else []
    return Level.build(w, h, walls, boxes, docks, player)


@FAST
@given(st.data())
def test_random_levels_round_trip_through_instance_json(data):
    level = random_level(data)
    text = json.dumps(level.to_instance())
    again = DOMAIN.from_instance(json.loads(text), check_solvable=False)
    assert again.level == level and again.to_instance() == level.to_instance()


@FAST
@given(split=st.sampled_from(["train", "test"]), index=st.integers(0, 10_000))
def test_generated_levels_round_trip_and_are_checked(split, index):
    p = DOMAIN.make(CFG, split, index, seed=3)
    inst = p.to_instance()
    assert set(inst) == {"width", "height", "walls", "boxes", "docks", "player"}
    again = DOMAIN.from_instance(json.loads(json.dumps(inst)))
    assert again.level == p.level and again.optimal_length == p.optimal_length


def test_generation_follows_searchformer_and_stores_the_optimal_length():
    for index in range(8):
        p = DOMAIN.make(CFG, "train", index, seed=0)
        lv = p.level
        assert (lv.width, lv.height, len(lv.boxes), len(lv.docks)) == (7, 7, 2, 2)
        assert set(border(7, 7)) <= lv.walls and len(lv.walls) == 24 + 2
        assert all(2 <= x <= 4 and 2 <= y <= 4 for x, y in lv.boxes)
        assert not any(dead_corner(lv, b) for b in lv.boxes)
        assert not p.is_goal(p.initial_state())
        shortest = bfs(p, SearchConfig(algorithm="bfs", node_budget=10**6))
        assert p.optimal_length == len(shortest.solution)


def test_make_is_deterministic_and_depends_on_its_inputs():
    a = DOMAIN.make(CFG, "train", 5, seed=1).to_instance()
    assert a == DOMAIN.make(CFG, "train", 5, seed=1).to_instance()
    assert a != DOMAIN.make(CFG, "train", 6, seed=1).to_instance()
    assert a != DOMAIN.make(CFG, "train", 5, seed=2).to_instance()


def test_train_and_test_never_share_a_level_and_harder_has_three_boxes():
    train = [DOMAIN.make(CFG, "train", i, seed=0) for i in range(20)]
    test = [DOMAIN.make(CFG, "test", i, seed=0) for i in range(20)]
    assert all(level_bucket(p.level) >= CFG.test_fraction for p in train)
    assert all(level_bucket(p.level) < CFG.test_fraction for p in test)
    assert not {json.dumps(p.to_instance()) for p in train} & {json.dumps(p.to_instance()) for p in test}
    harder = DOMAIN.make(CFG, "harder", 0, seed=0)
    assert len(harder.level.boxes) == 3 and harder.optimal_length is not None
    big = DOMAIN.make(SokobanConfig(harder_boxes=None, harder_width=8, harder_height=8), "harder", 0, seed=0)
    assert (big.level.width, len(big.level.boxes)) == (8, 2)
    with pytest.raises(ValueError, match="split"):
        DOMAIN.make(CFG, "val", 0, seed=0)


def test_unsolvable_levels_requested_explicitly_are_reported():
    corner = room([(1, 1)], [(3, 3)], (3, 1)).to_instance()  # box in the top-left corner
    with pytest.raises(UnsolvableProblemError, match="dead corner"):
        DOMAIN.from_instance(corner)
    along_wall = room([(1, 3)], [(3, 3)], (3, 1)).to_instance()  # box can only slide along x = 1
    with pytest.raises(UnsolvableProblemError, match="no plan exists"):
        DOMAIN.from_instance(along_wall)
    assert DOMAIN.from_instance(along_wall, check_solvable=False).level.boxes == ((1, 3),)
    with pytest.raises(UnsolvableProblemError, match="no solvable"):
        DOMAIN.make(SokobanConfig(solve_budget=1, max_attempts=3), "train", 0, seed=0)


BASE = room([(2, 2)], [(4, 4)], (1, 1)).to_instance()


@pytest.mark.parametrize("change, match", [
    ({"width": 2}, "width must be in 3"),
    ({"height": MAX_SIDE + 1}, "height must be in 3"),
    ({"width": "7"}, "width must be an integer"),
    ({"width": True}, "width must be an integer"),
    ({"docks": [[4, 4], [3, 3]]}, "docks has 2 cells but boxes has 1"),
    ({"boxes": [[0, 3]]}, "boxes cell \\[0, 3\\] is on a wall"),
    ({"docks": [[6, 6]]}, "docks cell \\[6, 6\\] is on a wall"),
    ({"player": [2, 2]}, "player cell \\[2, 2\\] is on a box"),
    ({"player": [9, 1]}, "player cell \\[9, 1\\] is outside"),
    ({"player": [1]}, "player must be an \\[x, y\\] pair"),
    ({"boxes": [[2, 2], [3, 2], [4, 2], [2, 3], [3, 3]]}, "boxes has 5 cells, at most 4"),
    ({"boxes": []}, "boxes must hold 1..4"),
    ({"walls": "none"}, "walls must be a list"),
    ({"walls": [[0, 0]] * 2}, "walls lists a cell twice"),
    ({"boxes": [[2, 2], [2, 2]], "docks": [[4, 4], [3, 3]]}, "boxes lists a cell twice"),
    ({"extra": 1}, "unknown field"),
    ({"player": None}, "player must be"),
])
def test_malformed_instances_get_one_error_naming_the_field(change, match):
    inst = {**BASE, **change}
    with pytest.raises(ValueError, match=match) as err:
        DOMAIN.from_instance(inst)
    assert "\n" not in str(err.value) and not isinstance(err.value, UnsolvableProblemError)


def test_missing_fields_and_non_dicts_are_named():
    with pytest.raises(ValueError, match="missing field\\(s\\) docks"):
        level_from_instance({k: v for k, v in BASE.items() if k != "docks"})
    with pytest.raises(ValueError, match="expected a dict"):
        level_from_instance([1, 2])


def test_wall_list_is_bounded_before_it_is_read():
    huge = {**BASE, "walls": [[0, 0]] * (7 * 7 + 1)}
    with pytest.raises(ValueError, match="walls has 50 cells, at most 49"):
        level_from_instance(huge)


@pytest.mark.parametrize("fields, match", [
    ({"boxes": 5}, "boxes"),
    ({"width": 4}, "width"),
    ({"interior_walls": 30}, "interior_walls"),
    ({"boxes": 2, "width": 5, "height": 5}, "boxes"),
    ({"test_fraction": 1.0}, "test_fraction"),
])
def test_bad_config_names_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        SokobanConfig(**fields)


def test_generic_searches_run_on_sokoban():
    p = DOMAIN.make(CFG, "train", 1, seed=0)
    optimal = astar(p, SearchConfig(algorithm="astar")).solution
    assert len(optimal) == p.optimal_length
    assert len(bfs(p, SearchConfig(algorithm="bfs", node_budget=10**6)).solution) == p.optimal_length
    found = dfs(p, SearchConfig(algorithm="dfs", node_budget=10**5), random.Random(0))
    assert found.solved and p.verify(found.solution_text)
    tree = mcts(p, SearchConfig(algorithm="mcts", node_budget=3000), random.Random(0))
    fmt = registry.get_format("mcts")  # the generic format, with `problem worker ...` as its prompt
    verdict = fmt.replay(p, fmt.prompt(p) + fmt.linearize(p, tree))
    assert verdict.valid and verdict.solved == tree.solved
    assert not fmt.replay(p, fmt.prompt(p) + "expand n0 9,9/2,2/3,3").valid


def test_the_registry_finds_the_package_and_its_hooks():
    domain = registry.get_domain("sokoban")
    assert domain.name == "sokoban" and isinstance(domain, SokobanDomain)
    assert registry.get_format("sokoban-astar").domains == ("sokoban",)
    assert "sokoban-solution" not in registry.names("formats")  # the generic solution format serves it
    assert registry.get_format("astar").domains == ("maze",)  # the generic format is left alone
    assert set(domain.formats) == {"mcts", "solution"}
    p = domain.make(CFG, "train", 0, seed=0)
    assert p.optimal_plans and p.reference_format == "sokoban-astar"
    assert registry.get_format(p.reference_format).prompt(p) == p.searchformer_prompt()
    solution = registry.get_format("solution")
    assert solution.prompt(p) == p.searchformer_prompt()
    text = solution.linearize(p, astar(p, SearchConfig(algorithm="astar")))
    assert solution.replay(p, solution.prompt(p) + text).solved
    assert [type(e).__name__ for e in solution.parse(solution.prompt(p) + text)] == ["Goal"]


@pytest.mark.parametrize("fmt", ["sokoban-astar", "solution", "mcts"])
def test_generate_config_accepts_every_format_sokoban_speaks(fmt):
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig
    from metacot_core.data.generate import generate_shard

    search = ["search.algorithm=mcts", "search.node_budget=3000"] if fmt == "mcts" else []
    cfg = load_config(GenerateConfig, "configs/sokoban/generate-cpu.yaml", [f"format={fmt}", *search])
    rows = list(generate_shard(cfg, "train", 0, 2))
    assert [r["format"] for r in rows] == [fmt, fmt]
    start = "problem worker " if fmt == "mcts" else "worker "  # mcts: the generic instance_prompt
    assert all(r["prompt"].startswith(start) and r["optimal_length"] > 0 for r in rows)
    fmt_obj = registry.get_format(fmt)
    for row in rows:
        p = registry.get_domain("sokoban").from_instance(json.loads(row["instance"]))
        assert fmt_obj.replay(p, row["prompt"] + row["trace"]).solved == row["solved"]
        assert fmt_obj.parse(row["prompt"] + row["trace"])  # the evaluator parses prompt + output


def test_generic_config_refuses_a_format_sokoban_does_not_speak():
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig

    with pytest.raises(ValueError, match="does not support domain 'sokoban'"):
        load_config(GenerateConfig, "configs/sokoban/generate-cpu.yaml", ["format=astar"])
