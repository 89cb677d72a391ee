"""Instance and trace sizes are bounded: each domain's config states its limits (grid side, number count
and magnitude, trace length) and they are checked before any work, with a ValueError naming the field
and the limit. A 100000x100000 maze in `--instance` used to exhaust memory, a 3000x3000 one took 20 s
to judge an empty trace, and a 5,000-digit Countdown number failed with Python's int-conversion error."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from metacot_core.domains.countdown.problem import CountdownConfig, CountdownDomain, CountdownProblem
from metacot_core.domains.maze.problem import MazeConfig, MazeDomain, MazeProblem
from metacot_core.evaluation.judge import judge
from metacot_core.instance_json import loads_instance
from metacot_core.registry import get_format

MAZE = MazeDomain()
COUNTDOWN = CountdownDomain()


def _maze(width: int, height: int, **kw) -> dict:
    return {"width": width, "height": height, "walls": [], "start": [0, 0], "goal": [1, 0], **kw}


@pytest.mark.parametrize("size", [(100_000, 100_000), (3000, 3000), (MazeConfig.MAX_SIDE + 1, 10)])
def test_a_maze_beyond_the_grid_limit_is_refused_at_once(size) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"width: {size[0]} is above the limit of {MazeConfig.MAX_SIDE}"):
        MAZE.from_instance(_maze(*size))
    assert time.perf_counter() - start < 0.5


def test_a_maze_height_and_wall_count_beyond_the_limits_are_refused() -> None:
    with pytest.raises(ValueError, match=rf"height: 5000 is above the limit of {MazeConfig.MAX_SIDE}"):
        MAZE.from_instance(_maze(10, 5000))
    walls = [[5, 5]] * (MazeConfig.MAX_SIDE ** 2 + 1)
    with pytest.raises(ValueError, match=r"walls: .* above the limit of"):
        MAZE.from_instance(_maze(10, 10, walls=walls))


def test_a_maze_at_the_limit_still_loads() -> None:
    side = MazeConfig.MAX_SIDE
    problem = MAZE.from_instance(_maze(side, side, goal=[side - 1, side - 1]))
    assert (problem.width, problem.height) == (side, side)
    assert MazeConfig(width=side, height=side).width == side


def test_the_maze_config_states_the_same_limit() -> None:
    with pytest.raises(ValidationError, match="width"):
        MazeConfig(width=MazeConfig.MAX_SIDE + 1)
    with pytest.raises(ValidationError, match="harder_height"):
        MazeConfig(harder_height=MazeConfig.MAX_SIDE + 1)


def test_a_huge_countdown_number_is_a_clear_error() -> None:
    for field, instance in (("numbers", {"numbers": [10 ** 5000, 2, 3, 4], "target": 24}),
                            ("target", {"numbers": [1, 2, 3, 4], "target": 10 ** 5000})):
        with pytest.raises(ValueError, match=rf"instance.{field}.*above the limit") as err:
            COUNTDOWN.from_instance(instance)
        assert "int_max_str_digits" not in str(err.value)


def test_countdown_count_and_magnitude_limits() -> None:
    cfg = CountdownConfig
    with pytest.raises(ValueError, match=rf"numbers: 50 numbers, above the limit of {cfg.MAX_NUMBERS}"):
        COUNTDOWN.from_instance({"numbers": [1] * 50, "target": 24})
    with pytest.raises(ValueError, match=rf"instance.numbers\[1\]: above the limit of {cfg.MAX_NUMBER}"):
        COUNTDOWN.from_instance({"numbers": [1, cfg.MAX_NUMBER + 1, 3], "target": 24})
    with pytest.raises(ValueError, match=rf"instance.target: above the limit of {cfg.MAX_TARGET}"):
        COUNTDOWN.from_instance({"numbers": [1, 2, 3], "target": cfg.MAX_TARGET + 1})
    at_limit = [cfg.MAX_NUMBER] * cfg.MAX_NUMBERS
    assert COUNTDOWN.from_instance({"numbers": at_limit, "target": cfg.MAX_TARGET}).numbers == tuple(at_limit)
    with pytest.raises(ValidationError, match="max_number"):
        CountdownConfig(max_number=cfg.MAX_NUMBER + 1)
    with pytest.raises(ValidationError, match="num_count"):
        CountdownConfig(num_count=cfg.MAX_NUMBERS + 1)


def test_instance_json_with_a_5000_digit_number_is_one_clear_line() -> None:
    text = '{"numbers": [' + "9" * 5000 + ', 2, 3, 4], "target": 24}'
    with pytest.raises(ValueError, match=r"--instance: a 5000-digit integer") as err:
        loads_instance(text, "--instance")
    assert "int_max_str_digits" not in str(err.value)
    assert loads_instance('{"numbers": [1, 2], "target": 24}') == {"numbers": [1, 2], "target": 24}
    with pytest.raises(ValueError, match="instance: not valid JSON"):
        loads_instance("{numbers")


CASES = [(CountdownProblem([1, 2, 3, 4], 24), name) for name in ("sos", "sos-arith", "mcts", "solution")]
CASES += [(MazeProblem(4, 4, [], (0, 0), (3, 3)), name) for name in ("astar", "mcts", "solution")]


@pytest.mark.parametrize(("problem", "fmt_name"), CASES, ids=[f"{p.domain}-{f}" for p, f in CASES])
def test_a_trace_beyond_the_length_limit_is_refused_before_parsing(problem, fmt_name) -> None:
    limit = problem.max_trace_chars
    text = "9" * (limit + 1)  # one line of digits: parsing it would report a grammar error, not the size
    fmt = get_format(fmt_name)
    for verdict in (fmt.replay(problem, text), judge(problem, fmt, text).verdict):
        assert not verdict.valid and not verdict.solved
        assert f"{limit + 1} characters, above the limit of {limit}" in verdict.detail
