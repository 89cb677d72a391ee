"""Throughput of Sokoban level generation, A* search, trace writing and replay, with ratios against BFS.

What it measures (single process, wall clock, best of `--repeat` runs), on the same levels:
- generation (`SokobanDomain.make`: draw, dead-corner check, A* solvability proof) in levels/s;
- A* search (events, deterministic tie-break) and BFS search to the same goal, in searches/s, and their
  ratio; closes per search for both (A* should close far fewer states than BFS expands);
- linearize (A* events -> Searchformer text) and replay (the validator) in traces/s; replay as a ratio
  of A* search.

Run: PYTHONPATH=. .venv/bin/python bench/bench_sokoban.py [--n 100] [--repeat 3] [--boxes 2]
Numbers depend on the machine and on whatever else runs on it; compare the ratios, not the rates.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from metacot_core.domains.sokoban.astar_trace import SokobanAstarFormat
from metacot_core.domains.sokoban.generate import SokobanConfig, SokobanDomain
from metacot_core.search.astar import astar
from metacot_core.search.bfs import bfs
from metacot_core.search.config import SearchConfig


def best_rate(n: int, repeat: int, fn: Callable[[], Any]) -> float:
    """Items per second of `fn` (which handles `n` items), best of `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def row(name: str, rate: float, base: float | None = None, base_name: str = "") -> None:
    ratio = f"  ({rate / base:6.2f}x {base_name})" if base else ""
    print(f"  {name:<36} {rate:9.1f} /s{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="levels per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--boxes", type=int, default=2, help="boxes per 7x7 level (Searchformer: 2)")
    args = parser.parse_args()
    n, repeat = args.n, args.repeat
    domain, cfg = SokobanDomain(), SokobanConfig(boxes=args.boxes, harder_boxes=None)
    acfg = SearchConfig(algorithm="astar", node_budget=10**6)
    bcfg = SearchConfig(algorithm="bfs", node_budget=10**7)
    fmt = SokobanAstarFormat()
    print(f"Sokoban 7x7, {args.boxes} boxes, 2 interior walls: {n} levels, best of {repeat}")
    problems = [domain.make(cfg, "train", i, seed=0) for i in range(n)]
    results = [astar(p, acfg) for p in problems]
    bfs_results = [bfs(p, bcfg) for p in problems]
    assert all(len(a.solution) == len(b.solution) == p.optimal_length
               for p, a, b in zip(problems, results, bfs_results, strict=True))
    texts = [fmt.linearize(p, r) for p, r in zip(problems, results, strict=True)]
    assert all(fmt.replay(p, t).solved for p, t in zip(problems, texts, strict=True))

    gen = best_rate(n, repeat, lambda: [domain.make(cfg, "train", i, seed=0) for i in range(n)])
    search = best_rate(n, repeat, lambda: [astar(p, acfg) for p in problems])
    base = best_rate(n, repeat, lambda: [bfs(p, bcfg) for p in problems])
    lin = best_rate(n, repeat, lambda: [fmt.linearize(p, r) for p, r in zip(problems, results, strict=True)])
    rep = best_rate(n, repeat, lambda: [fmt.replay(p, t) for p, t in zip(problems, texts, strict=True)])
    row("generation (make, A*-checked)", gen, base, "BFS search")
    row("A* search (events)", search, base, "BFS search")
    row("BFS search (events)", base)
    row("linearize (A* trace text)", lin, search, "A* search")
    row("replay (validator)", rep, search, "A* search")
    closes = sum(r.n_expanded for r in results) / n
    expands = sum(r.n_expanded for r in bfs_results) / n
    tokens = sum(len(t.split()) for t in texts) / n
    plan = sum(p.optimal_length for p in problems) / n
    print(f"  mean A* closes {closes:.0f} vs BFS expansions {expands:.0f} ({expands / closes:.1f}x); "
          f"mean trace tokens {tokens:.0f}, max {max(len(t.split()) for t in texts)}; mean plan {plan:.1f}")


if __name__ == "__main__":
    main()
