"""Speedrun: wall time from an empty folder to a Countdown-3 search model that solves >= 45% strict.

    .venv/bin/python bench/speedrun.py                          # the fast recipe; today's from its record
    .venv/bin/python bench/speedrun.py --baseline run           # today's recipe too, in this script
    .venv/bin/python bench/speedrun.py --levers --steps 1500    # each lever alone, same step budget

A recipe is generate -> SFT -> evaluate, run in this process through the core's stage bodies
(metacot_core.pipeline.stages, no Prefect, Ray or MLflow), each timed. The data is RESULTS 1c's:
Countdown-3 `sos-arith` traces of 20,000 training problems (seed 4), and the 512 held-out problems of
1c (the first 256 of val_target and of val_inputs), evaluated greedily with the strict `sos-arith`
judge (every `Calc:` column, state and move right, and a real goal). `--check-problems N` evaluates
only the first N of each split (an intermediate check; the headline always uses the 512). The fast
recipe's traces come from one of the mix's 12 strategies (DFS with the sum heuristic) on the same
problems: a data lever, so its row says so.

Today's recipe is 1c's `search-arith-6000-steps` arm (1m GPT-2, AdamW at 3e-3, 6,000 steps of 8 x 512
packed tokens). Its record (RECORDED below, with its command) is used when `--baseline recorded`:
on 2 shared cores one run of it takes ~16 min of SFT alone, so running both is opt-in.

`--levers` trains each lever alone on top of today's recipe at one shorter step budget (the budget
the fast recipe is aimed at) and prints, per lever: seconds per step, wall time, validation loss and
strict solve rate on the check problems. The machine is shared and noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

GENERATE = ["problem.num_count=3", "counts.train=20000", "counts.val_target=256", "counts.val_inputs=256",
            "counts.harder=0", "shard_size=500", "workers=1", "format=sos-arith"]
TODAY_SFT = ["train.max_steps=6000", "train.eval_every=500", "train.checkpoint_every=500",
             "ray.enabled=false", "tracking.log_model=false"]
EVAL = ["splits=[val_target, val_inputs]", "generation.max_new_tokens=960", "generation.batch_size=64",
        "teacher.enabled=false", "alignment=false", "expansions=false", "pass_k=[1]", "progress=false"]

# RESULTS.md 1c, search-arith-6000-steps on the 512 held-out problems (2026-11-27, this 2-core machine):
#   metacot experiment configs/countdown/sos-vs-solution-cpu.yaml --only search-arith-6000-steps
#   then metacot eval on data_out/cd3-heldout256-sos-arith (max_problems=256, both splits)
RECORDED = {"recipe": "today (recorded)", "generate_s": None, "sft_s": 16 * 60.0, "eval_s": None,
            "solved": 238, "n": 512, "source": "RESULTS.md 1c (SFT ~16 min; generation and evaluation "
            "not timed separately there)"}


@dataclass
class Recipe:
    """What a recipe changes: SFT overrides on top of today's (data and evaluation are shared)."""

    name: str
    sft: list[str] = field(default_factory=list)
    note: str = ""
    generate: list[str] = field(default_factory=list)  # data levers (the held-out problems stay the same)


TODAY = Recipe("today", [], "RESULTS 1c: 1m GPT-2, AdamW 3e-3, 6,000 x 4,096 tokens")
DFS_SUM = "search={algorithm: dfs, heuristic: sum, node_budget: 10000}"
FAST = Recipe("fast", ["train.max_steps=1500", "model.arch=llama", "train.optimizer=muon"],
              "the levers that helped (BENCHMARKS.md, speedrun): RoPE + SwiGLU, Muon, and one teacher "
              "strategy (DFS, sum heuristic) instead of SoS's 12", [DFS_SUM])

# Each lever alone, on top of today's recipe at the lever budget (--steps).
LEVERS: dict[str, list[str]] = {
    "baseline": [],
    "lr 6e-3": ["train.lr=6.0e-3"],
    "lr 1e-2": ["train.lr=1.0e-2"],
    "cosine to 0": ["train.min_lr_ratio=0.0"],
    "llama (RoPE, SwiGLU)": ["model.arch=llama"],
    "batch 2,048 tokens": ["train.micro_batch_size=4"],
    "4 layers x 96": ["model.n_layer=4", "model.d_model=96"],
    "muon": ["train.optimizer=muon"],
}


def stage_configs(out: Path, sft_overrides: list[str], gen_overrides: list[str] = ()) -> tuple[Any, Any]:
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig
    from metacot_core.training.config import SFTConfig

    gen = load_config(GenerateConfig, str(ROOT / "configs/countdown/generate-cpu.yaml"),
                      [*GENERATE, *gen_overrides, f"output_dir={out / 'data'}"])
    sft = load_config(SFTConfig, str(ROOT / "configs/countdown/sft-cpu.yaml"),
                      [*TODAY_SFT, *sft_overrides, f"data.path={gen.output_dir}",
                       f"output_dir={out / 'sft'}"])
    return gen, sft


def eval_config(out: Path, data: str, checkpoint: str, problems: int) -> Any:
    from metacot_core.config import load_config
    from metacot_core.evaluation.config import EvalConfig

    return load_config(EvalConfig, str(ROOT / "configs/countdown/eval-cpu.yaml"),
                       [*EVAL, f"max_problems={problems}", f"checkpoint={checkpoint}", f"dataset={data}",
                        f"output_dir={out / f'eval-{problems}'}"])


def run_recipe(name: str, out: Path, sft_overrides: list[str], problems: int,
               dataset: str | None = None, gen_overrides: list[str] = ()) -> dict[str, Any]:
    """generate (unless `dataset` is given) -> SFT -> greedy evaluation on `problems` per split, timed."""
    from metacot_core.evaluation.metrics import pooled_solves
    from metacot_core.pipeline.stages import run_evaluate, run_generate, run_sft
    from metacot_core.pipeline.tracker import NullTracker

    gen, sft = stage_configs(out, sft_overrides, gen_overrides)
    row: dict[str, Any] = {"recipe": name}
    began = time.perf_counter()
    if dataset is None:
        run_generate(gen, NullTracker())
        dataset = gen.output_dir
        row["generate_s"] = time.perf_counter() - began
    else:
        sft = sft.model_copy(update={"data": sft.data.model_copy(update={"path": dataset})})
        row["generate_s"] = 0.0
    t = time.perf_counter()
    summary = run_sft(sft, NullTracker())
    row["sft_s"] = time.perf_counter() - t
    row["steps"] = summary.get("final_step") or sft.train.max_steps
    row["val_loss"] = summary.get("val_loss")
    t = time.perf_counter()
    report = run_evaluate(eval_config(out, dataset, summary["final_dir"], problems), NullTracker())
    row["eval_s"] = time.perf_counter() - t
    pooled = pooled_solves(report)  # strict solves and problems over the evaluated splits
    row["solved"], row["n"] = pooled["solved"], pooled["n"]
    row["total_s"] = time.perf_counter() - began
    return row


def interval(solved: int, n: int) -> str:
    from metacot_core.evaluation.metrics import wilson_interval

    low, high = wilson_interval(solved, n)
    return f"{solved / n:.3f} [{low:.3f}, {high:.3f}]"


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def print_rows(rows: list[dict[str, Any]], reference: dict[str, Any] | None) -> None:
    print("| recipe | generate min | SFT min | eval min | total min | steps | val loss | strict solve "
          "[95% CI] | >= 45% | SFT time vs reference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        total = r.get("total_s")
        ratio = (f"{r['sft_s'] / reference['sft_s']:.2f}x" if reference and reference.get("sft_s") else "-")
        loss = "-" if r.get("val_loss") is None else f"{r['val_loss']:.3f}"
        print(f"| {r['recipe']} | {minutes(r.get('generate_s'))} | {minutes(r['sft_s'])} | "
              f"{minutes(r.get('eval_s'))} | {minutes(total)} | {r.get('steps', '-')} | {loss} | "
              f"{interval(r['solved'], r['n'])} | {'yes' if r['solved'] >= 0.45 * r['n'] else 'no'} | "
              f"{ratio} |")


def levers(out: Path, steps: int, problems: int, names: list[str] | None, extra: list[str],
           gen_overrides: list[str]) -> None:
    """Each lever alone at `steps` steps on one shared dataset; one row each, printed as it finishes."""
    from metacot_core.pipeline.stages import run_generate
    from metacot_core.pipeline.tracker import NullTracker

    gen, _ = stage_configs(out / "shared", [], gen_overrides)
    run_generate(gen, NullTracker())
    rows = []
    for name, overrides in LEVERS.items():
        if names and name not in names:
            continue
        slug = "".join(c if c.isalnum() else "-" for c in name)
        row = run_recipe(name, out / slug, [f"train.max_steps={steps}", *extra, *overrides], problems,
                         dataset=gen.output_dir)
        row["s_per_step"] = row["sft_s"] / steps
        rows.append(row)
        print(json.dumps(row), flush=True)
    print_rows(rows, rows[0] if rows and rows[0]["recipe"] == "baseline" else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "speedrun", help="an empty folder")
    ap.add_argument("--baseline", choices=["recorded", "run", "skip"], default="recorded")
    ap.add_argument("--check-problems", type=int, default=256, help="problems per split (256: the 512)")
    ap.add_argument("--levers", action="store_true", help="the lever table instead of the recipes")
    ap.add_argument("--only", action="append", help="with --levers: run just these levers (repeatable)")
    ap.add_argument("--steps", type=int, default=1500, help="with --levers: SFT steps per lever")
    ap.add_argument("--fast", nargs="*", default=None, help="the fast recipe's SFT overrides (key=value)")
    ap.add_argument("--sft", nargs="*", default=[], help="SFT overrides added to every run (e.g. "
                    "train.threads=1 on a shared machine)")
    ap.add_argument("--generate", nargs="*", default=[], help="generation overrides added to every run "
                    "(the data lever, e.g. 'search={algorithm: dfs, heuristic: mult}' or 'search={preset: "
                    "sos}' for the fast recipe on the SoS mix); the held-out problems stay the same")
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out}: not empty (the speedrun starts from an empty folder)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.levers:
        levers(args.out, args.steps, args.check_problems, args.only, args.sft, args.generate)
        return
    fast = FAST if args.fast is None else Recipe("fast", args.fast, generate=FAST.generate)
    rows = [run_recipe(fast.name, args.out / "fast", [*args.sft, *fast.sft], args.check_problems,
                       gen_overrides=[*fast.generate, *args.generate])]
    print(json.dumps(rows[0]), flush=True)
    reference = None
    if args.baseline == "run":
        reference = run_recipe(TODAY.name, args.out / "today", [*args.sft, *TODAY.sft], args.check_problems,
                               gen_overrides=args.generate)
        print(json.dumps(reference), flush=True)
    elif args.baseline == "recorded":
        reference = dict(RECORDED)
        reference["total_s"] = None
    if reference:
        rows.append(reference)
    print(f"fast recipe: {' '.join(fast.sft)} | data: {' '.join(fast.generate) or 'the SoS mix'}")
    print_rows(rows, reference)
    if reference and reference.get("sft_s"):
        known = reference["sft_s"] + (reference.get("generate_s") or 0) + (reference.get("eval_s") or 0)
        print(f"wall time against today's recipe: {rows[0]['total_s'] / known:.2f}x "
              f"({'' if reference.get('eval_s') else 'the record: SFT only; '}target <= 0.25x)")


if __name__ == "__main__":
    main()
