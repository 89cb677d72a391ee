"""Held-out solve rate after RL (STaR, GRPO) against the SFT checkpoint they start from, same problems.

    python bench/rl_vs_sft.py --sft runs/sft-countdown-cpu/final --dataset data_out/countdown-cpu \
        --split val_inputs --n 64 --methods star grpo --out runs/bench-rl \
        --star star.iterations=2 star.problems_per_iteration=32 --grpo grpo.steps=10

Every model is decoded greedily on the same first-n problems of the split and judged by the same
verifier. Printed per model: solve rate with its 95% Wilson interval, the paired difference to SFT
with a 95% paired-bootstrap interval and the discordant pair counts (solved by one model only; a
McNemar test uses them), validity, and mean states explored / nodes generated (all traces and solved
ones). RL settings come from configs/countdown/rl-{star,grpo}-cpu.yaml with the given overrides;
nothing is tracked in MLflow, results go to <out>/results.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metacot_core.config import load_config  # noqa: E402
from metacot_core.evaluation.metrics import wilson_interval  # noqa: E402
from metacot_core.rl.common import format_of, judge_completions, load_policy, load_problems, rollout  # noqa: E402
from metacot_core.rl.config import RLConfig  # noqa: E402
from metacot_core.rl.rewards import Scored  # noqa: E402
from metacot_core.rl.runner import run  # noqa: E402

CONFIGS = {"star": ROOT / "configs/countdown/rl-star-cpu.yaml",
           "grpo": ROOT / "configs/countdown/rl-grpo-cpu.yaml"}


def judge_greedy(checkpoint: str, problems: list, cfg: RLConfig) -> list[Scored]:
    """Greedy completions of `checkpoint` on `problems`, judged (one Scored per problem)."""
    model, tok = load_policy(checkpoint, cfg.device)
    name, fmt = format_of(problems)
    completions = rollout(model, tok, [p.prompt for p in problems], 1, cfg.sampling, name, seed=0,
                          temperature=0.0)
    return judge_completions(problems, completions, fmt, cfg.reward)


def paired_bootstrap(base: list[bool], new: list[bool], reps: int = 10_000,
                     seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of mean(new) - mean(base) resampling problems (pairs kept together)."""
    rng = random.Random(seed)
    n = len(base)
    diffs = sorted(
        sum(new[i] - base[i] for i in (rng.randrange(n) for _ in range(n))) / n for _ in range(reps)
    )
    return diffs[int(0.025 * reps)], diffs[int(0.975 * reps) - 1]


def summary(scored: list[Scored], base: list[Scored] | None = None) -> dict[str, Any]:
    n = len(scored)
    solved = [s.solved for s in scored]
    k = sum(solved)
    low, high = wilson_interval(k, n)
    wins = [s for s in scored if s.solved]
    out: dict[str, Any] = {
        "n": n, "solved": k, "solve_rate": k / n, "ci95": [low, high],
        "valid_rate": sum(s.valid for s in scored) / n,
        "states_explored_mean": sum(s.states_explored for s in scored) / n,
        "states_explored_solved_mean": sum(s.states_explored for s in wins) / max(1, len(wins)),
        "nodes_generated_solved_mean": sum(s.nodes_generated for s in wins) / max(1, len(wins)),
        "tokens_mean": sum(s.n_tokens for s in scored) / n,
    }
    if base is not None:
        b = [s.solved for s in base]
        out["delta_vs_sft"] = out["solve_rate"] - sum(b) / n
        out["delta_ci95"] = list(paired_bootstrap(b, solved))
        out["only_rl_solves"] = sum(1 for x, y in zip(b, solved, strict=True) if y and not x)
        out["only_sft_solves"] = sum(1 for x, y in zip(b, solved, strict=True) if x and not y)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft", required=True, help="SFT checkpoint folder (model + tokenizer)")
    ap.add_argument("--dataset", required=True, help="trace dataset folder with train and held-out splits")
    ap.add_argument("--split", default="val_inputs", help="held-out split to compare on")
    ap.add_argument("--n", type=int, default=64, help="held-out problems (the first n of the split)")
    ap.add_argument("--methods", nargs="+", default=["star", "grpo"], choices=["star", "grpo"])
    ap.add_argument("--out", default="runs/bench-rl", help="RL checkpoints and results.json")
    ap.add_argument("--star", nargs="*", default=[], help="overrides for the STaR config")
    ap.add_argument("--grpo", nargs="*", default=[], help="overrides for the GRPO config")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="decoding limit of the comparison")
    args = ap.parse_args()

    out = Path(args.out)
    common = [f"init_checkpoint={args.sft}", f"dataset={args.dataset}", "eval.at_start=false", "eval.every=0",
              f"eval.splits=[{args.split}]", "eval.n_problems=1"]
    if args.max_new_tokens:
        common.append(f"sampling.max_new_tokens={args.max_new_tokens}")
    base_cfg = load_config(RLConfig, CONFIGS["star"], common + [f"output_dir={out / 'unused'}"])
    problems = load_problems(args.dataset, args.split, args.n)
    began = time.perf_counter()
    sft = judge_greedy(args.sft, problems, base_cfg)
    results: dict[str, Any] = {"split": args.split, "sft_checkpoint": args.sft, "sft": summary(sft),
                               "seconds": {"sft_eval": time.perf_counter() - began}}
    for method in args.methods:
        overrides = common + [f"output_dir={out / method}"] + (args.star if method == "star" else args.grpo)
        cfg = load_config(RLConfig, CONFIGS[method], overrides)
        began = time.perf_counter()
        ran = run(cfg)
        results["seconds"][f"{method}_train"] = time.perf_counter() - began
        results[method] = summary(judge_greedy(ran["checkpoint"], problems, cfg), base=sft)
        results[method]["checkpoint"] = ran["checkpoint"]
        results[method]["overrides"] = overrides
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"{'model':6} {'solve rate':>10} {'95% CI':>15} {'delta':>7} {'delta 95% CI':>17} "
          f"{'valid':>6} {'states':>7} {'states|solved':>13}")
    for name in ["sft", *args.methods]:
        r = results[name]
        delta = f"{r['delta_vs_sft']:+.3f}" if "delta_vs_sft" in r else ""
        dci = f"[{r['delta_ci95'][0]:+.3f}, {r['delta_ci95'][1]:+.3f}]" if "delta_ci95" in r else ""
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        print(f"{name:6} {r['solve_rate']:10.3f} {ci} {delta:>7} {dci:>17} {r['valid_rate']:6.3f} "
              f"{r['states_explored_mean']:7.1f} {r['states_explored_solved_mean']:13.1f}")
    print(f"n={len(problems)} problems of {args.split}; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
