"""Streaming, filtered reads of a trace dataset folder (`<root>/<split>/part-*.parquet`).

Every file's footer is checked before any row is read, so random bytes or a Parquet file with
other columns fail with a DatasetError naming the file, not with an Arrow error deep in training.
Rows come out batch by batch (`iter_batches`), never the whole dataset at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from metacot_core.data.schema import (
    DATASET_KEY,
    HASH_MOD,
    TRACE_SCHEMA,
    DatasetError,
    check_schema,
    finish_hash,
    row_digest,
)
from metacot_core.data.writer import SHARD_META_KEY, TMP_MARKER


def shard_files(root: str | Path) -> list[Path]:
    """The finished shard files under `root`, sorted by split then name (temporaries ignored)."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    files = sorted(p for p in root.rglob("*.parquet") if TMP_MARKER not in p.name)
    if not files:
        raise DatasetError(f"{root}: no .parquet files in this folder")
    return files


def read_footer(path: str | Path) -> dict[bytes, bytes]:
    """The file's key-value metadata after checking it is a metacot trace shard."""
    path = Path(path)
    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"{path}: not a readable Parquet file ({err})") from None
    check_schema(schema, str(path))
    kv = dict(meta.metadata or {})
    if DATASET_KEY not in kv and DATASET_KEY not in (schema.metadata or {}):
        raise DatasetError(f"{path}: Parquet file without the {DATASET_KEY.decode()} marker "
                           "(not written by metacot)")
    return kv


def shard_stats(path: str | Path) -> dict[str, Any] | None:
    """The stats the writer stored in a shard's footer (None for a valid file without them)."""
    raw = read_footer(path).get(SHARD_META_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise DatasetError(f"{path}: shard metadata is not valid JSON") from None


def broken_shard(files: Sequence[Path], err: Exception) -> DatasetError:
    """The error of a scan that failed, naming the shard: pyarrow's decompression and decoding errors
    ("ZSTD decompression failed") name no file, so each one is read again to find it (error path only)."""
    for path in files:
        try:
            pq.read_table(path)
        except (pa.ArrowException, OSError) as file_err:
            reason = (str(file_err).strip().splitlines() or [type(file_err).__name__])[0]
            return DatasetError(f"{path}: corrupt Parquet shard ({reason})")
    folders = sorted({str(Path(p).parent) for p in files})
    return DatasetError(f"{', '.join(folders)}: cannot read the Parquet shards ({err})")


def open_dataset(root: str | Path) -> ds.Dataset:
    """A pyarrow Dataset over every checked shard under `root`.

    Its schema is TRACE_SCHEMA plus the union of the shards' extra columns (null where a shard
    lacks one); shards whose extra columns disagree in type are an error naming the folder.
    """
    files = shard_files(root)
    schemas = []
    for path in files:
        read_footer(path)
        schemas.append(pq.read_schema(path))
    try:
        schema = pa.unify_schemas([TRACE_SCHEMA, *schemas])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DatasetError(f"{root}: shards disagree on column types ({err})") from None
    return ds.dataset([str(p) for p in files], format="parquet", schema=schema)


def build_filter(split: str | Sequence[str] | None = None, solved: bool | None = None,
                 format: str | None = None, algorithm: str | None = None,
                 max_tokens: int | None = None) -> ds.Expression | None:
    """A pyarrow filter expression from the usual selections (None means no condition)."""
    parts: list[ds.Expression] = []
    if split is not None:
        splits = [split] if isinstance(split, str) else list(split)
        parts.append(pc.field("split").isin(splits))
    if solved is not None:
        parts.append(pc.field("solved") == solved)
    if format is not None:
        parts.append(pc.field("format") == format)
    if algorithm is not None:
        parts.append(pc.field("algorithm") == algorithm)
    if max_tokens is not None:
        parts.append(pc.field("n_trace_tokens") <= max_tokens)
    expr = None
    for part in parts:
        expr = part if expr is None else expr & part
    return expr


def iter_batches(root: str | Path, columns: Sequence[str] | None = None, batch_size: int = 1024,
                 **filters: Any) -> Iterator[pa.RecordBatch]:
    """Record batches in file order, filtered (split, solved, format, algorithm, max_tokens)."""
    dataset = open_dataset(root)
    if columns is not None:
        unknown = [c for c in columns if c not in dataset.schema.names]
        if unknown:
            raise DatasetError(f"{root}: unknown columns {', '.join(unknown)}")
    scanner = dataset.scanner(columns=list(columns) if columns else None, filter=build_filter(**filters),
                              batch_size=batch_size, use_threads=False)
    try:
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield batch
    except (pa.ArrowException, OSError) as err:
        raise broken_shard([Path(f) for f in dataset.files], err) from None


def iter_rows(root: str | Path, columns: Sequence[str] | None = None, batch_size: int = 1024,
              **filters: Any) -> Iterator[dict[str, Any]]:
    """Rows as dicts, streamed batch by batch."""
    for batch in iter_batches(root, columns=columns, batch_size=batch_size, **filters):
        yield from batch.to_pylist()


def count_rows(root: str | Path, **filters: Any) -> int:
    return open_dataset(root).count_rows(filter=build_filter(**filters))


def recompute_content_hash(root: str | Path) -> str:
    """The content hash recomputed from every row (slow; checks files against their card).

    Each file is read with its own columns, as its writer hashed it.
    """
    total, n = 0, 0
    for path in shard_files(root):
        read_footer(path)
        try:
            batches = list(pq.ParquetFile(path).iter_batches(batch_size=1024))
        except (pa.ArrowException, OSError) as err:
            raise broken_shard([path], err) from None
        for batch in batches:
            for row in batch.to_pylist():
                total = (total + row_digest(row)) % HASH_MOD
                n += 1
    return finish_hash(total, n)
