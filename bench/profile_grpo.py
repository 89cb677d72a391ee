"""Where one GRPO step's time goes: sampling, judging, old + reference log-probs, the update.

Runs real GRPO steps (metacot_core.rl.grpo.grpo_step) of an SFT checkpoint on a trace dataset and times
each phase by wrapping the functions the step calls (the sampler, `judge_completions`,
`sequence_logprobs` without grad = old/reference log-probs, `update`). With `--before TREE` (a folder
holding an older `metacot_core`, e.g. `git archive <commit> metacot_core | tar -x -C /tmp/before`) the
same steps run on that code too, in subprocesses that alternate with this tree's, so load from other
processes hits both alike; prints one breakdown per tree (median over the repeats).

    .venv/bin/python bench/profile_grpo.py --checkpoint /tmp/grpo-sft/final --data /tmp/grpo-data
    .venv/bin/python bench/profile_grpo.py --checkpoint ... --data ... --before /tmp/metacot-before

Defaults are the issue's run: 16 prompts x 8 samples, up to 960 new tokens, beta 0.04, one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ["sample", "judge", "old+ref logprobs", "update", "other"]


def child(args: argparse.Namespace) -> None:
    """One tree: run `--steps` GRPO steps, print one JSON line of phase seconds per step."""
    import torch

    from metacot_core.config import build_config
    from metacot_core.rl import grpo
    from metacot_core.rl.common import InProcessSampler, load_policy, load_problems
    from metacot_core.rl.config import RLConfig

    torch.set_num_threads(args.threads)
    data = {"method": "grpo", "init_checkpoint": args.checkpoint, "dataset": args.data, "device": "cpu",
            "seed": 0, "sampling": {"temperature": 1.0, "max_new_tokens": args.max_new_tokens,
                                    "batch_size": args.sample_batch},
            "train": {"lr": 1e-5, "batch_size": args.micro_batch, "max_length": args.max_new_tokens + 64},
            "grpo": {"steps": args.steps, "prompts_per_step": args.prompts, "group_size": args.group,
                     "beta": args.beta}}
    if "progress" in RLConfig.model_fields:
        data["progress"] = False
    cfg = build_config(RLConfig, data)
    policy, tok = load_policy(args.checkpoint, "cpu")
    reference = grpo.reference_model(cfg)
    problems = load_problems(args.data, "train", 256)
    optimizer = grpo.make_optimizer(policy, cfg)
    times: dict[str, float] = {}

    def timed(name, fn, when=None):
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                if when is None or when():
                    times[name] = times.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    inner = InProcessSampler(policy, tok)
    tokens = []

    class Sampler:
        def sample(self, *a, **kw):
            out = timed("sample", inner.sample)(*a, **kw)
            tokens.extend(c.n_tokens for c in out)
            return out

        def sync(self, state):
            inner.sync(state)

    grpo.judge_completions = timed("judge", grpo.judge_completions)
    grpo.sequence_logprobs = timed("nograd", grpo.sequence_logprobs, lambda: not torch.is_grad_enabled())
    grpo.update = timed("update_total", grpo.update)
    warm = cfg.sampling.model_copy(update={"max_new_tokens": 8})  # first-call costs out of the timings
    inner.sample([problems[0].prompt], 2, warm, problems[0].format, seed=0)
    with torch.no_grad():
        policy(input_ids=torch.ones((2, 16), dtype=torch.long))
    for step in range(args.steps):
        times.clear()
        tokens.clear()
        idx = grpo.problems_for_step(len(problems), args.prompts, step, cfg.seed)
        start = time.perf_counter()
        metrics = grpo.grpo_step(policy, reference, optimizer, tok, [problems[i] for i in idx], cfg, step,
                                 Sampler())
        total = time.perf_counter() - start
        row = {"sample": times.get("sample", 0.0), "judge": times.get("judge", 0.0),
               "old+ref logprobs": times.get("nograd", 0.0),
               "update": times.get("update_total", 0.0) - times.get("nograd", 0.0)}
        row["other"] = total - sum(row.values())
        row.update(total=total, tokens=sum(tokens), reward=metrics.get("rollout/reward_mean", 0.0))
        print("ROW " + json.dumps(row), flush=True)


def run_tree(tree: Path, args: argparse.Namespace) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, __file__, "--child", *sys.argv[1:]]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{tree}: child failed\n{out.stderr[-3000:]}")
    return [json.loads(line[4:]) for line in out.stdout.splitlines() if line.startswith("ROW ")]


def report(name: str, rows: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in rows) for k in [*PHASES, "total", "tokens", "reward"]}
    print(f"\n{name}: median of {len(rows)} steps, {med['total']:.1f} s/step, {med['tokens']:.0f} tokens "
          f"sampled, {med['tokens'] / max(med['sample'], 1e-9):.0f} sampled tokens/s, "
          f"reward {med['reward']:.3f}")
    for k in PHASES:
        print(f"  {k:<18} {med[k]:8.2f} s  {100 * med[k] / med['total']:5.1f}%")
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="SFT checkpoint folder")
    ap.add_argument("--data", required=True, help="trace dataset with a train split")
    ap.add_argument("--before", default=None, help="folder holding an older metacot_core to compare")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=960)
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--sample-batch", type=int, default=16, help="sampling.batch_size")
    ap.add_argument("--micro-batch", type=int, default=8, help="train.batch_size")
    ap.add_argument("--steps", type=int, default=1, help="GRPO steps per run")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each tree")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    trees = {"after (this tree)": ROOT}
    if args.before:
        trees = {"before": Path(args.before), **trees}
    rows: dict[str, list[dict]] = {k: [] for k in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            rows[name] += run_tree(tree, args)
    print(f"{args.prompts} prompts x {args.group} samples, <= {args.max_new_tokens} new tokens, "
          f"beta {args.beta}, torch threads {args.threads}")
    meds = {name: report(name, r) for name, r in rows.items()}
    if args.before:
        b, a = meds["before"], meds["after (this tree)"]
        print(f"\nstep time before / after: {b['total'] / a['total']:.2f}x; sampled tokens/s after / before: "
              f"{(a['tokens'] / a['sample']) / (b['tokens'] / b['sample']):.2f}x")


if __name__ == "__main__":
    main()
