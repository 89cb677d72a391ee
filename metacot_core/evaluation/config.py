"""Typed settings of an evaluation run: what to decode, how, and what to compare the model against."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metacot_core.config import OutputDir
from metacot_core.search.config import StrategyMix, sos_mix


class GenerationSettings(BaseModel):
    """How completions are decoded (also used by RL rollouts).

    temperature 0 means greedy decoding; n_samples > 1 needs temperature > 0 (greedy samples are copies).
    stop_strings None means the trace format's own stops (see generate.default_stop_strings).
    """

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(512, ge=1, description="completion length limit; hitting it marks truncation")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy; > 0 = sampling")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass (sampling only)")
    n_samples: int = Field(1, ge=1, description="completions per prompt (pass@k needs n >= k)")
    batch_size: int = Field(64, ge=1, description="sequences decoded together with the KV cache")
    stop_strings: list[str] | None = Field(None, description="stop after any of these (None: format default)")
    device: str = Field("auto", description="auto (cuda when present), cpu, cuda, cuda:1 ...")
    seed: int = Field(0, description="torch seed for sampling")
    sort_by_length: bool = Field(True, description="batch prompts of similar length together (less padding)")
    engine: Literal["loop", "hf"] = Field(
        "loop", json_schema_extra={"hash_neutral": True},  # added later: stage hashes stay as they were
        description="loop: our decode loop (one prefill per prompt, finished rows leave the batch, "
        "batch-independent samples; evaluation/decode.py); hf: transformers' model.generate")

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> GenerationSettings:
        if self.n_samples > 1 and self.temperature == 0.0:
            raise ValueError("n_samples > 1 needs temperature > 0 (greedy decoding repeats one completion)")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class TeacherSettings(BaseModel):
    """The symbolic strategies the model is compared with, run on the same problems."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run the teacher strategies (costs CPU time per problem)")
    node_budget: int = Field(10_000, ge=1, description="node budget of every strategy (same as the data's)")
    mix: StrategyMix | None = Field(None, description="strategies to compare; None = sos_mix(node_budget)")
    seed: int = Field(0, description="seed of the strategies' random choices")

    def strategies(self) -> StrategyMix:
        return self.mix if self.mix is not None else sos_mix(self.node_budget)


class EvalConfig(BaseModel):
    """One evaluation: checkpoint x dataset splits, decoding settings, teacher comparison, outputs."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(None, description="directory with a transformers causal LM + tokenizer")
    dataset: str | None = Field(None, description="Parquet dataset directory (canonical columns)")
    splits: list[str] | None = Field(None, description="splits to evaluate; None = every split but train")
    max_problems: int | None = Field(None, ge=1, description="first N problems per split (None = all)")
    format: str | None = Field(None, description="only the dataset's rows of this format (None: all)")
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    pass_k: list[int] = Field(default_factory=lambda: [1, 5, 10], description="k values for pass@k (k <= n)")
    alignment: bool = Field(True, description="state alignment with each teacher strategy (SoS definition)")
    expansions: bool = Field(
        True, json_schema_extra={"hash_neutral": True},  # added later: stage hashes stay as they were
        description="record each output's ordered expanded states and the teacher runs' (teacher.parquet), "
        "for `metacot analyze`")
    output_dir: OutputDir = Field("runs/eval", description="where the table, summary and plots are written")
    parent_run_id: str | None = Field(None, description="MLflow run of the evaluated model (nest under it)")
    experiment: str = Field("metacot", description="MLflow experiment")
    progress: bool = Field(True, description="tqdm progress bars")
    mode: Literal["search", "maze"] | None = Field(
        None, description="extra metrics: maze adds the plan metrics (optimal rate, SWC, ILR) for any "
        "domain; None = when the domain's problems declare optimal_plans"
    )

    @model_validator(mode="after")
    def _pass_k_positive(self) -> EvalConfig:
        if any(k < 1 for k in self.pass_k):
            raise ValueError("pass_k: every k must be >= 1")
        return self
