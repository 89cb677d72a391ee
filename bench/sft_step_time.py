"""Seconds per SFT step of the speedrun's model variants, side by side: GPT-2 or Llama block, AdamW or
Muon, Muon's Newton-Schulz in float32 (metacot's on the CPU) or in bfloat16 (torch's own).

    .venv/bin/python bench/sft_step_time.py [--threads N]

The 1m preset's shape (2 x 128), vocabulary 1,838 (the sos-arith tokenizer's size), one micro-batch of
8 x 512 random tokens, forward + backward + optimizer step; the variants alternate, 3 rounds of 5
steps, best and median printed. What it answers: what a lever that helps per step costs per second.
First, the Newton-Schulz iterations alone on that model's hidden matrices, in both dtypes.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from metacot_core.models import ModelConfig, build_model
from metacot_core.training.optimizers import make_optimizer, newton_schulz, split_params

VOCAB = 1838
VARIANTS = [("gpt2", "adamw"), ("gpt2", "muon"), ("llama", "adamw"), ("llama", "muon"),
            ("llama", "muon-bf16")]
NS_DTYPES = {"muon": torch.float32, "muon-bf16": torch.bfloat16}


def setup(arch: str, optimizer: str) -> tuple[Any, torch.optim.Optimizer]:
    model = build_model(ModelConfig(preset="1m", arch=arch), VOCAB, 0, 1, 2)
    model.train()
    name = "muon" if optimizer in NS_DTYPES else optimizer
    return model, make_optimizer(model, name, 3e-3, (0.9, 0.95), 0.1, ns_dtype=NS_DTYPES.get(optimizer))


def newton_schulz_time(rounds: int = 5) -> None:
    """Seconds of one optimizer step's Newton-Schulz iterations (all hidden matrices), per dtype."""
    hidden, _, _ = split_params(build_model(ModelConfig(preset="1m", arch="llama"), VOCAB, 0, 1, 2))
    updates = [torch.randn(p.shape) for p in hidden]
    for dtype in (torch.float32, torch.bfloat16):
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            for u in updates:
                newton_schulz(u, (3.4445, -4.7750, 2.0315), 5, 1e-7, dtype)
            times.append(time.perf_counter() - began)
        print(f"newton-schulz {dtype}: {len(updates)} matrices, s/step best {min(times):.4f}")


def step(model: Any, optimizer: torch.optim.Optimizer, batch: torch.Tensor) -> None:
    model(input_ids=batch, labels=batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def main(rounds: int = 3, steps: int = 5) -> None:
    torch.manual_seed(0)
    newton_schulz_time()
    batch = torch.randint(0, VOCAB, (8, 512))
    runs = {variant: setup(*variant) for variant in VARIANTS}
    for model, optimizer in runs.values():  # warm-up
        step(model, optimizer, batch)
    seconds: dict[tuple[str, str], list[float]] = {variant: [] for variant in runs}
    for _ in range(rounds):
        for variant, (model, optimizer) in runs.items():
            began = time.perf_counter()
            for _ in range(steps):
                step(model, optimizer, batch)
            seconds[variant].append((time.perf_counter() - began) / steps)
    print("threads", torch.get_num_threads())
    for variant, values in seconds.items():
        print(variant, f"s/step best {min(values):.3f} median {sorted(values)[len(values) // 2]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    if (threads := parser.parse_args().threads) is not None:
        torch.set_num_threads(threads)
    main()
