"""The experiment config: several pipeline runs (arms, optionally crossed with a grid) compared in one
results table.

    exp = load_experiment("configs/countdown/sos-vs-solution-cpu.yaml", ["sft.train.max_steps=50"])
    [arm.pipeline.config.name for arm in exp.arms]   # ['sos-vs-solution-cpu-search', ...]

An experiment names a base pipeline YAML (metacot_core.pipeline.config), overrides applied to every
arm, and per arm the pipeline overrides that make it that arm:

    base: configs/countdown/pipeline-cpu.yaml
    arms:
      search: [generate.format=sos]
      solution: [generate.format=solution]
    grid:                                   # optional: every arm at every grid point
      sft.train.max_steps: [100, 300]
      generate.problem.num_count: [3, 4]

Every arm (x grid point) is resolved into a typed, wired pipeline when the experiment is loaded, so a
typo in any arm fails before the first arm starts. The experiment owns three pipeline fields: `name`
(`<experiment name>-<arm>[-<grid point>]`), `experiment` (the MLflow experiment) and `output_root`
(`<output_dir>/<name>/arms`); arms and grid keys may not set them.

Order of overrides inside an arm: the experiment's `overrides`, the SFT run name
(`sft-<pipeline name>`), the arm's, the grid point's, the command line's, then the three owned fields.
Command-line overrides whose first key is an experiment field (`name`, `experiment`, `output_dir`,
`base`, `description`, or a whole `grid={...}` / `arms={...}`) change the experiment itself.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from metacot_core.config import ConfigError, OutputDir, build_config, parse_override, read_yaml
from metacot_core.pipeline.config import ResolvedPipeline, load_pipeline, trial_overrides

NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
# Pipeline fields the experiment sets for every arm (an arm setting them would be silently overwritten).
OWNED = ("name", "experiment", "output_root")
# Command-line overrides with these first keys change the experiment, not the arms.
EXPERIMENT_KEYS = ("name", "experiment", "output_dir", "base", "description", "grid", "arms", "tune")


class ExperimentConfig(BaseModel):
    """Arms of one comparison, all run from one base pipeline config."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=NAME_PATTERN, description="experiment name (folders, MLflow run)")
    description: str = Field("", description="what the experiment compares (shown in results.md)")
    experiment: str = Field("metacot", description="MLflow experiment of every run")
    base: str = Field(..., description="pipeline YAML every arm starts from (relative to the working dir)")
    overrides: list[str] = Field(default_factory=list, description="pipeline overrides of every arm")
    arms: dict[str, list[str]] = Field(..., description="arm name -> pipeline overrides (key.sub=value)")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted pipeline key -> values; arms x every grid point")
    output_dir: OutputDir = Field("runs/experiments", description="results go to <output_dir>/<name>/")
    tune: dict[str, Any] | None = Field(
        None, description="settings of the runner that runs the arms as Ray Tune trials, read and checked "
        "by that runner (flows/experiment_tune.py); None: the arms run in sequence")

    @field_validator("overrides")
    @classmethod
    def _overrides_are_key_value(cls, value: list[str]) -> list[str]:
        _check_overrides(value)
        return value

    @field_validator("arms")
    @classmethod
    def _arms(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("give at least one arm")
        for arm, overrides in value.items():
            if not re.match(NAME_PATTERN, arm):
                raise ValueError(f"{arm!r}: arm names may hold only letters, digits, '.', '_' and '-'")
            try:
                _check_overrides(overrides)
            except ValueError as err:
                raise ValueError(f"{arm}: {err}") from None
        return value

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if key.split(".")[0] in OWNED:
                raise ValueError(f"{key}: the experiment sets {key.split('.')[0]!r} itself")
            if not values:
                raise ValueError(f"{key}: give at least one value")
            dumped = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(dumped)) != len(dumped):
                raise ValueError(f"{key}: a value is listed twice")
        return value

    @model_validator(mode="after")
    def _labels_unique(self) -> ExperimentConfig:
        labels = [label for _, label, _ in self.points()]
        seen: set[str] = set()
        for label in labels:
            if label in seen:
                raise ValueError(f"grid: two grid points get the same name {label!r}; give distinct values")
            seen.add(label)
        return self

    def points(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(arm, label, grid values) for every arm at every grid point, arms outermost."""
        keys = list(self.grid)
        combos = list(itertools.product(*(self.grid[k] for k in keys))) if keys else [()]
        out = []
        for arm in self.arms:
            for combo in combos:
                values = dict(zip(keys, combo, strict=True))
                slug = grid_slug(values)
                out.append((arm, f"{arm}-{slug}" if slug else arm, values))
        return out


def _check_overrides(items: Sequence[str]) -> None:
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r}: an override is a string key.sub=value")
        path, _ = parse_override(item)  # ConfigError (a ValueError) on a malformed one
        if path[0] in OWNED:
            raise ValueError(f"{item}: the experiment sets {path[0]!r} itself")


def _value_slug(value: Any) -> str:
    if isinstance(value, dict):
        return "-".join(f"{k}{_value_slug(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "+".join(_value_slug(v) for v in value)
    return str(value)


def grid_slug(values: dict[str, Any]) -> str:
    """A folder-safe name of a grid point: `max_steps100-num_count3` (last key part + value;
    `problem-width20-height20` for a mapping)."""
    parts = [f"{key.split('.')[-1]}{'-' if isinstance(v, dict | list) else ''}{_value_slug(v)}"
             for key, v in values.items()]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts))


@dataclass
class Arm:
    """One pipeline of the experiment: an arm at one grid point, resolved and wired."""

    arm: str
    label: str
    grid: dict[str, Any]
    overrides: list[str]
    pipeline: ResolvedPipeline


@dataclass
class ResolvedExperiment:
    config: ExperimentConfig
    arms: list[Arm]
    cli_overrides: list[str]

    @property
    def root(self) -> Path:
        return Path(self.config.output_dir) / self.config.name

    @property
    def key(self) -> str:
        """Hash of every arm's pipeline hash: names the experiment's MLflow run across re-runs."""
        blob = json.dumps({a.label: a.pipeline.key for a in self.arms}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def select(self, only: Iterable[str] | None) -> list[Arm]:
        """Arms named in `only` (an arm name takes all its grid points; a label takes one)."""
        wanted = list(only or [])
        if not wanted:
            return list(self.arms)
        known = {a.arm for a in self.arms} | {a.label for a in self.arms}
        for name in wanted:
            if name not in known:
                arms = ", ".join(dict.fromkeys(a.arm for a in self.arms))
                raise ConfigError(f"only: unknown arm {name!r}; arms: {arms}")
        return [a for a in self.arms if a.arm in wanted or a.label in wanted]


def split_overrides(overrides: Iterable[str]) -> tuple[list[str], list[str]]:
    """Command-line overrides -> (experiment-level, pipeline-level for every arm)."""
    top: list[str] = []
    arms: list[str] = []
    for item in overrides:
        key = item.partition("=")[0].strip()
        (top if key.split(".")[0] in EXPERIMENT_KEYS else arms).append(item)
    return top, arms


def arm_overrides(cfg: ExperimentConfig, arm: str, label: str, grid: dict[str, Any],
                  cli: Sequence[str]) -> list[str]:
    """The pipeline overrides that make one arm at one grid point (see the module docstring)."""
    owned = [f"name={cfg.name}-{label}", f"experiment={cfg.experiment}",
             f"output_root={Path(cfg.output_dir) / cfg.name / 'arms'}"]
    run_name = f"sft.tracking.run_name=sft-{cfg.name}-{label}"  # the SFT run's name in MLflow
    return [*cfg.overrides, run_name, *cfg.arms[arm], *trial_overrides(grid), *cli, *owned]


def resolve_experiment(cfg: ExperimentConfig, cli_overrides: Sequence[str] = ()) -> ResolvedExperiment:
    """Every arm at every grid point resolved into a pipeline; the first bad one raises ConfigError
    naming the arm (and grid point)."""
    arms = []
    for arm, label, grid in cfg.points():
        overrides = arm_overrides(cfg, arm, label, grid, cli_overrides)
        try:
            pipe = load_pipeline(cfg.base, overrides)
        except ConfigError as err:
            where = f"arms.{arm}" + (f" at {', '.join(trial_overrides(grid))}" if grid else "")
            raise ConfigError(f"{where}: {err}") from None
        arms.append(Arm(arm, label, grid, overrides, pipe))
    return ResolvedExperiment(cfg, arms, list(cli_overrides))


def load_experiment(path: str | Path, overrides: Iterable[str] = ()) -> ResolvedExperiment:
    """Read the experiment YAML, apply command-line overrides and resolve every arm (no side effects)."""
    top, per_arm = split_overrides(overrides)
    cfg = build_config(ExperimentConfig, read_yaml(path), top)
    return resolve_experiment(cfg, per_arm)
