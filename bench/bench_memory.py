"""Peak memory while generating Countdown-4 traces (SoS mix) to Parquet in one process.

Shards are written one after another by the same code the workers run; the resident set size is
printed as the row count passes each checkpoint, so a leak shows as growth with N. The target:
500k traces within 1 GB RSS, flat in N. Ends with the dataset card (it scans only small columns).

    python bench/bench_memory.py --n 20000                       # while the machine is shared
    python bench/bench_memory.py --n 500000 --checkpoints 10000 50000 100000 250000 500000
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import psutil

from metacot_core.config import build_config
from metacot_core.data.card import build_card
from metacot_core.data.config import GenerateConfig
from metacot_core.data.generate import plan_shards, write_shard


def mib(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--checkpoints", type=int, nargs="*", default=None,
                        help="row counts to report RSS at (default: 5 points up to n)")
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--node-budget", type=int, default=10_000)
    args = parser.parse_args()
    checkpoints = sorted(args.checkpoints or {max(1, args.n * k // 5) for k in range(1, 6)})
    proc = psutil.Process()
    tmp = Path(tempfile.mkdtemp(prefix="bench_mem_"))
    try:
        cfg = build_config(GenerateConfig, {
            "domain": "countdown", "search": {"preset": "sos", "node_budget": args.node_budget},
            "format": "sos", "counts": {"train": args.n}, "seed": 4, "shard_size": args.shard_size,
            "workers": 1, "output_dir": str(tmp),
        })
        start_rss = proc.memory_info().rss
        print(f"n={args.n} shard_size={args.shard_size}  RSS at start {mib(start_rss):.0f} MiB")
        rows, next_cp, first_cp_rss = 0, 0, None
        start = time.perf_counter()
        for spec in plan_shards(cfg):
            rows += write_shard(cfg, spec)["n_rows"]
            while next_cp < len(checkpoints) and rows >= checkpoints[next_cp]:
                rss = proc.memory_info().rss
                first_cp_rss = first_cp_rss or rss
                rate = rows / (time.perf_counter() - start)
                print(f"{rows:>9} traces  RSS {mib(rss):7.0f} MiB  ({rss / first_cp_rss:.2f}x first)"
                      f"  {rate:.0f} traces/s")
                next_cp += 1
        card = build_card(tmp, cfg.model_dump(mode="json"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        disk = sum(p.stat().st_size for p in tmp.rglob("*.parquet"))
        print(f"card built: {card['n_rows']} rows, mean trace {card['trace_chars']['mean']:.0f} chars")
        print(f"peak RSS {mib(peak):.0f} MiB (target: 500k traces within 1024 MiB); "
              f"Parquet on disk {mib(disk):.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
