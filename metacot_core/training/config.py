"""Typed settings of an SFT run: data, tokenizer, model, optimisation, workers, tracking.

Loaded with `metacot_core.config.load_config(SFTConfig, "configs/countdown/sft-cpu.yaml", overrides)`.
Every field has a default and a description; settings that cannot work together fail at load time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metacot_core.config import OutputDir
from metacot_core.models import ModelConfig

Overflow = Literal["truncate", "split", "drop"]
Batching = Literal["pack", "bucket"]


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="dataset folder holding <split>/part-*.parquet")
    train_split: str = Field("train", description="split to train on")
    val_split: str | None = Field("val_inputs", description="split for validation loss (None: no validation)")
    solved: bool | None = Field(None, description="keep only solved (True) or unsolved (False) traces")
    formats: list[str] | None = Field(None, description="keep only these trace formats")
    max_rows: int | None = Field(None, ge=1, description="use at most this many training rows")
    val_max_rows: int | None = Field(256, ge=1, description="use at most this many validation rows")


class TokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None, description="saved tokenizer folder; None: build one from the training text"
    )
    min_frequency: int = Field(1, ge=1, description="when building: keep pre-tokens seen this often")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq_len: int | None = Field(None, ge=8, description="tokens per row (default: the model's context)")
    overflow: Overflow = Field("split", description="rows longer than seq_len: truncate, split (SoS), drop")
    batching: Batching = Field("pack", description="pack: several traces per row; bucket: similar lengths")
    curriculum_epochs: float = Field(
        0, ge=0, description="short-to-long curriculum: the first N epochs (fractions allowed) visit "
        "micro-batches from the shortest traces to the longest; 0: shuffled from the start",
        json_schema_extra={"hash_neutral": True},  # added later: at 0, stage hashes stay as they were
    )
    micro_batch_size: int = Field(8, ge=1, description="rows per micro-batch (bucket: same token budget)")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step (per worker)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; None: from epochs")
    epochs: float | None = Field(
        None, gt=0, description="passes over the training data when max_steps is None"
    )
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    warmup_steps: int = Field(20, ge=0, description="linear warmup steps")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decay on matrices (not biases, norms)")
    optimizer: Literal["adamw", "muon"] = Field(
        "adamw", description="adamw, or muon: torch's Muon on the hidden matrices, AdamW on the rest",
        json_schema_extra={"hash_neutral": True},  # added later: at adamw, stage hashes stay as they were
    )
    threads: int | None = Field(
        None, ge=1, description="torch threads of an in-process run (None: torch's default); on a shared "
        "machine 1 can be faster than spinning OpenMP threads", json_schema_extra={"hash_neutral": True},
    )
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global grad norm (None: no clipping)")
    seed: int = Field(0, description="model init, data order and dropout")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on GPU, fp32 on CPU"
    )
    eval_every: int = Field(50, ge=1, description="validation loss every N steps (and at the end)")
    eval_batches: int | None = Field(
        20, ge=1, description="validation micro-batches per evaluation (None: all)"
    )
    checkpoint_every: int = Field(100, ge=1, description="save a resumable checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="most recent checkpoints kept")
    log_every: int = Field(1, ge=1, description="log step metrics every N steps")
    device: str = Field("auto", description="auto, cpu or cuda (Ray workers use the device Ray gives them)")

    @model_validator(mode="after")
    def _length(self) -> TrainConfig:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("max_steps: set max_steps or epochs")
        return self


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run in Ray Train workers (False: in this process)")
    num_workers: int = Field(1, ge=1, description="DDP workers (gloo on CPU, NCCL on GPU)")
    use_gpu: bool = Field(False, description="one GPU per worker")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs reserved per worker")
    torch_threads: int | None = Field(
        None, ge=1, description="torch threads per worker (None: cpus_per_worker)"
    )


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: str = Field("metacot", description="MLflow experiment")
    run_name: str = Field("sft", description="MLflow run name")
    log_model: bool = Field(True, description="log the final model as an MLflow transformers model")


class SFTConfig(BaseModel):
    """One supervised fine-tuning run."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_steps=100))
    ray: RayConfig = Field(default_factory=RayConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output_dir: OutputDir = Field("runs/sft", description="checkpoints, tokenizer and final model go here")
    resume: str = Field(
        "auto",
        description="auto: continue from the last checkpoint in output_dir; "
        "never: refuse an output_dir with checkpoints; or a checkpoint path",
    )

    @model_validator(mode="after")
    def _fits(self) -> SFTConfig:
        ctx = self.model.context if self.model.init_from is not None else self.model.resolved("context")
        if ctx is not None and self.train.seq_len is not None and self.train.seq_len > ctx:
            raise ValueError(f"train.seq_len: {self.train.seq_len} is longer than the model context {ctx}")
        return self


# Fields that must match between a checkpoint and the run resuming from it (the rest may change,
# e.g. max_steps to train longer, eval_every, logging).
RESUME_MUST_MATCH = (
    "train.optimizer",
    "data.path",
    "data.train_split",
    "data.solved",
    "data.formats",
    "data.max_rows",
    "model",
    "train.seq_len",
    "train.overflow",
    "train.batching",
    "train.micro_batch_size",
    "train.grad_accum",
    "train.seed",
    "ray.num_workers",
)
