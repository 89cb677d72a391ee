"""Teacher-vs-teacher order similarities on Countdown: the evidence for fingerprint.py's thresholds.

Runs Stream of Search's 12-strategy mix on the reference problems at two seeds and prints the
distributions of order similarity (same strategy re-seeded, best match in the mix, leave-one-out,
distinct pairs) and how often `segment` splits a re-seeded teacher run (false "combines").

    PYTHONPATH=. python scripts/fingerprint_thresholds.py --problems 200 --budget 10000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from metacot_core.evaluation.fingerprint import describe, family, segment, teacher_similarities
from metacot_core.evaluation.teacher import run_strategies
from metacot_core.registry import get_domain
from metacot_core.search.config import sos_mix

SOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=SOS_DIR)
    args = parser.parse_args()
    domain, mix = get_domain("countdown"), sos_mix(args.budget)
    lines = []
    for name in ("val_target.jsonl", "val.jsonl", "train.jsonl"):
        lines += (args.data / name).read_text().splitlines()
    pooled: dict[str, list[float]] = {}
    splits = mixed = total = 0
    for line in lines[:args.problems]:
        rec = json.loads(line)
        problem = domain.from_instance({"numbers": rec["nums"], "target": rec["target"]})
        runs = {r.label: r.expanded for r in run_strategies(problem, mix, seed=0)}
        again = {r.label: r.expanded for r in run_strategies(problem, mix, seed=1)}
        for kind, values in teacher_similarities(runs, again).items():
            pooled.setdefault(kind, []).extend(values)
        for seq in again.values():
            if len(seq) >= 6:
                total += 1
                parts = segment(seq, runs)
                splits += len(parts) > 1
                mixed += len({family(p.strategy) for p in parts}) > 1
    for kind, values in pooled.items():
        stats = describe(values)
        print(kind, {k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()})
    print(f"re-seeded teacher runs split into segments: {splits}/{total} = {splits / max(1, total):.3f}; "
          f"into segments of different algorithms: {mixed}/{total} = {mixed / max(1, total):.3f}")


if __name__ == "__main__":
    main()
