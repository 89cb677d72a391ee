"""Parquet trace rows -> token sequences with the prompt masked -> fixed-budget micro-batches.

A row becomes `<bos> prompt trace <eos>`; the model learns to predict the trace and EOS only (prompt
targets are -100). Inputs and targets are aligned here (targets[t] = ids[t+1]), so a packed row never
asks a trace to predict the first token of the next one.

Rows longer than the context are handled by `overflow`: `truncate` keeps the first seq_len positions,
`split` cuts the rest into further rows (Stream of Search's overflow rows; later pieces have no
prompt and are all trace), `drop` leaves the row out. Counts of each are returned as OverflowStats.

Two batchings with the same token budget per micro-batch (micro_batch_size x seq_len):
- pack: best-fit-decreasing bin packing of whole sequences into rows of seq_len; position ids restart
  at 0 for each sequence, from which transformers builds a block-diagonal causal mask, so attention
  never crosses documents (transformers does this only without a KV cache: forward with use_cache=False).
- bucket: sequences of similar length batched together and right-padded; no mask is needed (causal
  attention never looks right, so real tokens never see the padding).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import torch

from metacot_core.data.reader import broken_shard

IGNORE = -100
ROW_COLUMNS = ("problem_id", "prompt", "trace")


class DataError(ValueError):
    """Training data that cannot be used; the message names the dataset or row."""


# ---------------------------------------------------------------------------------------------- rows


def split_files(root: str | Path, split: str) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    files = sorted(p for p in (root / split).glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise DataError(
            f"{root}: no Parquet files for split {split!r} (expected {root}/{split}/part-*.parquet)"
        )
    return files


def read_rows(
    root: str | Path,
    split: str,
    solved: bool | None = None,
    formats: Sequence[str] | None = None,
    max_rows: int | None = None,
) -> list[dict[str, str]]:
    """problem_id, prompt and trace of every row of `split` that passes the filters, in file order."""
    files = split_files(root, split)
    dataset = ds.dataset([str(p) for p in files], format="parquet")
    missing = [c for c in ROW_COLUMNS if c not in dataset.schema.names]
    if missing:
        raise DataError(f"{root}/{split}: Parquet files lack column(s) {', '.join(missing)}")
    expr = None
    if solved is not None:
        expr = pc.field("solved") == solved
    if formats:
        cond = pc.field("format").isin(list(formats))
        expr = cond if expr is None else expr & cond
    rows: list[dict[str, str]] = []
    try:
        for batch in dataset.to_batches(columns=list(ROW_COLUMNS), filter=expr, use_threads=False):
            rows.extend(batch.to_pylist())
            if max_rows is not None and len(rows) >= max_rows:
                return rows[:max_rows]
    except (pa.ArrowException, OSError) as err:  # a corrupt page: pyarrow's error names no file
        raise broken_shard(files, err) from None
    if not rows:
        raise DataError(f"{root}/{split}: no rows left after filtering (solved={solved}, formats={formats})")
    return rows


def rows_hash(rows: Sequence[dict[str, str]]) -> str:
    """Content hash of the rows a run trains on (order included): its lineage in MLflow."""
    h = hashlib.sha256()
    for row in rows:
        for key in ROW_COLUMNS:
            h.update(str(row[key]).encode())
            h.update(b"\x00")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------- sequences


@dataclass(slots=True)
class Example:
    """One training sequence: inputs and aligned targets (-100 where no loss), same length."""

    input_ids: list[int]
    targets: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class OverflowStats:
    rows: int = 0
    fit: int = 0
    overflowing: int = 0
    truncated: int = 0
    split_rows: int = 0
    extra_pieces: int = 0
    dropped: int = 0
    tokens_lost: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def encode_row(tokenizer: Any, prompt: str, trace: str) -> tuple[list[int], int]:
    """(`<bos> prompt trace <eos>` ids, number of leading ids that get no loss: bos + prompt)."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    t = tokenizer(trace, add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id, *p, *t, tokenizer.eos_token_id], 1 + len(p)


ENCODE_CHUNK = 4096  # rows per batched tokenizer call: one call per row costs ~10x more in overhead


def encode_rows(tokenizer: Any, rows: Sequence[dict[str, str]]) -> Iterator[tuple[list[int], int]]:
    """`encode_row` for many rows, with prompts and traces encoded in batched tokenizer calls."""
    for start in range(0, len(rows), ENCODE_CHUNK):
        chunk = rows[start:start + ENCODE_CHUNK]
        prompts = tokenizer([r["prompt"] for r in chunk], add_special_tokens=False)["input_ids"]
        traces = tokenizer([r["trace"] for r in chunk], add_special_tokens=False)["input_ids"]
        for p, t in zip(prompts, traces, strict=True):
            yield [tokenizer.bos_token_id, *p, *t, tokenizer.eos_token_id], 1 + len(p)


def to_example(ids: list[int], n_masked: int) -> Example:
    """Aligned inputs/targets: target t is ids[t+1], masked while it is still the prompt."""
    targets = [tok if t + 1 >= n_masked else IGNORE for t, tok in enumerate(ids[1:])]
    return Example(ids[:-1], targets)


def make_examples(
    rows: Sequence[dict[str, str]], tokenizer: Any, seq_len: int, overflow: str
) -> tuple[list[Example], OverflowStats]:
    """Encode rows and apply the overflow policy; raises DataError when a prompt cannot fit."""
    stats = OverflowStats()
    out: list[Example] = []
    for row, (ids, n_masked) in zip(rows, encode_rows(tokenizer, rows), strict=True):
        stats.rows += 1
        if n_masked >= seq_len:
            raise DataError(
                f"row {row['problem_id']}: prompt is {n_masked} tokens with <bos>, the context "
                f"(seq_len {seq_len}) leaves no room for the trace"
            )
        ex = to_example(ids, n_masked)
        if len(ex) <= seq_len:
            stats.fit += 1
            out.append(ex)
            continue
        stats.overflowing += 1
        if overflow == "drop":
            stats.dropped += 1
            stats.tokens_lost += len(ex)
        elif overflow == "truncate":
            stats.truncated += 1
            stats.tokens_lost += len(ex) - seq_len
            out.append(Example(ex.input_ids[:seq_len], ex.targets[:seq_len]))
        elif overflow == "split":
            stats.split_rows += 1
            for start in range(0, len(ex), seq_len):
                out.append(
                    Example(ex.input_ids[start : start + seq_len], ex.targets[start : start + seq_len])
                )
                stats.extra_pieces += start > 0
        else:
            raise DataError(f"overflow: unknown policy {overflow!r} (truncate, split, drop)")
    if not out:
        raise DataError(
            f"no training sequences left: all {stats.rows} rows are longer than seq_len {seq_len} "
            f"and overflow is {overflow!r}"
        )
    return out, stats


# ----------------------------------------------------------------------------------------- batching


def pack_rows(lengths: Sequence[int], seq_len: int) -> list[list[int]]:
    """Best-fit-decreasing: example indices per row of capacity seq_len (deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted
    for i in order:
        n = lengths[i]
        pos = bisect.bisect_left(free, (n, -1))
        if pos < len(free):
            space, b = free.pop(pos)
        else:
            space, b = seq_len, len(bins)
            bins.append([])
        bins[b].append(i)
        if space - n > 0:
            bisect.insort(free, (space - n, b))
    return bins


def bucket_batches(
    lengths: Sequence[int], token_budget: int, rng: random.Random, window: int = 64
) -> list[list[int]]:
    """Shuffle, sort each window of ~window batches by length, cut batches under rows x max_len <=
    token_budget, shuffle the batches. Randomness stays (window), padding mostly goes."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    per_window = max(1, window * max(1, token_budget // max(1, max(lengths))))
    batches: list[list[int]] = []
    for w in range(0, len(order), per_window):
        chunk = sorted(order[w : w + per_window], key=lambda i: lengths[i])
        current: list[int] = []
        longest = 0
        for i in chunk:
            new_longest = max(longest, lengths[i])
            if current and new_longest * (len(current) + 1) > token_budget:
                batches.append(current)
                current, new_longest = [], lengths[i]
            current.append(i)
            longest = new_longest
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


@dataclass
class Batch:
    input_ids: torch.Tensor
    targets: torch.Tensor
    position_ids: torch.Tensor | None  # None: plain causal attention (bucketing)
    n_tokens: int  # real (non-pad) tokens
    n_targets: int  # tokens with a loss

    def to(self, device: torch.device) -> Batch:
        pos = None if self.position_ids is None else self.position_ids.to(device, non_blocking=True)
        return Batch(
            self.input_ids.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            pos,
            self.n_tokens,
            self.n_targets,
        )


def collate_packed(
    examples: Sequence[Example], rows: Sequence[Sequence[int]], seq_len: int, pad_id: int
) -> Batch:
    """Rows of packed examples, [len(rows), seq_len]; positions restart per example and for the pad tail."""
    ids = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)
    tgt = torch.full((len(rows), seq_len), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), seq_len), dtype=torch.long)
    n_tok = 0
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            ex = examples[i]
            n = len(ex)
            ids[r, at : at + n] = torch.tensor(ex.input_ids)
            tgt[r, at : at + n] = torch.tensor(ex.targets)
            pos[r, at : at + n] = torch.arange(n)
            at += n
        n_tok += at
        pos[r, at:] = torch.arange(seq_len - at)
    return Batch(ids, tgt, pos, n_tok, int((tgt != IGNORE).sum()))


def collate_padded(examples: Sequence[Example], members: Sequence[int], pad_id: int) -> Batch:
    """Right-padded rows, [len(members), longest]."""
    width = max(len(examples[i]) for i in members)
    ids = torch.full((len(members), width), pad_id, dtype=torch.long)
    tgt = torch.full((len(members), width), IGNORE, dtype=torch.long)
    n_tok = 0
    for r, i in enumerate(members):
        ex = examples[i]
        ids[r, : len(ex)] = torch.tensor(ex.input_ids)
        tgt[r, : len(ex)] = torch.tensor(ex.targets)
        n_tok += len(ex)
    return Batch(ids, tgt, None, n_tok, int((tgt != IGNORE).sum()))


@dataclass
class BatchPlan:
    """Which examples go in each micro-batch, epoch by epoch, for one worker (rank) of `world`.

    The plan is a pure function of (examples, batching, seed, epoch, rank, world), so a resumed run
    finds micro-batch number m again by recomputing, and the data position is a single integer.
    """

    examples: list[Example]
    seq_len: int
    micro_batch_size: int
    batching: str
    pad_id: int
    seed: int = 0
    rank: int = 0
    world: int = 1
    curriculum_epochs: float = 0.0
    _packed: list[list[int]] | None = field(default=None, repr=False)
    _epochs: dict[int, list[list[Any]]] = field(default_factory=dict, repr=False)

    def _global_epoch(self, epoch: int) -> list[list[Any]]:
        rng = random.Random(f"{self.seed}:{epoch}")
        lengths = [len(e) for e in self.examples]
        if self.batching == "pack":
            if self._packed is None:
                self._packed = pack_rows(lengths, self.seq_len)
            rows = list(self._packed)
            rng.shuffle(rows)
            size = self.micro_batch_size
            batches = [rows[i : i + size] for i in range(0, len(rows), size)]
        else:
            batches = bucket_batches(lengths, self.micro_batch_size * self.seq_len, rng)
        return short_to_long(batches, lengths, self.batching, epoch, self.curriculum_epochs)

    def epoch(self, epoch: int) -> list[list[Any]]:
        """This rank's micro-batches of `epoch` (every rank gets the same count)."""
        if epoch not in self._epochs:
            batches = self._global_epoch(epoch)
            per_rank = len(batches) // self.world
            if per_rank == 0:
                raise DataError(
                    f"{len(batches)} micro-batches per epoch cannot feed {self.world} workers; "
                    "use more data or a smaller micro_batch_size"
                )
            self._epochs[epoch] = batches[self.rank :: self.world][:per_rank]
            for old in sorted(k for k in self._epochs if k != epoch)[:-2]:
                self._epochs.pop(old)
        return self._epochs[epoch]

    def locate(self, index: int) -> tuple[int, int]:
        """Micro-batch number `index` (counted from the start of training) -> (epoch, index in epoch)."""
        epoch = 0
        while index >= len(self.epoch(epoch)):
            index -= len(self.epoch(epoch))
            epoch += 1
        return epoch, index

    def collate(self, spec: list[Any]) -> Batch:
        if self.batching == "pack":
            return collate_packed(self.examples, spec, self.seq_len, self.pad_id)
        return collate_padded(self.examples, spec, self.pad_id)

    def iterate(self, start: int = 0) -> Iterator[tuple[int, Batch]]:
        """(epoch, batch) from micro-batch number `start` on, forever (epochs reshuffle)."""
        epoch, i = self.locate(start)
        while True:
            specs = self.epoch(epoch)
            for spec in specs[i:]:
                yield epoch, self.collate(spec)
            epoch, i = epoch + 1, 0


def short_to_long(batches: list[list[Any]], lengths: Sequence[int], batching: str, epoch: int,
                  curriculum_epochs: float) -> list[list[Any]]:
    """The curriculum: during the first `curriculum_epochs` epochs, micro-batches in order of their
    longest example (stable, so ties keep the shuffled order); the shuffled order after that.

    Why: the ideas of issue 7 include a curriculum from short to long search traces (short traces
    are the easy searches, found after a few nodes). A fraction f < 1 orders the first f of epoch
    0 and leaves the rest shuffled; the epoch that crosses the boundary is ordered up to it.
    """
    if epoch >= curriculum_epochs:
        return batches
    share = min(1.0, curriculum_epochs - epoch)
    n_ordered = round(share * len(batches))

    def longest(batch: list[Any]) -> int:
        members = (i for row in batch for i in row) if batching == "pack" else iter(batch)
        return max((lengths[i] for i in members), default=0)

    head = sorted(batches[:n_ordered], key=longest)
    return head + batches[n_ordered:]


def padding_waste(plan: BatchPlan, epoch: int = 0) -> float:
    """Fraction of the token slots of one epoch's micro-batches that are padding."""
    slots = real = 0
    for spec in plan._global_epoch(epoch):
        if plan.batching == "pack":
            real += sum(len(plan.examples[i]) for row in spec for i in row)
            slots += len(spec) * plan.seq_len
        else:
            real += sum(len(plan.examples[i]) for i in spec)
            slots += len(spec) * max(len(plan.examples[i]) for i in spec)
    return 1.0 - real / slots if slots else 0.0
