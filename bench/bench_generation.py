"""End-to-end trace generation throughput: draw + search + linearize + write Parquet.

Countdown-4 with the Stream of Search mix, measured four ways in one run, so the ratios compare
like with like on the same machine:
  1. in-process, one core, rows generated but not written      (generation alone)
  2. in-process, one core, written to Parquet (workers=1)       (the baseline)
  3. Ray with 1 worker, then with 2 (or --workers) workers     (Ray started before the clock)
Prints traces/s, the Parquet write overhead (2 vs 1) and the scaling ratio (Ray-N / baseline; the
target is >= 0.9 x N on N free cores), and checks every run gives the same content hash.

    python bench/bench_generation.py --n 2000            # CI-sized
    python bench/bench_generation.py --n 100000          # the real figure (minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import ray

from metacot_core.config import build_config
from metacot_core.data.card import dataset_hash
from metacot_core.data.config import GenerateConfig
from metacot_core.data.generate import generate_shard
from tasks.generate import run_generation
from tasks.ray_runtime import OBJECT_STORE_BYTES


def make_config(n: int, out: Path, workers: int, budget: int, shard_size: int) -> GenerateConfig:
    return build_config(GenerateConfig, {
        "domain": "countdown", "search": {"preset": "sos", "node_budget": budget}, "format": "sos",
        "counts": {"train": n}, "seed": 4, "shard_size": shard_size, "workers": workers,
        "output_dir": str(out),
    })


def time_generation_only(cfg: GenerateConfig, n: int) -> float:
    start = time.perf_counter()
    rows = sum(1 for _ in generate_shard(cfg, "train", 0, n))
    assert rows == n
    return time.perf_counter() - start


def time_run(cfg: GenerateConfig) -> tuple[float, str]:
    start = time.perf_counter()
    run_generation(cfg, progress=False)
    elapsed = time.perf_counter() - start
    return elapsed, dataset_hash(cfg.output_dir)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="traces per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts")
    parser.add_argument("--node-budget", type=int, default=10_000)
    parser.add_argument("--shard-size", type=int, default=0, help="0: n / 16, between 50 and 1000")
    args = parser.parse_args()
    n = args.n
    shard_size = args.shard_size or max(50, min(1000, n // 16))
    tmp = Path(tempfile.mkdtemp(prefix="bench_gen_"))
    try:
        base_cfg = make_config(n, tmp / "inproc", 1, args.node_budget, shard_size)
        # warm imports and the domain's solver caches on other problems, outside the clock
        sum(1 for _ in generate_shard(base_cfg, "val_inputs", 0, min(n, 300)))
        gen_s = time_generation_only(base_cfg, n)
        write_s, base_hash = time_run(base_cfg)
        print(f"n={n} shard_size={shard_size} node_budget={args.node_budget}")
        print(f"generate only, 1 core:          {n / gen_s:9.1f} traces/s  ({gen_s:.2f} s)")
        print(f"generate + Parquet, 1 core:     {n / write_s:9.1f} traces/s  ({write_s:.2f} s)  [baseline]")
        print(f"Parquet write overhead:         {write_s / gen_s - 1:9.1%} of generation time")
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
                 object_store_memory=OBJECT_STORE_BYTES, configure_logging=False)
        try:
            # warm the worker processes (imports) outside the clock
            warm = make_config(max(args.workers) * 2, tmp / "warm", max(args.workers), args.node_budget, 1)
            run_generation(warm, progress=False)
            for workers in args.workers:
                cfg = make_config(n, tmp / f"ray{workers}", workers, args.node_budget, shard_size)
                ray_s, ray_hash = time_run(cfg)
                scaling = write_s / ray_s
                print(f"Ray, {workers} worker(s):             {n / ray_s:9.1f} traces/s  ({ray_s:.2f} s)  "
                      f"scaling {scaling:.2f}x baseline (target >= {0.9 * workers:.1f}x)  "
                      f"same hash: {ray_hash == base_hash}")
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
