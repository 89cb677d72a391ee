"""GenerateConfig: what trace dataset to make (domain, problems, search mix, formats, counts, seed).

Loaded with `metacot_core.config.load_config(GenerateConfig, "configs/countdown/generate-cpu.yaml",
["search.node_budget=500", "counts.train=100"])`; a bad value raises ConfigError naming the field.

`search` takes one of three shapes:
  {preset: sos, node_budget: 10000}          Stream of Search's DFS/beam mix (the countdown default)
  {strategies: [{algorithm: dfs, ...}, ...]}  an explicit StrategyMix
  {algorithm: astar, node_budget: 5000}       a single SearchConfig
The preset keeps `search.node_budget=...` a valid one-line override.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from metacot_core import registry
from metacot_core.config import OutputDir
from metacot_core.search.config import SearchConfig, StrategyMix, sos_mix


class SearchPreset(BaseModel):
    """A named strategy mix with one node budget shared by all its strategies."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["sos"] = Field("sos", description="sos: DFS or beam b=1..5, sum or mult heuristic")
    node_budget: int = Field(10_000, ge=1, description="max nodes expanded per search")

    def mix(self) -> StrategyMix:
        return sos_mix(self.node_budget)


def _search_kind(value: Any) -> str:
    if isinstance(value, BaseModel):
        return {SearchPreset: "preset", StrategyMix: "mix"}.get(type(value), "single")
    if isinstance(value, dict):
        if "preset" in value:
            return "preset"
        if "strategies" in value:
            return "mix"
    return "single"


SearchSpec = Annotated[
    Annotated[SearchPreset, Tag("preset")] | Annotated[StrategyMix, Tag("mix")]
    | Annotated[SearchConfig, Tag("single")],
    Discriminator(_search_kind),
]


def import_plugins(modules: list[str]) -> None:
    """Import plugin modules (they call registry.register_*) in this process.

    Ray workers run this too, so a plugin registered by import works on every worker.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ValueError(f"cannot import plugin module {name!r}: {err}") from None


class GenerateConfig(BaseModel):
    """One trace-generation job. Fields that do not change the rows (workers, output_dir) stay out of
    `content_hash`, so resuming with more workers reuses finished shards."""

    model_config = ConfigDict(extra="forbid")

    plugins: list[str] = Field(default_factory=list, description="modules to import first (plugins)")
    domain: str = Field("countdown", description="registered domain name")
    problem: dict[str, Any] = Field(default_factory=dict, description="the domain's problem config")
    search: SearchSpec = Field(default_factory=SearchPreset, description="preset, mix or single strategy")
    format: str | list[str] = Field("sos", description="trace format name, or a list: one row per format")
    counts: dict[str, int] = Field(default_factory=lambda: {"train": 1000},
                                   description="problems per split (rows = problems x formats)")
    seed: int = Field(0, description="base seed; each (split, index) derives its own")
    shard_size: int = Field(1000, ge=1, description="problems per shard file (index ranges)")
    row_group_size: int = Field(256, ge=1, description="rows per Parquet row group")
    output_dir: OutputDir = Field("data_out/countdown", description="dataset folder")
    workers: int = Field(0, ge=0, description="0: Ray decides (all cores); 1: in-process, no Ray")
    keep_unsolved: bool = Field(True, description="keep traces whose search failed (SoS does)")

    _problem_cfg: BaseModel | None = PrivateAttr(None)

    @field_validator("plugins")
    @classmethod
    def _import(cls, value: list[str]) -> list[str]:
        import_plugins(value)
        return value

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, value: str) -> str:
        known = registry.names("domains")
        if value not in known:
            raise ValueError(f"unknown domain {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("problem")
    @classmethod
    def _problem_fits_domain(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        domain = _load_domain(info.data.get("domain"))
        if domain is None:
            return value
        try:
            parsed = domain.config_cls.model_validate(value)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            raise ValueError(f"{loc}: {msg}" if loc else msg) from None
        return parsed.model_dump(mode="json")

    @field_validator("format")
    @classmethod
    def _known_formats(cls, value: str | list[str], info: ValidationInfo) -> str | list[str]:
        names = [value] if isinstance(value, str) else list(value)
        if not names:
            raise ValueError("give at least one format")
        if len(set(names)) != len(names):
            raise ValueError(f"format listed twice in {names}")
        known = registry.names("formats")
        domain = info.data.get("domain")
        for name in names:
            if name not in known:
                raise ValueError(f"unknown format {name!r}; known: {', '.join(known)}")
            fmt = _load(registry.get_format, name, "format")
            supported = getattr(fmt, "domains", ())
            spoken = getattr(_load_domain(domain), "formats", ())  # a new domain names the formats it speaks
            if domain and supported and domain not in supported and name not in spoken:
                raise ValueError(f"format {name!r} does not support domain {domain!r} "
                                 f"(it supports: {', '.join(supported)})")
        return value

    @field_validator("counts")
    @classmethod
    def _counts(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        domain = _load_domain(info.data.get("domain"))
        splits = tuple(getattr(domain, "splits", ())) if domain is not None else ()
        for split, n in value.items():
            if n < 0:
                raise ValueError(f"{split}: count must be >= 0, got {n}")
            if splits and split not in splits:
                raise ValueError(f"unknown split {split!r} for {info.data['domain']}; "
                                 f"known: {', '.join(splits)}")
        if sum(value.values()) <= 0:
            raise ValueError("ask for at least one problem in some split")
        return value

    @model_validator(mode="after")
    def _search_algorithms_exist(self) -> GenerateConfig:
        known = registry.names("search")
        for strategy in self.strategy_mix().strategies:
            if strategy.algorithm not in known:
                raise ValueError(f"search: algorithm {strategy.algorithm!r} is not registered")
        return self

    @property
    def formats(self) -> list[str]:
        return [self.format] if isinstance(self.format, str) else list(self.format)

    def strategy_mix(self) -> StrategyMix:
        """The mix each problem draws its strategy from (a single strategy is a mix of one)."""
        if isinstance(self.search, SearchPreset):
            return self.search.mix()
        if isinstance(self.search, StrategyMix):
            return self.search
        return StrategyMix(strategies=[self.search])

    def problem_config(self) -> BaseModel:
        """The domain's typed problem config (validated once, then cached)."""
        if self._problem_cfg is None:
            self._problem_cfg = registry.get_domain(self.domain).config_cls.model_validate(self.problem)
        return self._problem_cfg

    def content_hash(self) -> str:
        """Hash of every field that changes the rows of a shard (not workers, output_dir, counts)."""
        keep = self.model_dump(mode="json", exclude={"workers", "output_dir", "counts", "row_group_size"})
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _load(getter: Any, name: str, what: str) -> Any:
    try:
        return getter(name)
    except ImportError as err:
        raise ValueError(f"{what} {name!r} is registered but cannot be imported: {err}") from None


def _load_domain(name: str | None) -> Any:
    return None if name is None else _load(registry.get_domain, name, "domain")
