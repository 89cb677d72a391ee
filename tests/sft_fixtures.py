"""Tiny trace datasets for the SFT tests, made from the Stream of Search reference fixture.

prompt = the first line of `search_path` (with its newline), trace = the rest; written as
`<root>/<split>/part-00000.parquet` with the canonical columns, so the SFT reader sees what the
dataset builder writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SOS_DIR = Path("/work/shared/data/sos")
if not SOS_DIR.is_dir():  # CI checkout: the fixture travels with the repo's shared folder
    SOS_DIR = Path(__file__).resolve().parents[1] / "shared" / "data" / "sos"


def sos_rows(
    file: str, split: str, limit: int | None = None, max_chars: int | None = None, key: str = "search_path"
) -> list[dict]:
    rows = []
    for i, line in enumerate((SOS_DIR / file).read_text().splitlines()):
        rec = json.loads(line)
        text = rec[key]
        if max_chars is not None and len(text) > max_chars:
            continue
        head, _, rest = text.partition("\n")
        solved = "Goal Reached" in text
        rows.append(
            {
                "problem_id": f"sos-{file.split('.')[0]}-{i}",
                "domain": "countdown",
                "split": split,
                "instance": json.dumps({"numbers": rec["nums"], "target": rec["target"]}),
                "prompt": head + "\n",
                "trace": rest,
                "format": "sos",
                "algorithm": rec["search_type"],
                "solved": solved,
                "solution": list(rec["solution"]),
                "n_expanded": 0,
                "n_trace_tokens": len(rest.split()),
                "seed": 4,
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows


def write_split(root: Path, split: str, rows: list[dict]) -> Path:
    path = root / split / "part-00000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def tiny_dataset(
    root: Path, n_train: int = 24, n_val: int = 8, max_chars: int = 1500, key: str = "search_path"
) -> Path:
    """A few short SoS traces per split (short so a 1M model trains on them in seconds)."""
    write_split(root, "train", sos_rows("train.jsonl", "train", n_train, max_chars, key))
    write_split(root, "val", sos_rows("val.jsonl", "val", n_val, max_chars, key))
    return root
