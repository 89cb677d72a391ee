"""Greedy decoding of a checkpoint with our decode loop and with transformers' generate: same outputs?

The evaluator decodes greedily with the default engine (evaluation/decode.py); this checks, on a real
checkpoint and held-out prompts, that every completion (text, tokens, truncation, stop) equals what
`model.generate` gives (engine="hf"), and times both (one run each).

    .venv/bin/python bench/compare_engines.py --checkpoint /tmp/grpo-sft/final --data /tmp/grpo-data
"""

from __future__ import annotations

import argparse
import time

import torch

from metacot_core.evaluation.config import GenerationSettings
from metacot_core.evaluation.generate import default_stop_strings, generate, load_checkpoint
from metacot_core.rl.common import format_of, load_problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val_target")
    ap.add_argument("--n", type=int, default=32, help="problems")
    ap.add_argument("--max-new-tokens", type=int, default=960)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_checkpoint(args.checkpoint, "cpu")
    problems = load_problems(args.data, args.split, args.n)
    stops = default_stop_strings(format_of(problems)[0])
    out = {}
    for engine in ("loop", "hf"):
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch,
                                      engine=engine)
        start = time.perf_counter()
        out[engine] = generate(model, tok, [p.prompt for p in problems], settings, stop_strings=stops,
                               progress=False)
        tokens = sum(c.n_tokens for c in out[engine])
        print(f"{engine:<4}: {time.perf_counter() - start:6.1f} s, {tokens} tokens")
    same = sum((a.text, a.n_tokens, a.truncated, a.stop) == (b.text, b.n_tokens, b.truncated, b.stop)
               for a, b in zip(out["loop"], out["hf"], strict=True))
    print(f"greedy completions identical: {same}/{len(problems)}")


if __name__ == "__main__":
    main()
