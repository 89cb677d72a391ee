"""Streaming Parquet shard writer: bounded row groups, running content hash, atomic finish.

A shard is written to a temporary name and renamed into place only after its footer (with the
shard's row count, digest sum and plan coordinates) is complete, so a killed worker never leaves a
half shard that a resumed run would mistake for a finished one.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from metacot_core.data.schema import (
    DATASET_KEY,
    DATASET_VERSION,
    HASH_MOD,
    TRACE_SCHEMA,
    DatasetError,
    extend_schema,
    finish_hash,
    normalize_row,
    row_digest,
)

SHARD_META_KEY = b"metacot.shard"
TMP_MARKER = ".tmp-"
# Flush a row group early when its text grows past this many characters (long SoS traces).
MAX_GROUP_CHARS = 64 * 1024 * 1024


def shard_name(shard_index: int) -> str:
    return f"part-{shard_index:05d}.parquet"


class ShardWriter:
    """Write normalized rows to one shard file, at most `row_group_size` rows per row group.

    Use as a context manager; on an exception the temporary file is removed and nothing appears
    at `path`. `meta` (JSON-able) is stored in the footer next to the shard's hash and stats.
    """

    def __init__(self, path: str | Path, row_group_size: int = 256, meta: dict[str, Any] | None = None,
                 compression: str = "zstd") -> None:
        self.path = Path(path)
        self.row_group_size = row_group_size
        self.meta = dict(meta or {})
        self.compression = compression
        self.n_rows = 0
        self.n_solved = 0
        self.digest_sum = 0
        self._buffer: list[dict[str, Any]] = []
        self._buffer_chars = 0
        self._tmp = self.path.with_name(f"{self.path.name}{TMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self._writer: pq.ParquetWriter | None = None
        self._schema = TRACE_SCHEMA

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        """The Parquet writer, created at the first row group (whose rows fix any extra columns)."""
        if self._writer is None:
            self._schema = schema
            self._writer = pq.ParquetWriter(self._tmp, schema, compression=self.compression)
        return self._writer

    def write(self, row: dict[str, Any]) -> None:
        row = normalize_row(row, where=str(self.path))
        self.n_rows += 1
        self.n_solved += row["solved"]
        self._buffer.append(row)
        self._buffer_chars += len(row["trace"]) + len(row["prompt"])
        if len(self._buffer) >= self.row_group_size or self._buffer_chars >= MAX_GROUP_CHARS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        writer = self._open(extend_schema(self._buffer, str(self.path)))
        unknown = sorted({k for row in self._buffer for k in row} - set(self._schema.names))
        if unknown:
            raise DatasetError(f"{self.path}: column(s) {', '.join(unknown)} appeared after the first "
                               "row group; every row of a shard must have the same extra columns")
        try:
            table = pa.Table.from_pylist(self._buffer, schema=self._schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise DatasetError(f"{self.path}: a row does not fit the shard's columns ({err})") from None
        # Hash rows as a reader will see them: with extra columns, after Arrow's conversion
        # (nulls for missing values, casts); the fixed columns are already exact after normalize_row.
        hashed = self._buffer if self._schema is TRACE_SCHEMA else table.to_pylist()
        for row in hashed:
            self.digest_sum = (self.digest_sum + row_digest(row)) % HASH_MOD
        writer.write_table(table, row_group_size=len(self._buffer))
        self._buffer = []
        self._buffer_chars = 0

    @property
    def content_hash(self) -> str:
        return finish_hash(self.digest_sum, self.n_rows)

    def stats(self) -> dict[str, Any]:
        """What the footer records about this shard (and what a resumed run reads back)."""
        return {**self.meta, "n_rows": self.n_rows, "n_solved": self.n_solved,
                "digest_sum": f"{self.digest_sum:064x}", "content_hash": self.content_hash,
                "file": self.path.name}

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._flush()
                self._open(TRACE_SCHEMA)  # a shard without rows still gets a valid file
                assert self._writer is not None
                self._writer.add_key_value_metadata(
                    {DATASET_KEY: DATASET_VERSION, SHARD_META_KEY: json.dumps(self.stats(), sort_keys=True)}
                )
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()


def remove_stale_temporaries(root: str | Path) -> int:
    """Delete temporary shard files left by killed workers under `root`; returns how many."""
    count = 0
    for path in Path(root).rglob(f"*{TMP_MARKER}*"):
        if path.is_file() and path.name.startswith("part-"):
            path.unlink(missing_ok=True)
            count += 1
    return count


def write_split(root: str | Path, split: str, rows: Iterable[dict[str, Any]], shard_size: int = 1000,
                row_group_size: int = 256, meta: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Stream `rows` of one split into shards of `shard_size` rows under `<root>/<split>/`.

    For rows that come from outside the generator (imports): shards are consecutive row ranges, so
    the same input gives the same files. Returns each shard's stats.
    """
    stats: list[dict[str, Any]] = []
    iterator = iter(rows)
    shard = 0
    while True:
        first = next(iterator, None)
        if first is None:
            return stats
        start = shard * shard_size
        shard_meta = {**(meta or {}), "split": split, "shard": shard, "start": start}
        with ShardWriter(Path(root) / split / shard_name(shard), row_group_size, shard_meta) as writer:
            writer.write(first)
            for row in itertools.islice(iterator, shard_size - 1):
                writer.write(row)
        stats.append(writer.stats())
        shard += 1
