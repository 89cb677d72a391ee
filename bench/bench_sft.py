"""SFT throughput: our training step against a bare PyTorch loop, in one run, plus padding and tokens.

    .venv/bin/python bench/bench_sft.py                      # CPU: bare loop vs ours (in-process and 1
                                                              # Ray worker), 2 Ray workers, padding, tokenizer
    .venv/bin/python bench/bench_sft.py --device cuda --presets 25m 100m --seq-len 2048 --micro-batch 8
                                                              # GPU: tokens/s and MFU, bf16 autocast

Same model, same micro-batches (packed rows of seq_len from the SoS reference traces), same dtype
and threads on both sides; the bare loop is what a person would write by hand (plain causal
attention, F.cross_entropy, AdamW). Ratios > 0.9 mean our loop costs under 10%. The machine may be
shared: run it twice and read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sft_fixtures import sos_rows, write_split  # noqa: E402

from metacot_core.config import build_config  # noqa: E402
from metacot_core.models import ModelConfig, build_model, count_parameters, flops_per_token  # noqa: E402
from metacot_core.tokenizer import build_tokenizer, pre_tokenize, split_pattern  # noqa: E402
from metacot_core.training import sft  # noqa: E402
from metacot_core.training.config import SFTConfig  # noqa: E402
from metacot_core.training.data import IGNORE, BatchPlan, make_examples, padding_waste  # noqa: E402

DESIGNS = {
    "digit per token": r"[A-Za-z_]+|\d|\s|[^\sA-Za-z_\d]",
    "number per token": r"[A-Za-z_]+|\d+|\s|[^\sA-Za-z_\d]",
    "ours (phrases, punctuation runs, numbers)": None,
}


def tokenizer_designs(texts: list[str]) -> dict[str, float]:
    out = {}
    for name, pattern in DESIGNS.items():
        pattern = pattern or split_pattern()
        counts = []
        for text in texts:
            pieces = re.findall(pattern, text)
            assert "".join(pieces) == text
            counts.append(len(pieces))
        out[name] = statistics.mean(counts)
    return out


def bare_loop(
    model: torch.nn.Module, batches: list, steps: int, device: torch.device, bf16: bool
) -> tuple[float, float]:
    """(tokens per wall second, per CPU second) of a hand-written loop over the same tensors (the
    first 2 steps are warm-up). CPU seconds move less than wall seconds on a shared machine."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    model.train()
    tokens, seconds, cpu = 0, 0.0, 0.0
    for i in range(steps + 2):
        b = batches[i % len(batches)]
        ids, tgt = b.input_ids.to(device), b.targets.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, use_cache=False).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), ignore_index=IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            tokens += b.n_tokens
    return tokens / seconds, tokens / cpu


def our_loop(
    model: torch.nn.Module, cfg: SFTConfig, batches: list, steps: int, device: torch.device
) -> float:
    opt = sft.make_optimizer(model, cfg, device)
    sched = sft.make_scheduler(opt, cfg, steps + 2)
    model.train()
    tokens, seconds, cpu = 0, 0.0, 0.0
    for i in range(steps + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        m = sft.train_step(model, opt, sched, [batches[i % len(batches)]], cfg, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            tokens += m["tokens"]
    return tokens / seconds, tokens / cpu


def ray_run(cfg: SFTConfig, workers: int, cpus: int) -> float:
    from metacot_core.pipeline.tracker import NullTracker
    from tasks.sft import train_on_ray

    cfg = cfg.model_copy(
        update={
            "ray": cfg.ray.model_copy(
                update={
                    "enabled": True,
                    "num_workers": workers,
                    "cpus_per_worker": cpus,
                    "torch_threads": cpus,
                }
            )
        }
    )
    cfg, _ = sft.prepare_run(cfg)
    return float(train_on_ray(cfg, NullTracker().step_logger())["tokens_per_sec"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--presets", nargs="+", default=["1m"])
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast off the GPU too (to check the path)")
    ap.add_argument("--mfu", action="store_true", help="report MFU off the GPU too (to check the path)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of bare / ours")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray worker runs")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100 SXM: 989)")
    ap.add_argument("--model", nargs="*", default=[], help="extra model overrides, e.g. n_layer=1 d_model=32")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = sos_rows("train.jsonl", "train")
    texts = [r["prompt"] + r["trace"] for r in rows]
    tok = build_tokenizer(r[k] for r in rows for k in ("prompt", "trace"))
    report: dict = {
        "load_average_at_start": os.getloadavg(),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "seq_len": args.seq_len,
        "micro_batch": args.micro_batch,
        "tokenizer_mean_tokens_per_sos_trace": tokenizer_designs(
            [
                json.loads(line)["search_path"]
                for line in (Path(sys.modules["sft_fixtures"].SOS_DIR) / "train.jsonl")
                .read_text()
                .splitlines()
            ]
        ),
    }
    report["our_tokenizer_mean_tokens"] = statistics.mean(
        len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts
    )
    assert all(len(pre_tokenize(t)) > 0 for t in texts)
    examples, _ = make_examples(rows, tok, args.seq_len, "split")
    report["padding_waste"] = {
        b: padding_waste(BatchPlan(examples, args.seq_len, args.micro_batch, b, 0))
        for b in ("pack", "bucket")
    }
    plan = BatchPlan(examples, args.seq_len, args.micro_batch, "pack", tok.pad_token_id)
    batches = [plan.collate(s) for s in plan.epoch(0)]
    overrides = {k: int(v) for k, v in (o.split("=") for o in args.model)}
    bf16 = device.type == "cuda" or args.bf16
    for preset in args.presets:
        mcfg = ModelConfig(preset=preset, context=max(args.seq_len, 8), **overrides)
        cfg = build_config(
            SFTConfig,
            {
                "data": {"path": "unused"},
                "model": mcfg.model_dump(exclude_none=True),
                "train": {
                    "max_steps": args.steps,
                    "seq_len": args.seq_len,
                    "micro_batch_size": args.micro_batch,
                    "warmup_steps": 0,
                    "precision": "bf16" if bf16 else "auto",
                },
            },
        )
        res: dict = {}
        bare, ours = [], []
        for _ in range(args.repeats):  # interleaved, best of each: the machine may be shared
            model = build_model(mcfg, len(tok), 1, 2, 0).to(device)
            bare.append(bare_loop(model, batches, args.steps, device, bf16))
            model = build_model(mcfg, len(tok), 1, 2, 0).to(device)
            ours.append(our_loop(model, cfg, batches, args.steps, device))
        res["params"] = count_parameters(model)
        res["bare_tokens_per_sec"] = max(b[0] for b in bare)
        res["ours_in_process_tokens_per_sec"] = max(o[0] for o in ours)
        res["ratio_in_process"] = res["ours_in_process_tokens_per_sec"] / res["bare_tokens_per_sec"]
        res["bare_tokens_per_cpu_sec"] = max(b[1] for b in bare)
        res["ours_tokens_per_cpu_sec"] = max(o[1] for o in ours)
        res["ratio_in_process_cpu_time"] = res["ours_tokens_per_cpu_sec"] / res["bare_tokens_per_cpu_sec"]
        if device.type == "cuda" or args.mfu:
            fpt = flops_per_token(model, args.seq_len)
            for key in ("bare", "ours_in_process"):
                res[f"{key}_mfu"] = res[f"{key}_tokens_per_sec"] * fpt / (args.peak_tflops * 1e12)
        if not args.no_ray and device.type == "cpu":
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp) / "ds"
                write_split(data, "train", rows)
                base = cfg.model_copy(
                    update={
                        "data": cfg.data.model_copy(update={"path": str(data), "val_split": None}),
                        "train": cfg.train.model_copy(update={"checkpoint_every": 10_000}),
                        "output_dir": str(Path(tmp) / "r1"),
                    }
                )
                res["ray_1_worker_tokens_per_sec"] = ray_run(base, 1, torch.get_num_threads())
                res["ratio_ray_1_worker"] = res["ray_1_worker_tokens_per_sec"] / res["bare_tokens_per_sec"]
                two = base.model_copy(update={"output_dir": str(Path(tmp) / "r2")})
                res["ray_2_workers_tokens_per_sec"] = ray_run(two, 2, 1)
        report[preset] = res
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
