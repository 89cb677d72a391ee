"""Trace generation without orchestration: rows for an index range, and one shard file per range.

Each row depends only on (config, split, index): the instance comes from `domain.make`, the strategy
and the search's randomness from an rng seeded by (seed, split, index). Shards are fixed index ranges
(`shard_size` problems each), so any number of workers, in any order, writes the same files.
`tasks/generate.py` runs `write_shard` on Ray; `workers=1` runs the same function in-process.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metacot_core import registry
from metacot_core.data.card import build_card, write_card
from metacot_core.data.config import GenerateConfig
from metacot_core.data.reader import shard_stats
from metacot_core.data.schema import COLUMNS, DatasetError, count_trace_tokens
from metacot_core.data.storage import shard_nodes
from metacot_core.data.writer import ShardWriter, remove_stale_temporaries, shard_name
from metacot_core.problems.base import row_fields


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """Problems [start, stop) of `split`, written to `<output_dir>/<split>/part-<shard>.parquet`."""

    split: str
    shard: int
    start: int
    stop: int

    def path(self, output_dir: str | Path) -> Path:
        return Path(output_dir) / self.split / shard_name(self.shard)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_shards(cfg: GenerateConfig) -> list[ShardSpec]:
    """Every shard of the job, split by split (in the config's order), index ranges of shard_size."""
    specs = []
    for split, count in cfg.counts.items():
        for shard, start in enumerate(range(0, count, cfg.shard_size)):
            specs.append(ShardSpec(split, shard, start, min(start + cfg.shard_size, count)))
    return specs


def checked_plan(cfg: GenerateConfig) -> list[ShardSpec]:
    """`plan_shards`, after refusing a folder that holds shard files this plan does not make (e.g. the
    counts were lowered) and clearing temporaries a killed run left."""
    specs = plan_shards(cfg)
    planned = {spec.path(cfg.output_dir).resolve() for spec in specs}
    root = Path(cfg.output_dir)
    for path in sorted(root.glob("*/part-*.parquet")):
        if path.resolve() not in planned:
            raise DatasetError(f"{path}: shard not in this generation plan (counts or shard_size "
                               "changed?); use a new output_dir or delete it")
    if root.exists():
        remove_stale_temporaries(root)
    return specs


def finish_dataset(cfg: GenerateConfig, shards: list[dict[str, Any]], seconds: float,
                   workers: int) -> dict[str, Any]:
    """Write the dataset card, with the run's figures (which node wrote each shard among them), once
    every shard is written; returns it. The content hash depends on the rows only."""
    written = [s for s in shards if not s["skipped"]]
    rows_written = sum(s["n_rows"] for s in written)
    nodes = shard_nodes(shards)
    run = {"seconds": round(seconds, 3), "shards": len(shards), "shards_resumed": len(shards) - len(written),
           "rows_written": rows_written, "traces_per_s": round(rows_written / seconds, 2) if seconds else 0.0,
           "workers": workers, "nodes": sorted(set(nodes.values())), "shard_nodes": nodes}
    card = build_card(cfg.output_dir, cfg.model_dump(mode="json"), {"generation": run})
    write_card(cfg.output_dir, card)
    return card


def index_rng(seed: int, split: str, index: int) -> random.Random:
    """An rng that depends only on (seed, split, index): the same on every worker and every run."""
    digest = hashlib.sha256(f"metacot/{seed}/{split}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def generate_shard(cfg: GenerateConfig, split: str, start: int, stop: int) -> Iterator[dict[str, Any]]:
    """Rows for problems start..stop-1 of `split`: one per format, each searched once.

    Unsolved searches are kept only when `keep_unsolved` (SoS trains on failed searches too). A domain
    adds its own columns through the problem's `row_fields` hook (after the schema's, see schema.py).
    `solved` comes from the problem's own verifier, the one judge the evaluator and reward also use.
    """
    domain = registry.get_domain(cfg.domain)
    problem_cfg = cfg.problem_config()
    mix = cfg.strategy_mix()
    formats = [(name, registry.get_format(name)) for name in cfg.formats]
    for index in range(start, stop):
        problem = domain.make(problem_cfg, split, index, cfg.seed)
        rng = index_rng(cfg.seed, split, index)
        strategy = mix.sample(rng)
        result = registry.get_search(strategy.algorithm)(problem, strategy, rng)
        solution = list(result.solution_text or [])
        solved = result.solved and problem.verify(solution)
        if not solved and not cfg.keep_unsolved:
            continue
        instance = json.dumps(problem.to_instance(), sort_keys=True)
        extra = row_fields(problem)  # the domain's own columns (Sokoban: optimal_length); usually none
        if clash := sorted(set(extra) & set(COLUMNS)):
            raise DatasetError(f"{cfg.domain}: row_fields names schema columns {', '.join(clash)}")
        for name, fmt in formats:
            trace = fmt.linearize(problem, result)
            yield {
                "problem_id": f"{cfg.domain}/{split}/{index:06d}",
                "domain": cfg.domain,
                "split": split,
                "instance": instance,
                "prompt": fmt.prompt(problem),
                "trace": trace,
                "format": name,
                "algorithm": strategy.algorithm,
                "solved": solved,
                "solution": solution,
                "n_expanded": int(result.n_expanded),
                "n_trace_tokens": count_trace_tokens(trace),
                "seed": cfg.seed,
                "index": index,
                "strategy": strategy.label,
                "n_trace_chars": len(trace),
                **extra,
            }


def shard_meta(cfg: GenerateConfig, spec: ShardSpec) -> dict[str, Any]:
    """What identifies a finished shard: its plan coordinates and the content-relevant config."""
    return {**spec.to_dict(), "config_hash": cfg.content_hash()}


def finished_shard(cfg: GenerateConfig, spec: ShardSpec) -> dict[str, Any] | None:
    """The stats of a shard already written by this same job (resume), else None.

    A finished shard from a different config or index range is an error: silently mixing two
    configs in one folder would give a dataset that no config describes.
    """
    path = spec.path(cfg.output_dir)
    if not path.is_file():
        return None
    stats = shard_stats(path)
    want = shard_meta(cfg, spec)
    if stats is None or any(stats.get(k) != v for k, v in want.items()):
        raise DatasetError(f"{path}: shard from another generation config or index range; "
                           "use a new output_dir or delete this folder")
    return stats


def write_shard(cfg: GenerateConfig, spec: ShardSpec) -> dict[str, Any]:
    """Write one shard (or reuse it if already finished); returns its footer stats."""
    done = finished_shard(cfg, spec)
    if done is not None:
        return {**done, "skipped": True}
    with ShardWriter(spec.path(cfg.output_dir), cfg.row_group_size, shard_meta(cfg, spec)) as writer:
        for row in generate_shard(cfg, spec.split, spec.start, spec.stop):
            writer.write(row)
    return {**writer.stats(), "skipped": False}


def write_shard_from_dicts(cfg_data: dict[str, Any], spec_data: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point (plain data in and out): rebuild the config, importing any plugin modules
    in this process, and write the shard. Lives here so a Ray worker imports only the core."""
    return write_shard(GenerateConfig.model_validate(cfg_data), ShardSpec(**spec_data))
