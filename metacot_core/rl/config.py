"""Typed settings for RL post-training: expert iteration (STaR) and GRPO with a verifiable reward.

One pydantic model per concern, every field with a default and a description, and validators that
reject settings that cannot work together (a group of one sample has no advantage; a length term
based on the SoS node budget needs a budget). Loaded with `metacot_core.config.load_config`, so
`grpo.beta=0.0` style overrides work from the command line and from Prefect parameters.

RL methods are registered like domains (`registry.names("rl")`): each is one config class, a
`MethodConfig` naming its training loop (`trainer`). `RLConfig` gets one block per registered method,
named after it (`star:`, `grpo:`), and `method` picks the block that runs. Every block is part of the
config (and of its stage hash) whichever method runs, as it always was.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from metacot_core import registry
from metacot_core.config import OutputDir


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RewardConfig(_Strict):
    """How a completion is scored; the problem's verifier (through the format's replay) decides `solved`."""

    solved: float = Field(1.0, description="reward for a valid trace whose answer verifies")
    format_weight: float = Field(
        0.0, ge=0.0, description="added when every step of the trace is legal (valid), solved or not"
    )
    length: Literal["none", "budget", "discount"] = Field(
        "none",
        description="none; budget: SoS rating, solved x max(0, 1 - (explored + 1) / budget); "
        "discount: solved x gamma ** n_completion_tokens",
    )
    budget: int = Field(1152, ge=1, description="node budget of the `budget` length term (SoS: 1152)")
    gamma: float = Field(0.999, gt=0.0, le=1.0, description="per-token discount of the `discount` term")


class SamplingConfig(_Strict):
    """Rollout sampling; the evaluation helper's generator does the work."""

    temperature: float = Field(0.8, ge=0.0, description="sampling temperature (SoS STaR: 0.8)")
    top_k: int | None = Field(None, ge=1, description="keep only the k most likely tokens; None = all")
    max_new_tokens: int = Field(512, ge=1, description="tokens generated per completion at most")
    stop: list[str] = Field(default_factory=list, description="text after the first stop string is cut")
    batch_size: int = Field(16, ge=1, description="prompts generated together (with all their samples)")
    engine: Literal["loop", "hf"] = Field(
        "loop", json_schema_extra={"hash_neutral": True},  # added later: stage hashes stay as they were
        description="loop: our decode loop (finished rows leave the batch, one prefill per prompt); "
        "hf: transformers' model.generate (every row decodes until the longest ends)")


class RolloutConfig(_Strict):
    """Where rollouts are sampled: in the learner's process, or in Ray actors holding a policy copy.

    With workers > 0 (tasks/rl_actors.py) sampling and learning can sit on different machines of a
    Ray cluster (RAY_ADDRESS); the actors receive the learner's weights after every update. Greedy
    rollouts are the same either way; sampled ones draw from per-worker seeds, so they depend on
    the number of workers as they already depend on the batch size.
    """

    workers: int = Field(0, ge=0, description="Ray rollout actors; 0 = sample in the learner's process")
    cpus_per_worker: float = Field(1.0, gt=0.0, description="Ray CPUs reserved by each rollout actor")
    gpus_per_worker: float = Field(0.0, ge=0.0, description="Ray GPUs per actor (fractions share a GPU)")
    torch_threads: int | None = Field(
        None, ge=1, description="torch threads in each actor; None = cpus_per_worker rounded up"
    )


class TrainConfig(_Strict):
    """Optimizer settings shared by both methods."""

    lr: float = Field(1e-4, gt=0.0, description="AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    batch_size: int = Field(8, ge=1, description="sequences per optimizer micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    max_length: int = Field(1024, ge=8, description="prompt + completion tokens kept per sequence")


class MethodConfig(_Strict):
    """The settings block of one RL method, and what the runner asks of it.

    trainer: "module:function" of the training loop, called as fn(run, log, save, sampler) with the
    prepared `RLRun` (rl/runner.py); imported only when the method runs, so configs load without torch.
    """

    trainer: ClassVar[str]

    def total_steps(self) -> int:
        """Rounds or optimizer steps the method runs in all (resume counts against it)."""
        raise NotImplementedError

    def check(self, cfg: Any) -> None:
        """Raise ValueError when the whole RL config cannot work with this method (default: it can)."""


class StarConfig(MethodConfig):
    """Expert iteration as Stream of Search ran it: sample k, keep the correct ones, fine-tune, repeat."""

    trainer: ClassVar[str] = "metacot_core.rl.star:run_method"

    iterations: int = Field(3, ge=1, description="sample-filter-fine-tune rounds")
    samples_per_problem: int = Field(4, ge=1, description="k traces sampled per training problem")
    problems_per_iteration: int | None = Field(
        None, ge=1, description="training problems sampled each round; None = all of them"
    )
    keep: Literal["all", "shortest", "best"] = Field(
        "all",
        description="all: every correct sample (deduplicated, SoS); shortest: the shortest correct trace "
        "per problem, else the teacher trace (Searchformer bootstrapping); best: highest reward per problem",
    )
    min_reward: float = Field(
        0.0, description="a solved sample is kept only when its reward is above this (SoS threshold filter)"
    )
    epochs: int = Field(1, ge=1, description="passes over the kept traces per round")
    init: Literal["previous", "base"] = Field(
        "previous", description="fine-tune each round from the previous round's model or from the SFT model"
    )

    def total_steps(self) -> int:
        return self.iterations


class GrpoConfig(MethodConfig):
    """Group Relative Policy Optimization with a clipped objective and a k3 KL to the reference model."""

    trainer: ClassVar[str] = "metacot_core.rl.grpo:run_method"

    steps: int = Field(100, ge=1, description="optimizer rounds (each: rollout, score, advantages, update)")
    prompts_per_step: int = Field(8, ge=1, description="problems per rollout batch")
    group_size: int = Field(4, ge=2, description="G completions per problem")
    updates_per_batch: int = Field(1, ge=1, description="policy updates on one rollout batch (mu)")
    clip_eps: float = Field(0.2, gt=0.0, lt=1.0, description="ratio clip range epsilon")
    clip_eps_high: float | None = Field(None, gt=0.0, description="upper clip range (DAPO); None = clip_eps")
    beta: float = Field(0.04, ge=0.0, description="weight of the KL to the reference model; 0 = no reference")
    scale_advantages: bool = Field(True, description="divide by the group std (False = Dr. GRPO)")
    loss_agg: Literal["sequence", "token"] = Field(
        "sequence", description="sequence: mean over each completion, then over completions (GRPO paper); "
        "token: mean over all completion tokens of the batch (DAPO)"
    )
    on_collapse: Literal["warn", "stop"] = Field("warn", description="what a collapse alarm does")
    checkpoint_every: int = Field(10, ge=1, description="resumable checkpoint every n steps, and last")

    def total_steps(self) -> int:
        return self.steps

    def check(self, cfg: Any) -> None:
        if cfg.sampling.temperature == 0.0:
            raise ValueError("sampling.temperature: GRPO needs temperature > 0 (greedy groups are identical)")


class EvalConfig(_Strict):
    """Held-out evaluation during RL."""

    every: int = Field(1, ge=0, description="STaR: every n rounds; GRPO: every n steps; 0 = only at the end")
    splits: list[str] | None = Field(None, description="held-out splits; None = all but the training split")
    n_problems: int = Field(64, ge=1, description="problems per split (the same ones every time)")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy decoding")
    at_start: bool = Field(True, description="evaluate the SFT model before the first step (the baseline)")


class GuardConfig(_Strict):
    """Thresholds of the collapse alarms (see metacot_core.rl.guards)."""

    max_empty_rate: float = Field(0.5, ge=0.0, le=1.0, description="alarm when more completions are empty")
    min_tokens: int = Field(3, ge=0, description="completions with fewer tokens count as empty reasoning")
    max_repeat_rate: float = Field(
        0.5, ge=0.0, le=1.0, description="alarm when more completions are mostly repeated n-grams"
    )
    ngram: int = Field(8, ge=1, description="n of the repetition measure (tokens)")
    repeat_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="a completion is degenerate when this share of its n-grams repeat"
    )


class RLSettings(_Strict):
    """Everything one RL run needs but the methods' blocks (RLConfig adds one per registered method)."""

    method: str = Field("star", description="registered RL method: star (expert iteration), grpo, ...")
    init_checkpoint: str = Field("", description="the SFT checkpoint RL starts from (a local folder)")
    dataset: str = Field("", description="trace dataset (Parquet folder) with train and held-out splits")
    train_split: str = Field("train", description="split whose problems RL trains on")
    format: str | None = Field(None, description="trace format that judges rollouts; None = the dataset's")
    max_train_problems: int | None = Field(None, ge=1, description="use at most this many training problems")
    output_dir: OutputDir = Field("runs/rl", description="checkpoints and the resume state go here")
    seed: int = Field(0, description="seed of problem sampling, rollouts and shuffling")
    resume: bool = Field(True, description="continue from the latest checkpoint in output_dir")
    keep_checkpoints: int = Field(2, ge=1, description="most recent RL checkpoints kept")
    device: str = Field("auto", description="auto (cuda when present), cpu, cuda")
    progress: bool = Field(
        True, json_schema_extra={"hash_neutral": True},
        description="tqdm bars: one per GRPO step / STaR round (reward, samples kept, tokens/s)")
    reward: RewardConfig = Field(default_factory=RewardConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    guards: GuardConfig = Field(default_factory=GuardConfig)

    @field_validator("method")
    @classmethod
    def _registered(cls, value: str) -> str:
        known = registry.names("rl")
        if value not in known:
            raise ValueError(f"unknown RL method {value!r}; known: {', '.join(known)}")
        return value

    @property
    def method_config(self) -> MethodConfig:
        """The settings block of the method that runs."""
        return getattr(self, self.method)

    @model_validator(mode="after")
    def _coherent(self) -> RLSettings:
        self.method_config.check(self)
        return self


def _method_blocks() -> dict[str, Any]:
    """One field per registered RL method: its config class, defaults when the YAML leaves it out."""
    blocks: dict[str, Any] = {}
    for name in registry.names("rl"):
        cls = registry.get_rl_method(name)
        blocks[name] = (cls, Field(default_factory=cls, description=(cls.__doc__ or "").split("\n")[0]))
    return blocks


RLConfig = create_model(  # type: ignore[misc]  # a class whose fields come from the method registry
    "RLConfig", __base__=RLSettings, __module__=__name__, **_method_blocks())
RLConfig.__doc__ = """Everything one RL run needs; `method` picks which registered method's block runs."""
