"""One GRPO step of metacot against TRL's GRPOTrainer: same model, prompts, group, length, reward, KL.

Both sides start from the same SFT checkpoint (two copies), see the same 16 training prompts per step
(metacot's `problems_for_step` order; TRL's dataset is laid out in that order with shuffling off),
sample G=8 completions per prompt at temperature 1 up to 960 new tokens, score them with the same
verifiable reward (the format's replay + the problem's verifier, completions cut at the format's stop
strings), normalize within groups (std-scaled), and take one AdamW step of the clipped objective with
beta x k3 KL to the frozen SFT model, micro-batches of 8, one update per batch, dropout off,
sequence-mean loss (TRL's loss_type="grpo").

The two alternate step by step: a TRL callback runs one metacot step after each TRL step, so load from
other processes hits both alike. The first step of each is a warm-up and not counted. Prints seconds
per step and sampled tokens per second (tokens sampled / step time) of both, and the ratio
(target: metacot >= 2x faster per step on CPU).

    .venv/bin/pip install -e '.[bench]'        # TRL (bench only, never a runtime dependency)
    .venv/bin/python bench/bench_grpo.py --checkpoint /tmp/grpo-sft/final --data /tmp/grpo-data

TRL samples with `model.generate` and passes it no tokenizer, so it cannot stop at stop strings, only
at EOS ids. So that both sides write the same completions' worth of tokens, every token whose text
contains one of the format's stop strings is given to TRL as an extra EOS id (`generation_kwargs`):
with our word-level vocabulary the token that completes "Goal Reached" holds the whole phrase, so
TRL stops where metacot's stop check does (`--no-stop-tokens` measures TRL stopping at EOS only).
What remains different is how each decodes: TRL keeps finished rows decoding until the batch ends,
prefills every copy of a prompt and uses transformers' DynamicCache.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metacot_core.config import build_config  # noqa: E402
from metacot_core.evaluation.generate import cut_at_stop, default_stop_strings  # noqa: E402
from metacot_core.rl import grpo  # noqa: E402
from metacot_core.rl.common import format_of, load_policy, load_problems  # noqa: E402
from metacot_core.rl.config import RLConfig  # noqa: E402
from metacot_core.rl.rewards import score  # noqa: E402


def bos_only(tokenizer):
    """A copy of our tokenizer whose post-processor adds BOS but not EOS: TRL tokenizes prompts with
    `tokenizer(text=prompts)`, and a trailing EOS (which our training texts end with) would tell the
    model the prompt is finished. metacot's `encode_prompt` drops that EOS the same way."""
    from tokenizers.processors import TemplateProcessing

    tok = copy.deepcopy(tokenizer)
    bos = tok.bos_token
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.bos_token_id)])
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="SFT checkpoint folder")
    ap.add_argument("--data", required=True, help="trace dataset with a train split")
    ap.add_argument("--steps", type=int, default=3, help="timed steps of each (after one warm-up step)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=960)
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (both sides)")
    ap.add_argument("--no-stop-tokens", action="store_true",
                    help="TRL stops at EOS only (else also at tokens that contain a stop string)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    total_steps = args.steps + 1
    cfg = build_config(RLConfig, {
        "method": "grpo", "init_checkpoint": args.checkpoint, "dataset": args.data, "device": "cpu",
        "progress": False, "seed": 0,
        "sampling": {"temperature": 1.0, "max_new_tokens": args.max_new_tokens, "batch_size": args.prompts},
        "train": {"lr": args.lr, "batch_size": args.micro_batch, "max_length": args.max_new_tokens + 64},
        "grpo": {"steps": total_steps, "prompts_per_step": args.prompts, "group_size": args.group,
                 "beta": args.beta, "loss_agg": "sequence", "scale_advantages": True}})
    problems = load_problems(args.data, "train", 256)
    name, fmt = format_of(problems)
    stops = default_stop_strings(name)
    schedule = [grpo.problems_for_step(len(problems), args.prompts, s, cfg.seed) for s in range(total_steps)]

    # metacot: its own policy copy, reference and optimizer
    policy, tok = load_policy(args.checkpoint, "cpu")
    reference = grpo.reference_model(cfg)
    optimizer = grpo.make_optimizer(policy, cfg)
    ours: list[tuple[float, int]] = []

    def metacot_step(step: int) -> None:
        start = time.perf_counter()
        batch = [problems[i] for i in schedule[step]]
        m = grpo.grpo_step(policy, reference, optimizer, tok, batch, cfg, step)
        seconds = time.perf_counter() - start
        tokens = round(m["rollout/trace_tokens_mean"] * args.prompts * args.group)
        ours.append((seconds, tokens))
        print(f"metacot step {step}: {seconds:.1f} s, {tokens} tokens, "
              f"reward {m['rollout/reward_mean']:.3f}, sampling {m['time/sample_s']:.1f} s", flush=True)

    # TRL: the same checkpoint, prompts in metacot's order, the same reward
    trl_tok = bos_only(tok)
    trl_model, _ = load_policy(args.checkpoint, "cpu")
    order = [i for idx in schedule for i in idx]
    dataset = Dataset.from_dict({"prompt": [problems[i].prompt for i in order], "problem_index": order})
    trl_tokens: list[int] = []

    pad = trl_tok.pad_token_id

    def reward(prompts, completions, completion_ids, problem_index, **_):
        # TRL's completion mask ends at the tokenizer's EOS only: a row that stopped at a stop token
        # comes with generate's padding behind it, which is not sampled text
        lengths = [sum(1 for t in ids if t != pad) for ids in completion_ids]
        cut = [cut_at_stop(c, stops) for c in completions]
        eos = trl_tok.eos_token_id
        truncated = [hit is None and eos not in ids and n >= args.max_new_tokens
                     for (_, hit), ids, n in zip(cut, completion_ids, lengths, strict=True)]
        trl_tokens.append(sum(lengths))
        scored = score([problems[i].problem for i in problem_index], [t for t, _ in cut], fmt, cfg.reward,
                       n_tokens=lengths, truncated=truncated, prompts=prompts)
        return [s.reward for s in scored]

    theirs: list[tuple[float, int]] = []

    class Alternate(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.start = time.perf_counter()
            trl_tokens.clear()

        def on_step_end(self, a, state, control, **kw):
            seconds = time.perf_counter() - self.start
            theirs.append((seconds, sum(trl_tokens)))
            print(f"TRL step {state.global_step - 1}: {seconds:.1f} s, {sum(trl_tokens)} tokens", flush=True)
            metacot_step(state.global_step - 1)

    generation_kwargs = None
    if not args.no_stop_tokens:
        texts = trl_tok.convert_ids_to_tokens(list(range(len(trl_tok))))
        stop_ids = [i for i, t in enumerate(texts) if t and any(s in t for s in stops)]
        generation_kwargs = {"eos_token_id": [trl_tok.eos_token_id, *stop_ids]}
        print(f"TRL stops at EOS and at {len(stop_ids)} tokens holding a stop string", flush=True)

    with tempfile.TemporaryDirectory() as out:
        targs = GRPOConfig(
            output_dir=out, use_cpu=True, report_to="none", save_strategy="no", logging_steps=10**6,
            max_steps=total_steps, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
            weight_decay=0.0, max_grad_norm=1.0, seed=0,
            per_device_train_batch_size=args.micro_batch,
            gradient_accumulation_steps=args.prompts * args.group // args.micro_batch,
            num_generations=args.group, max_completion_length=args.max_new_tokens,
            temperature=1.0, top_p=1.0, top_k=0, beta=args.beta, num_iterations=1, epsilon=0.2,
            loss_type="grpo", scale_rewards="group", shuffle_dataset=False, disable_dropout=True,
            dataloader_num_workers=0, generation_kwargs=generation_kwargs,
        )
        trainer = GRPOTrainer(model=trl_model, reward_funcs=reward, args=targs, train_dataset=dataset,
                              processing_class=trl_tok, callbacks=[Alternate()])
        trainer.train()

    print(f"\n{args.prompts} prompts x {args.group} samples, <= {args.max_new_tokens} new tokens, "
          f"beta {args.beta}, micro-batch {args.micro_batch}, torch threads {torch.get_num_threads()}; "
          f"median of {args.steps} steps after 1 warm-up")
    rows = {}
    for label, runs in (("TRL GRPOTrainer", theirs[1:]), ("metacot grpo_step", ours[1:])):
        sec = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] / r[0] for r in runs)
        tokens = statistics.median(r[1] for r in runs)
        rows[label] = (sec, rate)
        print(f"{label:<18}: {sec:7.1f} s/step  {rate:7.0f} sampled tokens/s  ({tokens:.0f} tokens/step; "
              f"all: {', '.join(f'{r[0]:.1f}' for r in runs)})")
    (t_sec, t_rate), (m_sec, m_rate) = rows.values()
    paired = sorted(t[0] / m[0] for t, m in zip(theirs[1:], ours[1:], strict=True))
    print(f"ratio TRL / metacot seconds per step: {t_sec / m_sec:.2f}x (median of paired steps "
          f"{paired[len(paired) // 2]:.2f}x); tokens/s metacot / TRL: {m_rate / t_rate:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
