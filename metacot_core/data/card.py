"""The dataset card (`card.json`): what a trace dataset holds, how it was made, and its content hash.

Built by scanning only the small numeric and label columns (never the traces) plus the shard
footers, so it costs seconds even for large datasets and works for any metacot dataset folder
(generated or imported).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from metacot_core.data.reader import iter_batches, iter_rows, shard_files, shard_stats
from metacot_core.data.schema import HASH_MOD, DatasetError, finish_hash, row_digest

CARD_NAME = "card.json"
PERCENTILES = (0.5, 0.9, 0.99)
_STAT_COLUMNS = ["split", "solved", "algorithm", "strategy", "format", "n_trace_tokens",
                 "n_trace_chars", "n_expanded"]


def _describe(values: list[pa.Array]) -> dict[str, float]:
    """min / mean / percentiles / max of an integer column (empty -> zeros)."""
    arr = pa.chunked_array(values, type=pa.int64()) if values else pa.chunked_array([], pa.int64())
    if len(arr) == 0:
        return {"min": 0, "mean": 0.0, **{f"p{int(q * 100)}": 0.0 for q in PERCENTILES}, "max": 0}
    quantiles = pc.quantile(arr, q=list(PERCENTILES), interpolation="linear").to_pylist()
    out: dict[str, float] = {"min": pc.min(arr).as_py(), "mean": round(pc.mean(arr).as_py(), 3)}
    out.update({f"p{int(q * 100)}": round(v, 3) for q, v in zip(PERCENTILES, quantiles, strict=True)})
    out["max"] = pc.max(arr).as_py()
    return out


def dataset_hash(root: str | Path) -> tuple[str, int]:
    """(content hash, rows) from the shard footers; shards without stats are hashed row by row."""
    total, n = 0, 0
    for path in shard_files(root):
        stats = shard_stats(path)
        if stats is None:
            for row in iter_rows(path):  # one file: read with its own columns
                total = (total + row_digest(row)) % HASH_MOD
                n += 1
        else:
            total = (total + int(stats["digest_sum"], 16)) % HASH_MOD
            n += int(stats["n_rows"])
    return finish_hash(total, n), n


def build_card(root: str | Path, config: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts per split, solved rate, length percentiles, n_expanded stats, mixes, config and hash."""
    splits: Counter[str] = Counter()
    solved_by_split: Counter[str] = Counter()
    algorithms: Counter[str] = Counter()
    strategies: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    tokens: list[pa.Array] = []
    chars: list[pa.Array] = []
    expanded: list[pa.Array] = []
    for batch in iter_batches(root, columns=_STAT_COLUMNS, batch_size=65_536):
        cols = batch.to_pydict()
        for split, solved in zip(cols["split"], cols["solved"], strict=True):
            splits[split] += 1
            solved_by_split[split] += solved
        algorithms.update(cols["algorithm"])
        strategies.update(cols["strategy"])
        formats.update(cols["format"])
        tokens.append(batch.column("n_trace_tokens"))
        chars.append(batch.column("n_trace_chars"))
        expanded.append(batch.column("n_expanded"))
    content_hash, n_rows = dataset_hash(root)
    total = sum(splits.values())
    if total != n_rows:
        raise DatasetError(f"{root}: shard footers count {n_rows} rows but the files hold {total}")
    card: dict[str, Any] = {
        "content_hash": content_hash,
        "n_rows": total,
        "n_shards": len(shard_files(root)),
        "splits": {s: {"rows": splits[s], "solved": solved_by_split[s],
                       "solved_rate": round(solved_by_split[s] / splits[s], 4)} for s in sorted(splits)},
        "solved_rate": round(sum(solved_by_split.values()) / total, 4) if total else 0.0,
        "trace_tokens": _describe(tokens),
        "trace_chars": _describe(chars),
        "n_expanded": _describe(expanded),
        "algorithms": dict(sorted(algorithms.items())),
        "strategies": dict(sorted(strategies.items())),
        "formats": dict(sorted(formats.items())),
        "config": config or {},
    }
    card.update(extra or {})
    return card


def write_card(root: str | Path, card: dict[str, Any]) -> Path:
    path = Path(root) / CARD_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_card(root: str | Path) -> dict[str, Any]:
    path = Path(root) / CARD_NAME
    if not path.is_file():
        raise DatasetError(f"{path}: no dataset card (run `metacot dataset-card {root} --rebuild`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: dataset card is not valid JSON ({err})") from None
