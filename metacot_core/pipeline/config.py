"""The experiment config: one YAML that composes the stage configs (generate, SFT, RL, evaluate) and a
sweep's search space, and wires the stages together.

    pipe = load_pipeline("configs/countdown/pipeline-cpu.yaml", ["sft.train.max_steps=50"])
    pipe.sft.data.path   # the generated dataset's folder, filled in by the wiring

Each stage is a config file (`config:`), an inline mapping, or both (the mapping is laid over the
file), plus `overrides:`. A command-line override whose first key is a stage name goes to that
stage (`sft.train.lr=1e-3`); `sft.config=...` or `rl.enabled=false` change the pipeline itself.

The pipeline owns the wiring fields (every stage's output folder, SFT's data path, RL's dataset and
start checkpoint, the evaluated checkpoint): output folders are named by a hash of everything that
changes a stage's result, upstream stages included, so a re-run with the same config finds its
dataset and checkpoints again while any change gets fresh folders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metacot_core.config import ConfigError, OutputDir, apply_overrides, build_config, read_yaml
from metacot_core.data.config import GenerateConfig
from metacot_core.evaluation.config import EvalConfig
from metacot_core.rl.config import RLConfig
from metacot_core.training.config import SFTConfig

STAGES = ("generate", "sft", "rl", "evaluate")
SPEC_FIELDS = ("config", "overrides", "enabled", "retries")


class StageSpec(BaseModel):
    """Where one stage's settings come from: a YAML file, an inline mapping laid over it, overrides."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = Field(None, description="stage YAML (relative to the working directory)")
    settings: dict[str, Any] = Field(default_factory=dict, description="inline fields laid over the file")
    overrides: list[str] = Field(default_factory=list, description="key.sub=value overrides, applied last")
    enabled: bool = Field(True, description="run this stage (only RL may be turned off)")
    retries: int = Field(0, ge=0, le=5, description="Prefect retries of the stage when it fails")


class PipelineConfig(BaseModel):
    """One experiment end to end."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9._-]+$", description="experiment name (folders)")
    experiment: str = Field("metacot", description="MLflow experiment of every run")
    output_root: OutputDir = Field("runs/pipeline", description="stage folders go to <output_root>/<name>/")
    generate: StageSpec = Field(default_factory=lambda: StageSpec(retries=2))
    sft: StageSpec = Field(default_factory=StageSpec)
    rl: StageSpec = Field(default_factory=lambda: StageSpec(enabled=False))
    evaluate: StageSpec = Field(default_factory=StageSpec)
    sweep: dict[str, Any] | None = Field(
        None, description="search space and settings of `metacot sweep`, read and checked by it "
        "(flows/sweep.py)")

    @model_validator(mode="after")
    def _only_rl_optional(self) -> PipelineConfig:
        for stage in ("generate", "sft", "evaluate"):
            if not getattr(self, stage).enabled:
                raise ValueError(f"{stage}.enabled: only rl can be turned off")
        return self


@dataclass
class ResolvedPipeline:
    """The typed, wired stage configs of one pipeline, with the hashes naming their folders."""

    config: PipelineConfig
    generate: GenerateConfig
    sft: SFTConfig
    rl: RLConfig | None
    evaluate: EvalConfig
    hashes: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return Path(self.config.output_root) / self.config.name

    @property
    def key(self) -> str:
        """The whole pipeline's hash (the last stage's hash covers every stage before it)."""
        return self.hashes["evaluate"]

    @property
    def state_path(self) -> Path:
        return self.root / f"pipeline-state-{self.key}.json"

    def stages(self) -> list[str]:
        return [s for s in STAGES if s != "rl" or self.rl is not None]

    def stage_config(self, stage: str) -> Any:
        return {"generate": self.generate, "sft": self.sft, "rl": self.rl, "evaluate": self.evaluate}[stage]


def route_overrides(overrides: Iterable[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split overrides into pipeline-level ones and per-stage ones (`sft.train.lr=...` -> sft)."""
    top: list[str] = []
    per_stage: dict[str, list[str]] = {s: [] for s in STAGES}
    for item in overrides:
        key = item.partition("=")[0].strip()
        parts = key.split(".")
        if parts[0] in STAGES and len(parts) > 1 and parts[1] not in SPEC_FIELDS + ("settings",):
            per_stage[parts[0]].append(item[len(parts[0]) + 1:])
        else:
            top.append(item)
    return top, per_stage


def load_pipeline(path: str | Path | None, overrides: Iterable[str] = ()) -> ResolvedPipeline:
    """Read the experiment YAML, apply overrides, validate every stage and wire them together."""
    data = read_yaml(path) if path is not None else {}
    top, per_stage = route_overrides(overrides)
    cfg = build_config(PipelineConfig, data, top)
    for stage, extra in per_stage.items():
        if extra:
            spec = getattr(cfg, stage)
            setattr(cfg, stage, spec.model_copy(update={"overrides": [*spec.overrides, *extra]}))
    return resolve(cfg)


def stage_data(spec: StageSpec, stage: str) -> dict[str, Any]:
    """The stage's raw settings: file, then inline mapping, then overrides."""
    base = read_yaml(spec.config) if spec.config else {}
    merged = _deep_merge(base, spec.settings)
    try:
        return apply_overrides(merged, spec.overrides)
    except ConfigError as err:
        raise ConfigError(f"{stage}: {err}") from None


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(model: type[Any], data: dict[str, Any], stage: str) -> Any:
    try:
        return build_config(model, data)
    except ConfigError as err:
        raise ConfigError(f"{stage}: {err}") from None


def _hash(upstream: str, cfg: BaseModel, exclude: dict[str, Any]) -> str:
    """Hash of a stage config without its wiring fields, chained to the upstream stage's hash."""
    dumped = drop_neutral_defaults(cfg, cfg.model_dump(mode="json", exclude=exclude))
    blob = json.dumps({"upstream": upstream, "config": dumped}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def drop_neutral_defaults(cfg: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """`dumped` without the fields marked `hash_neutral` that are at their default, at any depth.

    Why: a field added to a config after experiments were run (with a default that keeps the old
    behaviour) must not change the hashes of configs that leave it alone; else every stage folder
    and cached run made before it would be orphaned and redone. Mark such fields with
    `Field(..., json_schema_extra={"hash_neutral": True})`.
    """
    for name, info in type(cfg).model_fields.items():
        if name not in dumped:
            continue
        value = getattr(cfg, name)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("hash_neutral") and value == info.default:
            dumped.pop(name)
        elif isinstance(value, BaseModel) and isinstance(dumped[name], dict):
            drop_neutral_defaults(value, dumped[name])
    return dumped


def resolve(cfg: PipelineConfig) -> ResolvedPipeline:
    """Typed stage configs with the pipeline's wiring (output folders by hash, paths between stages)."""
    root = Path(cfg.output_root) / cfg.name
    hashes: dict[str, str] = {}

    gen_data = stage_data(cfg.generate, "generate")
    gen = _build(GenerateConfig, gen_data, "generate")
    hashes["generate"] = _hash("", gen, {"output_dir": True, "workers": True, "row_group_size": True})
    data_dir = str(root / f"data-{hashes['generate']}")
    gen = gen.model_copy(update={"output_dir": data_dir})

    sft_data = stage_data(cfg.sft, "sft")
    sft_data = _deep_merge(sft_data, {"data": {"path": data_dir}})
    sft = _build(SFTConfig, sft_data, "sft")
    hashes["sft"] = _hash(hashes["generate"], sft, {"output_dir": True, "data": {"path"}, "tracking": True,
                                                    "resume": True})
    sft_dir = root / f"sft-{hashes['sft']}"
    sft = sft.model_copy(update={
        "output_dir": str(sft_dir),
        "tracking": sft.tracking.model_copy(update={"experiment": cfg.experiment}),
    })
    upstream = hashes["sft"]

    rl = None
    if cfg.rl.enabled:
        rl_data = _deep_merge(stage_data(cfg.rl, "rl"), {"init_checkpoint": str(sft_dir / "final"),
                                                          "dataset": data_dir})
        rl = _build(RLConfig, rl_data, "rl")
        hashes["rl"] = _hash(upstream, rl, {"init_checkpoint": True, "dataset": True, "output_dir": True,
                                            "progress": True})
        rl = rl.model_copy(update={"output_dir": str(root / f"rl-{hashes['rl']}")})
        upstream = hashes["rl"]

    ev_data = _deep_merge(stage_data(cfg.evaluate, "evaluate"), {"dataset": data_dir})
    ev = _build(EvalConfig, ev_data, "evaluate")
    hashes["evaluate"] = _hash(upstream, ev, {"checkpoint": True, "dataset": True, "output_dir": True,
                                              "parent_run_id": True, "experiment": True, "progress": True})
    ev = ev.model_copy(update={"output_dir": str(root / f"eval-{hashes['evaluate']}"),
                               "experiment": cfg.experiment, "checkpoint": str(sft_dir / "final")})
    return ResolvedPipeline(cfg, gen, sft, rl, ev, hashes)


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """A sampled sweep point as pipeline overrides (`sft.train.lr=0.001`), values as JSON (YAML-safe)."""
    return [f"{key}={json.dumps(value)}" for key, value in sorted(params.items())]
