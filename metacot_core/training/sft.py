"""Supervised fine-tuning on search traces: the pieces of the loop, and the loop itself.

`prepare_run` (once, on the driver) checks the output folder, reads the data and builds or loads the
tokenizer, so bad input fails before any worker starts. `train` runs on every worker (or in this
process): it builds the model, optimizer and schedule, resumes from a checkpoint when there is one,
and steps. Each optimizer step normalises the summed token loss by the number of target tokens of
the whole global batch (all micro-batches, all workers), so 1 x 8 accumulation equals 8 x 1 batches
and a run's loss does not depend on how it was split. Dropout is re-seeded from (seed, step, rank)
every step, so a resumed run continues the same loss curve. Nothing here knows about Ray or MLflow:
metrics and checkpoints go out through callbacks.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from metacot_core.models import build_model, count_parameters, load_local_model
from metacot_core.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from metacot_core.training import checkpoint as ckpt
from metacot_core.training import optimizers
from metacot_core.training.config import RESUME_MUST_MATCH, SFTConfig
from metacot_core.training.data import (
    IGNORE,
    Batch,
    BatchPlan,
    DataError,
    make_examples,
    padding_waste,
    read_rows,
    rows_hash,
)

MetricsFn = Callable[[int, dict[str, float]], None]


class StopTraining(Exception):
    """Raised by a callback to end training early (tests use it to simulate a killed job)."""


# ------------------------------------------------------------------------------------------ set-up


def output_paths(cfg: SFTConfig) -> dict[str, Path]:
    root = Path(cfg.output_dir)
    return {
        "root": root,
        "checkpoints": root / "checkpoints",
        "tokenizer": root / "tokenizer",
        "final": root / "final",
    }


def find_resume(cfg: SFTConfig) -> Path | None:
    """The checkpoint this run continues from, per `cfg.resume`; raises when that would be wrong."""
    paths = output_paths(cfg)
    latest = ckpt.latest_checkpoint(paths["checkpoints"])
    if cfg.resume == "never":
        if latest is not None:
            raise ckpt.CheckpointError(
                f"{cfg.output_dir}: already holds checkpoints (newest {latest.name}) and "
                "resume=never; choose a new output_dir or resume=auto"
            )
        return None
    if cfg.resume == "auto":
        return latest
    path = Path(cfg.resume)
    if not path.is_dir():
        raise ckpt.CheckpointError(f"resume: {path} is not a checkpoint folder")
    step = ckpt.load_state(path)["step"]
    if (
        latest is not None
        and int(latest.name[len(ckpt.PREFIX) :]) > step
        and latest.resolve() != path.resolve()
    ):
        raise ckpt.CheckpointError(
            f"resume: {cfg.output_dir} already has a newer checkpoint ({latest.name}) that "
            "resuming from an older one would overwrite; use a new output_dir"
        )
    return path


def resolve_tokenizer(cfg: SFTConfig, train_rows: list[dict[str, str]]) -> tuple[Any, Path]:
    """Load the configured tokenizer, or the run's own, or build one from the training text and
    save it into output_dir/tokenizer (never replacing an existing one)."""
    if cfg.tokenizer.path is not None:
        return load_tokenizer(cfg.tokenizer.path), Path(cfg.tokenizer.path)
    own = output_paths(cfg)["tokenizer"]
    if (own / "tokenizer.json").is_file():
        return load_tokenizer(own), own
    texts = (r[k] for r in train_rows for k in ("prompt", "trace"))
    tok = build_tokenizer(texts, min_frequency=cfg.tokenizer.min_frequency)
    save_tokenizer(tok, own)
    return tok, own


def tokenizer_hash(tokenizer: Any) -> str:
    blob = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_context(cfg: SFTConfig) -> int:
    if cfg.model.init_from is None:
        return int(cfg.model.resolved("context"))
    from transformers import AutoConfig

    hf = AutoConfig.from_pretrained(cfg.model.init_from, local_files_only=True, trust_remote_code=False)
    return int(getattr(hf, "n_positions", None) or hf.max_position_embeddings)


def seq_len_of(cfg: SFTConfig) -> int:
    ctx = model_context(cfg)
    if cfg.train.seq_len is not None and cfg.train.seq_len > ctx:
        raise ValueError(f"train.seq_len: {cfg.train.seq_len} is longer than the model context {ctx}")
    return cfg.train.seq_len or ctx


@dataclass
class RunData:
    """Everything a worker trains on, built from the config alone (so every worker agrees)."""

    tokenizer: Any
    tokenizer_path: Path
    seq_len: int
    train_rows: int
    train_hash: str
    train: BatchPlan
    val: BatchPlan | None
    overflow: dict[str, dict[str, int]] = field(default_factory=dict)


def load_data(cfg: SFTConfig, rank: int = 0, world: int = 1, tokenizer: Any = None) -> RunData:
    d = cfg.data
    rows = read_rows(d.path, d.train_split, d.solved, d.formats, d.max_rows)
    if tokenizer is None:
        tokenizer, tok_path = resolve_tokenizer(cfg, rows)
    else:
        tok_path = Path(cfg.tokenizer.path or output_paths(cfg)["tokenizer"])
    seq_len = seq_len_of(cfg)
    t = cfg.train
    examples, stats = make_examples(rows, tokenizer, seq_len, t.overflow)
    plan = BatchPlan(
        examples, seq_len, t.micro_batch_size, t.batching, tokenizer.pad_token_id, t.seed, rank, world,
        t.curriculum_epochs,
    )
    overflow = {"train": stats.to_dict()}
    val = None
    if d.val_split is not None:
        val_rows = read_rows(d.path, d.val_split, d.solved, d.formats, d.val_max_rows)
        val_ex, val_stats = make_examples(val_rows, tokenizer, seq_len, t.overflow)
        overflow["val"] = val_stats.to_dict()
        # validation is sharded over ranks by index; fixed order so every evaluation sees the same data
        val = BatchPlan(val_ex, seq_len, t.micro_batch_size, t.batching, tokenizer.pad_token_id, 0, rank, 1)
    return RunData(tokenizer, tok_path, seq_len, len(rows), rows_hash(rows), plan, val, overflow)


def prepare_run(cfg: SFTConfig) -> tuple[SFTConfig, RunData]:
    """Driver-side checks and set-up; returns the config the workers get (tokenizer path filled in)."""
    paths = output_paths(cfg)
    if paths["final"].exists():
        raise ckpt.CheckpointError(
            f"{paths['final']}: this output_dir already holds a finished run; choose a new output_dir"
        )
    resume = find_resume(cfg)
    if cfg.model.init_from is not None and resume is None:
        load_local_model_check(cfg.model.init_from)
    data = load_data(cfg)
    cfg = cfg.model_copy(
        update={"tokenizer": cfg.tokenizer.model_copy(update={"path": str(data.tokenizer_path)})}
    )
    if resume is not None:
        check_resume(resume, cfg, data.tokenizer)
    return cfg, data


def load_local_model_check(path: str) -> None:
    from metacot_core.models import is_model_dir, refuse_remote_code

    if not Path(path).is_dir():
        raise FileNotFoundError(f"init_from {path}: directory not found")
    if not is_model_dir(path):
        raise ValueError(f"init_from {path}: not a model directory (needs config.json and *.safetensors)")
    refuse_remote_code(path)


def check_resume(path: Path, cfg: SFTConfig, tokenizer: Any) -> dict[str, Any]:
    saved = ckpt.saved_config(path)
    saved.setdefault("train", {}).setdefault("optimizer", "adamw")  # saved before there was a choice
    ckpt.check_compatible(saved, config_dict(cfg), RESUME_MUST_MATCH)
    state = ckpt.load_state(path)
    if state.get("tokenizer_hash") not in (None, tokenizer_hash(tokenizer)):
        raise ckpt.CheckpointError(
            f"cannot resume from {path}: it was trained with a different tokenizer vocabulary"
        )
    return state


def config_dict(cfg: SFTConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


# ------------------------------------------------------------------------------- optimisation pieces


def make_optimizer(model: torch.nn.Module, cfg: SFTConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (decay on matrices only), or Muon on the hidden matrices with AdamW for the rest."""
    t = cfg.train
    return optimizers.make_optimizer(model, t.optimizer, t.lr, (t.beta1, t.beta2), t.weight_decay,
                                     fused=device.type == "cuda" and t.optimizer == "adamw")


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine down to min_ratio at `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SFTConfig, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    t = cfg.train
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, t.warmup_steps, total, t.min_lr_ratio)
    )


def total_steps(cfg: SFTConfig, plan: BatchPlan) -> int:
    if cfg.train.max_steps is not None:
        return cfg.train.max_steps
    per_epoch = len(plan.epoch(0))
    return max(1, math.ceil(cfg.train.epochs * per_epoch / cfg.train.grad_accum))


def autocast_for(device: torch.device, precision: str) -> Any:
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def loss_sum(model: torch.nn.Module, batch: Batch, precision: str) -> torch.Tensor:
    """Summed cross-entropy over target tokens (prompt and padding are IGNORE) of one micro-batch."""
    device = batch.input_ids.device
    with autocast_for(device, precision):
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
    return F.cross_entropy(
        logits.float().flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE, reduction="sum"
    )


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum over workers (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    micro_batches: list[Batch],
    cfg: SFTConfig,
    device: torch.device,
) -> dict[str, float]:
    """One optimizer step over `micro_batches`; the loss is per target token of the global batch."""
    local_targets = sum(b.n_targets for b in micro_batches)
    local_tokens = sum(b.n_tokens for b in micro_batches)
    global_targets, global_tokens = all_sum([float(local_targets), float(local_tokens)], device)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    scale = world / max(1.0, global_targets)  # DDP averages gradients over workers
    total = torch.zeros((), device=device)
    for i, batch in enumerate(micro_batches):
        sync = i == len(micro_batches) - 1 or not hasattr(model, "no_sync")
        with nullcontext() if sync else model.no_sync():
            loss = loss_sum(model, batch.to(device), cfg.train.precision)
            (loss * scale).backward()
        total += loss.detach()
    clip = cfg.train.grad_clip if cfg.train.grad_clip is not None else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    (loss_total,) = all_sum([float(total)], device)
    return {
        "loss": loss_total / max(1.0, global_targets),
        "lr": lr,
        "grad_norm": float(grad_norm),
        "tokens": global_tokens,
        "target_tokens": global_targets,
    }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    plan: BatchPlan,
    cfg: SFTConfig,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
) -> float:
    """Mean loss per target token over the validation micro-batches (sharded over workers)."""
    was_training = model.training
    model.eval()
    specs = plan.epoch(0)
    if cfg.train.eval_batches is not None:
        specs = specs[: cfg.train.eval_batches]
    loss, n = 0.0, 0.0
    for spec in specs[rank::world]:
        batch = plan.collate(spec).to(device)
        loss += float(loss_sum(model, batch, cfg.train.precision))
        n += batch.n_targets
    loss, n = all_sum([loss, n], device)
    model.train(was_training)
    return loss / max(1.0, n)


# ----------------------------------------------------------------------------------------- the loop


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def build_or_resume(cfg: SFTConfig, data: RunData, resume: Path | None, device: torch.device) -> Any:
    tok = data.tokenizer
    if resume is not None:
        model = load_local_model(resume, cfg.model.attn_implementation)
    else:
        model = build_model(
            cfg.model, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, seed=cfg.train.seed
        )
    return model.to(device)


def train(
    cfg: SFTConfig,
    rank: int = 0,
    world: int = 1,
    device: torch.device | None = None,
    on_metrics: MetricsFn | None = None,
    on_checkpoint: Callable[[int, Path], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train per `cfg` on this worker; returns a summary (metrics on every rank, paths on rank 0).

    Call after `prepare_run` (which fills `cfg.tokenizer.path`). `on_metrics(step, metrics)` is called
    on rank 0 for step metrics and validation; raising StopTraining from it ends the run early.
    """
    device = device or resolve_device(cfg.train.device)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    paths = output_paths(cfg)
    resume = find_resume(cfg)
    tokenizer = load_tokenizer(cfg.tokenizer.path) if cfg.tokenizer.path else None
    data = load_data(cfg, rank, world, tokenizer)
    state = check_resume(resume, cfg, data.tokenizer) if resume is not None else None
    model = build_or_resume(cfg, data, resume, device)
    n_params = count_parameters(model)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    model.train()
    optimizer = make_optimizer(model, cfg, device)
    steps = total_steps(cfg, data.train)
    scheduler = make_scheduler(optimizer, cfg, steps)
    start = 0
    tokens_seen = 0  # including the steps before a resume: training compute (FLOPs) counts them too
    if state is not None:
        tokens_seen = int(state.get("tokens_seen", 0))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        start = int(state["step"])
    summary: dict[str, Any] = {
        "params": n_params,
        "world_size": world,
        "seq_len": data.seq_len,
        "max_steps": steps,
        "start_step": start,
        "train_rows": data.train_rows,
        "train_hash": data.train_hash,
        "overflow": data.overflow,
        "padding_waste": padding_waste(data.train),
        "vocab_size": len(data.tokenizer),
        "history": [],
    }
    stream = data.train.iterate(start * cfg.train.grad_accum)
    bar = _progress(progress and rank == 0, start, steps)
    t = cfg.train
    val_loss = None
    try:
        for step in range(start, steps):
            torch.manual_seed(t.seed * 1_000_003 + step * 101 + rank)  # dropout: same stream after resume
            began = time.perf_counter()
            pairs = [next(stream) for _ in range(t.grad_accum)]
            metrics = train_step(model, optimizer, scheduler, [b for _, b in pairs], cfg, device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - began
            metrics.update(
                epoch=float(pairs[-1][0]), step_time=elapsed, tokens_per_sec=metrics["tokens"] / elapsed
            )
            done = step + 1
            if data.val is not None and (done % t.eval_every == 0 or done == steps):
                val_loss = evaluate(model, data.val, cfg, device, rank, world)
                metrics["val_loss"] = val_loss
            summary["history"].append({"step": done, **metrics})
            tokens_seen += int(metrics["tokens"])
            if done % t.checkpoint_every == 0 and done < steps:
                _save(cfg, paths, done, model, data, optimizer, scheduler, rank, on_checkpoint, tokens_seen)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{metrics['loss']:.4f}", **({"val": f"{val_loss:.4f}"} if val_loss else {})
                )
            if rank == 0 and on_metrics is not None and (done % t.log_every == 0 or "val_loss" in metrics):
                on_metrics(done, metrics)
    finally:
        if bar is not None:
            bar.close()
    hist = summary["history"]
    timed = hist[2:] or hist  # the first steps pay for allocation and warm-up
    seconds = sum(h["step_time"] for h in timed)
    summary.update(
        final_step=steps,
        val_loss=val_loss,
        loss=hist[-1]["loss"] if hist else None,
        tokens_per_sec=sum(h["tokens"] for h in timed) / seconds if seconds else None,
        tokens_seen=tokens_seen,
    )
    if rank == 0:
        summary["final_dir"] = str(
            ckpt.save_final(paths["final"], unwrap(model), data.tokenizer, config_dict(cfg))
        )
    _barrier()
    return summary


def _save(
    cfg: SFTConfig,
    paths: dict[str, Path],
    step: int,
    model: torch.nn.Module,
    data: RunData,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rank: int,
    on_checkpoint: Callable[[int, Path], None] | None,
    tokens_seen: int = 0,
) -> None:
    if rank == 0:
        position = {"micro_batch": step * cfg.train.grad_accum}
        position["epoch"], position["index_in_epoch"] = data.train.locate(position["micro_batch"])
        path = ckpt.save_checkpoint(
            paths["checkpoints"],
            step,
            unwrap(model),
            data.tokenizer,
            optimizer,
            scheduler,
            position,
            config_dict(cfg),
            keep=cfg.train.keep_checkpoints,
            extra={"tokenizer_hash": tokenizer_hash(data.tokenizer), "tokens_seen": tokens_seen},
        )
        if on_checkpoint is not None:
            on_checkpoint(step, path)
    _barrier()


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _progress(enabled: bool, start: int, total: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="sft", unit="step", dynamic_ncols=True)


__all__ = [
    "DataError",
    "StopTraining",
    "evaluate",
    "lr_factor",
    "make_optimizer",
    "make_scheduler",
    "prepare_run",
    "train",
    "train_step",
]
