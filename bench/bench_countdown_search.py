"""Countdown trace generation speed: draw a solvable problem, search with SoS's mix, write the sos trace.

Prints traces/s (CPU time of this process, and wall time) for draw-only, search-only, linearize-only and
end to end, next to a naive baseline written here the way SoS's reference generator works (list
states, a full recursive search per random draw, traces built by string concatenation), run in the
same process on the same machine, and next to the reference's measured 172 traces/s (README of
shared/data/sos). The baseline's traces are checked equal to ours first, so the ratio compares
like with like.

    .venv/bin/python bench/bench_countdown_search.py            # 3000 problems
    .venv/bin/python bench/bench_countdown_search.py --n 500    # quicker
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any

from metacot_core import registry
from metacot_core.data.config import GenerateConfig
from metacot_core.data.generate import index_rng, plan_shards, write_shard
from metacot_core.domains.countdown.problem import CountdownConfig, CountdownDomain, CountdownProblem
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.search.config import SearchConfig, sos_mix

REFERENCE_RATE = 172.0  # traces/s of SoS's generator on this machine class (shared/data/sos/README.md)


# --- the naive baseline (SoS's approach, written from its description) ---------------------------

def _pairs(a: int, b: int) -> list[list[Any]]:
    out = [[a + b, f"{a}+{b}={a + b}"], [a * b, f"{a}*{b}={a * b}"]]
    lo, hi = min(a, b), max(a, b)
    out.append([hi - lo, f"{hi}-{lo}={hi - lo}"])
    if lo != 0 and hi % lo == 0:
        out.append([hi // lo, f"{hi}/{lo}={hi // lo}"])
    return out


def _naive_solve(target: int, nums: list[int], ops: list[str]) -> list[str] | None:
    if len(nums) == 1:
        return ops if nums[0] == target else None
    for i, j in itertools.combinations(range(len(nums)), 2):
        rest = [nums[k] for k in range(len(nums)) if k != i and k != j]
        for result, op in _pairs(nums[i], nums[j]):
            found = _naive_solve(target, rest + [result], ops + [op])
            if found is not None:
                return found
    return None


def _h_sum(nums: list[int], target: int) -> float:
    if len(nums) == 1:
        return abs(nums[0] - target)
    return sum(abs(n - target) for n in nums) / len(nums)


def _h_mult(nums: list[int], target: int) -> int:
    factors = [f for f in range(2, target + 1) if target % f == 0]
    return sum(min(abs(n - f) for f in factors) for n in nums)


class _N:
    def __init__(self, idx: Any, parent: Any, nums: list[int], ops: list[str], h: float):
        self.idx, self.parent, self.nums, self.ops, self.h = idx, parent, nums, ops, h

    def __lt__(self, other: _N) -> bool:
        return self.h < other.h


def _naive_children(node: _N, target: int, hf: Callable[[list[int], int], float]) -> list[tuple[float, _N]]:
    out = []
    for i, j in itertools.combinations(range(len(node.nums)), 2):
        for result, op in _pairs(node.nums[i], node.nums[j]):
            nums = [node.nums[k] for k in range(len(node.nums)) if k != i and k != j] + [result]
            out.append((hf(nums, target), _N(0, node, nums, node.ops + [op], hf(nums, target))))
    return out


def _naive_dfs(target: int, node: _N, hf: Callable[[list[int], int], float], trace: str) -> str:
    trace += f"Current State: {target}:{node.nums}, Operations: {node.ops}\n"
    kids = sorted([c for c in _naive_children(node, target, hf) if c[0] <= target], key=lambda c: c[0])
    for g, (_, child) in enumerate(kids):
        child.idx = f"{node.idx},{g}"
        trace += f"Exploring Operation: {child.ops[-1]}, Resulting Numbers: {child.nums}\n"
        if len(child.nums) == 1 and child.nums[0] == target:
            return trace + f"{child.nums[0]},{target} equal: Goal Reached\n"
        if len(child.nums) == 1:
            trace += f"{child.nums[0]},{target} unequal: No Solution\n"
        else:
            trace += f"Generated Node #{child.idx}: {target}:{child.nums} Operation: {child.ops[-1]}\n"
            trace += f"Moving to Node #{child.idx}\n"
            trace = _naive_dfs(target, child, hf, trace)
            if "Goal Reached" in trace:
                return trace
        if g < len(kids) - 1:
            trace += f"Moving to Node #{node.idx}\n"
            trace += f"Current State: {target}:{node.nums}, Operations: {node.ops}\n"
    return trace


def _naive_beam(target: int, nums: list[int], width: int, hf: Callable[[list[int], int], float],
                rng: random.Random) -> str:
    trace = ""
    heap = [(hf(nums, target), _N("0", None, nums, [], hf(nums, target)))]
    while heap:
        current = [heapq.heappop(heap) for _ in range(min(width, len(heap)))]
        for k, (_, node) in enumerate(current):
            trace += f"Current State: {target}:{node.nums}, Operations: {node.ops}\n"
            kids = sorted(_naive_children(node, target, hf), key=lambda c: c[0])[:width]
            rng.shuffle(kids)
            non_leaf = 0
            for _, child in kids:
                child.idx = f"{node.idx},{non_leaf}"
                trace += f"Exploring Operation: {child.ops[-1]}, Resulting Numbers: {child.nums}\n"
                if len(child.nums) == 1 and child.nums[0] == target:
                    return trace + f"{child.nums[0]},{target} equal: Goal Reached\n"
                if len(child.nums) == 1:
                    trace += f"{child.nums[0]},{target} unequal: No Solution\n"
                else:
                    trace += (f"Generated Node #{child.idx}: {target}:{child.nums} "
                              f"Operation: {child.ops[-1]}\n")
                    non_leaf += 1
            for item in sorted(kids, key=lambda c: c[0]):
                heapq.heappush(heap, item)
            if k < len(current) - 1:
                trace += f"Moving to Node #{current[k + 1][1].idx}\n"
        if heap:
            trace += f"Moving to Node #{heap[0][1].idx}\n"
    return trace + "No solution found."


def naive_trace(rng: random.Random, targets: list[int], cfg: SearchConfig) -> str:
    """One SoS-style trace the naive way: target first, random numbers until the full search solves."""
    target = rng.choice(targets)
    while True:
        nums = [rng.randint(1, 99) for _ in range(4)]
        if _naive_solve(target, nums, []) is not None:
            break
    return naive_search(target, nums, cfg, rng)


def naive_search(target: int, nums: list[int], cfg: SearchConfig, rng: random.Random) -> str:
    hf = _h_sum if cfg.heuristic == "sum" else _h_mult
    if cfg.algorithm == "dfs":
        return _naive_dfs(target, _N("0", None, nums, [], hf(nums, target)), hf, "")
    return _naive_beam(target, nums, cfg.beam_width, hf, rng)


# --- ours ------------------------------------------------------------------------------------------

def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def without_search(n: int) -> tuple[float, float]:
    """(CPU s of the whole generator writing one Parquet shard of n traces, CPU s of its searches).

    The difference is what the generator spends on everything but the search: drawing, linearizing,
    building rows and writing Parquet, i.e. the rate it could reach if the search took no time.
    """
    with tempfile.TemporaryDirectory(prefix="bench-cd-") as tmp:
        cfg = GenerateConfig(counts={"train": n}, shard_size=n, output_dir=tmp, workers=1)
        problem_cfg, mix, domain = cfg.problem_config(), cfg.strategy_mix(), registry.get_domain(cfg.domain)
        _, total, _ = _timed(lambda: write_shard(cfg, plan_shards(cfg)[0]))

    def draw_only() -> None:
        for i in range(n):
            domain.make(problem_cfg, "train", i, cfg.seed)
            mix.sample(index_rng(cfg.seed, "train", i))

    def draw_and_search() -> None:
        for i in range(n):
            p = domain.make(problem_cfg, "train", i, cfg.seed)
            rng = index_rng(cfg.seed, "train", i)
            s = mix.sample(rng)
            registry.get_search(s.algorithm)(p, s, rng)

    _, draw, _ = _timed(draw_only)
    _, both, _ = _timed(draw_and_search)
    return total, both - draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="problems per measurement")
    parser.add_argument("--baseline-n", type=int, default=300, help="problems for the naive baseline")
    args = parser.parse_args()
    n = args.n
    domain, cfg, fmt, mix = CountdownDomain(), CountdownConfig(), SosFormat(), sos_mix()
    searches = {name: registry.get_search(name) for name in ("dfs", "beam")}
    domain.make(cfg, "train", 0, 99)  # build the solvability tables outside the timings

    # faithfulness: the naive baseline writes the same traces as our searches
    check = random.Random(5)
    for i in range(40):
        p = domain.make(cfg, "train", i, 1)
        s = mix.sample(check)
        ours = fmt.prompt(p) + fmt.linearize(p, searches[s.algorithm](p, s, random.Random(i)))
        assert ours == naive_search(p.target, list(p.numbers), s, random.Random(i)), (p, s.label)

    problems, draw_cpu, draw_wall = _timed(lambda: [domain.make(cfg, "train", i, 0) for i in range(n)])
    rng = random.Random(0)
    strategies = [mix.sample(rng) for _ in range(n)]

    def search_only() -> None:  # results dropped as a generator would (keeping them all costs GC time)
        for p, s in zip(problems, strategies, strict=True):
            searches[s.algorithm](p, s, rng)

    _, search_cpu, search_wall = _timed(search_only)
    rng = random.Random(0)
    results = [searches[s.algorithm](p, s, rng) for p, s in zip(problems, strategies, strict=True)]
    texts, lin_cpu, lin_wall = _timed(
        lambda: [fmt.prompt(p) + fmt.linearize(p, r) for p, r in zip(problems, results, strict=True)])

    def end_to_end() -> int:
        e2e_rng = random.Random(1)
        chars = 0
        for i in range(n):
            p: CountdownProblem = domain.make(cfg, "train", i, 1)
            s = mix.sample(e2e_rng)
            chars += len(fmt.prompt(p) + fmt.linearize(p, searches[s.algorithm](p, s, e2e_rng)))
        return chars

    chars, e2e_cpu, e2e_wall = _timed(end_to_end)

    base_rng = random.Random(2)
    targets = list(CountdownDomain().targets_for(cfg, "train", 0))
    base_strats = [mix.sample(base_rng) for _ in range(args.baseline_n)]
    _, base_cpu, base_wall = _timed(lambda: [naive_trace(base_rng, targets, s) for s in base_strats])
    base_rate = args.baseline_n / base_cpu

    print(f"Countdown-4, SoS mix (DFS 1/2, beam b=1..5), {n} problems; rates in traces/s (CPU | wall)")
    for label, cpu, wall in (("draw only", draw_cpu, draw_wall), ("search only", search_cpu, search_wall),
                             ("linearize only", lin_cpu, lin_wall), ("end to end", e2e_cpu, e2e_wall)):
        print(f"  {label:<15} {n / cpu:>9,.0f} | {n / wall:>9,.0f}")
    print(f"  naive baseline  {base_rate:>9,.0f} | {args.baseline_n / base_wall:>9,.0f}   "
          f"({args.baseline_n} problems, same traces)")
    e2e = n / e2e_cpu
    print(f"end to end vs in-script naive baseline: {e2e / base_rate:.1f}x (CPU time)")
    print(f"end to end vs reference's measured {REFERENCE_RATE:.0f}/s: {e2e / REFERENCE_RATE:.1f}x "
          f"(target 20x = 3,500/s)")
    print(f"mean trace {chars / n:,.0f} chars; solved {sum(r.solved for r in results) / n:.1%}")
    total, searching = without_search(n)
    print(f"generator writing Parquet (draw, search, linearize, rows, Parquet): {n / total:,.0f} traces/s "
          f"({n / total / REFERENCE_RATE:.1f}x the reference); its searches take {searching / total:.0%}")
    print(f"  everything but the search: {n / (total - searching):,.0f} traces/s = "
          f"{n / (total - searching) / REFERENCE_RATE:.1f}x the reference, the ceiling with a search "
          "that took no time")


if __name__ == "__main__":
    main()
