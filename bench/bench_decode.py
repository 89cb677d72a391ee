"""Decoding throughput: batched KV-cache decoding (batch 64) against one problem at a time, same model.

Both runs call `metacot_core.evaluation.generate.generate` with the same random GPT-2 (~1.6M parameters,
word-level trace tokenizer) on Stream of Search Countdown prompts; only `batch_size` differs. Stop
strings are off so every completion runs to max_new_tokens (a random model rarely emits EOS), and the
rate counts the tokens actually generated. The two runs alternate `--repeats` times; prints the best
tokens/s of each and their ratio (target >= 5x).

    .venv/bin/python bench/bench_decode.py                      # CPU (or the GPU when there is one)
    .venv/bin/python bench/bench_decode.py --device cpu --threads 2 --max-new-tokens 64

On a shared 2-core machine, torch's default of 2 threads can make small matmuls 50x slower (OpenMP
threads spinning against other processes), which flatters the batched run; 1 thread is the default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from metacot_core.evaluation.config import GenerationSettings
from metacot_core.evaluation.generate import generate
from metacot_core.models import ModelConfig, build_model, count_parameters
from metacot_core.tokenizer import build_tokenizer

SOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos" / "train.jsonl"


def prompts_and_texts(n: int) -> tuple[list[str], list[str]]:
    """The first line of n SoS traces (the prompt), and the traces (tokenizer vocabulary)."""
    with open(SOS) as fh:
        traces = [json.loads(line)["search_path"] for line in fh]
    prompts = [t.split("\n", 1)[0] + "\n" for t in traces]
    while len(prompts) < n:
        prompts += prompts
    return prompts[:n], traces


def rate(model, tok, prompts: list[str], batch: int, max_new: int, device: str) -> tuple[float, int, float]:
    settings = GenerationSettings(max_new_tokens=max_new, batch_size=batch, stop_strings=[], device=device)
    start = time.perf_counter()
    out = generate(model, tok, prompts, settings, progress=False)
    seconds = time.perf_counter() - start
    tokens = sum(c.n_tokens for c in out)
    return tokens / seconds, tokens, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=64, help="prompts decoded in the batched run")
    ap.add_argument("--baseline-prompts", type=int, default=16, help="prompts decoded one at a time")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--d-model", type=int, default=192)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best is reported")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default; 1: no OpenMP thrashing when busy)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    prompts, texts = prompts_and_texts(args.prompts)
    tok = build_tokenizer(texts)
    cfg = ModelConfig(preset="1m", n_layer=args.layers, d_model=args.d_model, n_head=4, context=1024)
    model = build_model(cfg, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, seed=0)
    model.to(device).eval()
    print(f"model: GPT-2 {args.layers}x{args.d_model}, {count_parameters(model) / 1e6:.2f}M parameters, "
          f"vocab {len(tok)}, device {device}, torch threads {torch.get_num_threads()}")

    rate(model, tok, prompts[:4], 4, 8, device)  # warm-up (allocations, kernels)
    singles, batches = [], []
    for _ in range(args.repeats):  # alternate the two, so load from other processes hits both alike
        singles.append(rate(model, tok, prompts[: args.baseline_prompts], 1, args.max_new_tokens, device))
        batches.append(rate(model, tok, prompts, args.batch, args.max_new_tokens, device))
    for name, runs in (("one at a time", singles), (f"batch {args.batch}", batches)):
        best = max(runs)
        print(f"{name:<14}: best {best[0]:9.1f} tokens/s  ({best[1]} tokens in {best[2]:.2f} s); "
              f"all runs: {', '.join(f'{r[0]:.1f}' for r in runs)}")
    ratio = max(batches)[0] / max(singles)[0]
    ratios = sorted(b[0] / s[0] for s, b in zip(singles, batches, strict=True))
    print(f"ratio batched / one-at-a-time: {ratio:.1f}x best-to-best, {ratios[len(ratios) // 2]:.1f}x median "
          "of paired runs (target >= 5x)")


if __name__ == "__main__":
    main()
