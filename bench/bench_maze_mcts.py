"""Throughput of maze A* traces and MCTS traces, as ratios against baselines run in the same process.

What it measures (single process, wall clock, best of `--repeat` runs):
- A* on 30x30 mazes: generation, search, linearize (and the three together) in traces/s; baselines are
  BFS on the same mazes and a plain A* (heapq over cells, no events, no Problem protocol), so the
  ratio shows what the generic, event-emitting implementation costs.
- MCTS on Countdown-4 and on 10x10 mazes: search + linearize traces/s, against BFS search + event
  count on the same problems; replay (the validator) traces/s too.

Run: .venv/bin/python bench/bench_maze_mcts.py [--n 200] [--repeat 3]
Numbers depend on the machine and on whatever else runs on it; compare the ratios, not the rates.
"""

from __future__ import annotations

import argparse
import heapq
import random
import time
from collections.abc import Callable
from typing import Any

from metacot_core.domains.countdown.problem import CountdownConfig, CountdownDomain
from metacot_core.domains.maze.problem import MazeConfig, MazeDomain, MazeProblem
from metacot_core.search.astar import astar
from metacot_core.search.bfs import bfs
from metacot_core.search.config import SearchConfig
from metacot_core.search.mcts import mcts
from metacot_core.traces.astar import AstarFormat
from metacot_core.traces.mcts import MctsFormat


def best_rate(n: int, repeat: int, fn: Callable[[], Any]) -> float:
    """Items per second of `fn` (which handles `n` items), best of `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def plain_astar(p: MazeProblem) -> int:
    """Reference A* on a grid: same rules and tie order, no events, no protocol. Returns the plan length."""
    gx, gy = p.goal
    free = p._free
    w, h = p.width, p.height
    start = p.start
    g_of = {start: 0}
    closed = set()
    heap = [(abs(start[0] - gx) + abs(start[1] - gy), start[0] + start[1] * 100_000, 0, start)]
    while heap:
        _, _, g, (x, y) = heapq.heappop(heap)
        if (x, y) in closed:
            continue
        closed.add((x, y))
        if (x, y) == (gx, gy):
            return g
        for nx, ny in ((x, y + 1), (x, y - 1), (x - 1, y), (x + 1, y)):
            if 0 <= nx < w and 0 <= ny < h and free[nx][ny] and g + 1 < g_of.get((nx, ny), 1 << 30):
                g_of[(nx, ny)] = ng = g + 1
                heapq.heappush(heap, (ng + abs(nx - gx) + abs(ny - gy), nx + ny * 100_000, ng, (nx, ny)))
    return -1


def row(name: str, rate: float, base: float | None = None, base_name: str = "") -> None:
    ratio = f"  ({rate / base:5.2f}x {base_name})" if base else ""
    print(f"  {name:<44} {rate:9.1f} /s{ratio}")


def bench_astar(n: int, repeat: int) -> None:
    print(f"A* on 30x30 mazes, {n} traces")
    domain, mcfg = MazeDomain(), MazeConfig(width=30, height=30)
    acfg = SearchConfig(algorithm="astar", tie_breaking="random")
    fmt = AstarFormat()
    problems = [domain.make(mcfg, "train", i, seed=0) for i in range(n)]
    results = [astar(p, acfg, random.Random(i)) for i, p in enumerate(problems)]
    assert all(plain_astar(p) == len(r.solution) for p, r in zip(problems, results, strict=True))

    def full() -> None:
        for i in range(n):
            p = domain.make(mcfg, "train", i, seed=0)
            fmt.linearize(p, astar(p, acfg, random.Random(i)))

    gen = best_rate(n, repeat, lambda: [domain.make(mcfg, "train", i, seed=0) for i in range(n)])
    search = best_rate(n, repeat, lambda: [astar(p, acfg, random.Random(i)) for i, p in enumerate(problems)])
    lin = best_rate(n, repeat, lambda: [fmt.linearize(p, r) for p, r in zip(problems, results, strict=True)])
    texts = [fmt.linearize(p, r) for p, r in zip(problems, results, strict=True)]
    rep = best_rate(n, repeat, lambda: [fmt.replay(p, t) for p, t in zip(problems, texts, strict=True)])
    plain = best_rate(n, repeat, lambda: [plain_astar(p) for p in problems])
    bfs_rate = best_rate(n, repeat, lambda: [bfs(p, SearchConfig(algorithm="bfs")) for p in problems])
    total = best_rate(n, repeat, full)
    row("generation + search + linearize", total)
    row("generation (make)", gen)
    row("A* search (events)", search, plain, "plain A*")
    row("A* search (events)", search, bfs_rate, "BFS search")
    row("linearize", lin)
    row("replay (validator)", rep, search, "A* search")
    mean_closes = sum(r.n_expanded for r in results) / n
    mean_tokens = sum(len(t.split()) for t in texts) / n
    print(f"  mean closes {mean_closes:.0f}, mean trace tokens {mean_tokens:.0f}")


def bench_mcts(label: str, problems: list, mcfg: SearchConfig, repeat: int) -> None:
    n = len(problems)
    print(f"MCTS on {label}, {n} traces (budget {mcfg.node_budget})")
    fmt = MctsFormat()
    bcfg = SearchConfig(algorithm="bfs", node_budget=mcfg.node_budget)

    def traces() -> list[str]:
        return [fmt.linearize(p, mcts(p, mcfg, random.Random(i))) for i, p in enumerate(problems)]

    texts = traces()
    results = [mcts(p, mcfg, random.Random(i)) for i, p in enumerate(problems)]
    total = best_rate(n, repeat, traces)
    search = best_rate(n, repeat, lambda: [mcts(p, mcfg, random.Random(i)) for i, p in enumerate(problems)])
    bfs_rate = best_rate(n, repeat, lambda: [bfs(p, bcfg) for p in problems])
    rep = best_rate(n, repeat, lambda: [fmt.replay(p, t) for p, t in zip(problems, texts, strict=True)])
    row("MCTS search + linearize", total, bfs_rate, "BFS search")
    row("MCTS search", search, bfs_rate, "BFS search")
    row("replay (validator)", rep, search, "MCTS search")
    solved = sum(r.solved for r in results)
    bfs_solved = sum(bfs(p, bcfg).solved for p in problems)
    mean_exp = sum(r.n_expanded for r in results) / n
    mean_chars = sum(len(t) for t in texts) / n
    print(f"  solved {solved}/{n} (BFS same budget {bfs_solved}/{n}), mean expansions {mean_exp:.0f}, "
          f"mean trace chars {mean_chars:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="problems per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()
    bench_astar(args.n, args.repeat)
    countdown = [CountdownDomain().make(CountdownConfig(), "train", i, seed=0) for i in range(args.n)]
    bench_mcts("Countdown-4", countdown, SearchConfig(algorithm="mcts", node_budget=1000), args.repeat)
    mazes = [MazeDomain().make(MazeConfig(), "train", i, seed=0) for i in range(args.n)]
    bench_mcts("10x10 mazes", mazes, SearchConfig(algorithm="mcts", node_budget=1000), args.repeat)


if __name__ == "__main__":
    main()
