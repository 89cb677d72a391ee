"""Parquet trace datasets: streaming write, filtered read, card, content hash, bad files."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacot_core.data.card import build_card, read_card, write_card
from metacot_core.data.reader import (
    count_rows,
    iter_batches,
    iter_rows,
    open_dataset,
    recompute_content_hash,
    shard_stats,
)
from metacot_core.data.schema import (
    CANONICAL_COLUMNS,
    TRACE_SCHEMA,
    DatasetError,
    count_trace_tokens,
    normalize_row,
)
from metacot_core.data.writer import ShardWriter, remove_stale_temporaries, write_split


def make_row(i: int, split: str = "train", fmt: str = "sos", algorithm: str = "dfs") -> dict:
    trace = " ".join(["step"] * (i + 1))  # i + 1 tokens, 5 * (i + 1) - 1 chars
    return {
        "problem_id": f"toy/{split}/{i:06d}", "domain": "toy", "split": split,
        "instance": {"target": i}, "prompt": f"reach {i}:", "trace": trace, "format": fmt,
        "algorithm": algorithm, "solved": i % 2 == 0, "solution": [f"{i}"] if i % 2 == 0 else [],
        "n_expanded": i * 10, "n_trace_tokens": count_trace_tokens(trace), "seed": 7, "index": i,
    }


def write_rows(root, rows, split="train", shard_size=1000, row_group_size=256):
    return write_split(root, split, rows, shard_size=shard_size, row_group_size=row_group_size)


def test_round_trip_keeps_every_canonical_column(tmp_path):
    rows = [make_row(i) for i in range(5)]
    write_rows(tmp_path, rows)
    back = list(iter_rows(tmp_path))
    assert [r["problem_id"] for r in back] == [r["problem_id"] for r in rows]
    first = back[0]
    assert set(CANONICAL_COLUMNS) <= set(first)
    assert json.loads(first["instance"]) == {"target": 0}
    assert first["solution"] == ["0"] and first["solved"] is True
    assert first["strategy"] == "dfs"  # extra column derived from algorithm when absent
    assert first["n_trace_chars"] == len(first["trace"])
    assert pq.read_schema(tmp_path / "train" / "part-00000.parquet").metadata[b"metacot.dataset"]


def test_row_groups_are_bounded_and_shards_split_by_rows(tmp_path):
    write_rows(tmp_path, [make_row(i) for i in range(25)], shard_size=10, row_group_size=4)
    files = sorted((tmp_path / "train").glob("*.parquet"))
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    meta = pq.read_metadata(files[0])
    assert meta.num_rows == 10 and meta.num_row_groups == 3  # 4 + 4 + 2
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 4
    assert shard_stats(files[2])["n_rows"] == 5


def test_filters_select_rows(tmp_path):
    rows = [make_row(i, fmt="sos" if i < 6 else "solution", algorithm="dfs" if i % 3 else "beam")
            for i in range(10)]
    write_rows(tmp_path, rows)
    write_rows(tmp_path, [make_row(i, split="val_target") for i in range(3)], split="val_target")
    assert count_rows(tmp_path) == 13
    assert count_rows(tmp_path, split="val_target") == 3
    assert count_rows(tmp_path, split=["train", "val_target"]) == 13
    assert {r["index"] for r in iter_rows(tmp_path, split="train", solved=True)} == {0, 2, 4, 6, 8}
    assert {r["index"] for r in iter_rows(tmp_path, format="solution")} == {6, 7, 8, 9}
    assert {r["index"] for r in iter_rows(tmp_path, split="train", algorithm="beam")} == {0, 3, 6, 9}
    # trace i has i + 1 tokens
    assert {r["index"] for r in iter_rows(tmp_path, split="train", max_tokens=3)} == {0, 1, 2}


def test_reading_is_streamed_in_batches(tmp_path):
    write_rows(tmp_path, [make_row(i) for i in range(50)], row_group_size=8)
    batches = list(iter_batches(tmp_path, columns=["index", "solved"], batch_size=8))
    assert len(batches) >= 7 and all(b.num_rows <= 8 for b in batches)
    assert batches[0].schema.names == ["index", "solved"]
    with pytest.raises(DatasetError, match="unknown columns nope"):
        list(iter_batches(tmp_path, columns=["nope"]))


def test_card_counts_and_percentiles(tmp_path):
    rows = [make_row(i) for i in range(10)] + [make_row(i, split="val_target", algorithm="beam")
                                                 for i in range(4)]
    write_rows(tmp_path, rows[:10])
    write_rows(tmp_path, rows[10:], split="val_target")
    card = build_card(tmp_path, {"seed": 7})
    assert card["n_rows"] == 14
    assert card["splits"]["train"] == {"rows": 10, "solved": 5, "solved_rate": 0.5}
    assert card["splits"]["val_target"] == {"rows": 4, "solved": 2, "solved_rate": 0.5}
    assert card["algorithms"] == {"beam": 4, "dfs": 10}
    # tokens: train 1..10, val 1..4 -> 14 values; min 1, max 10; median of
    # [1,1,2,2,3,3,4,4,5,6,7,8,9,10] = (4 + 4) / 2 = 4
    assert card["trace_tokens"]["min"] == 1 and card["trace_tokens"]["max"] == 10
    assert card["trace_tokens"]["p50"] == 4.0
    assert card["trace_chars"]["max"] == 49  # 10 * "step" + 9 spaces
    assert card["n_expanded"]["max"] == 90
    assert card["config"] == {"seed": 7}
    write_card(tmp_path, card)
    assert read_card(tmp_path) == card


def test_content_hash_ignores_shard_boundaries_and_order(tmp_path):
    rows = [make_row(i) for i in range(23)]
    write_rows(tmp_path / "a", rows, shard_size=5, row_group_size=2)
    write_rows(tmp_path / "b", rows, shard_size=100)
    write_rows(tmp_path / "c", list(reversed(rows)), shard_size=7)
    hashes = {build_card(tmp_path / name)["content_hash"] for name in "abc"}
    assert len(hashes) == 1
    assert recompute_content_hash(tmp_path / "a") == hashes.pop()


def test_content_hash_changes_with_one_field(tmp_path):
    rows = [make_row(i) for i in range(6)]
    write_rows(tmp_path / "a", rows)
    rows[3] = {**rows[3], "trace": rows[3]["trace"] + " step"}
    write_rows(tmp_path / "b", rows)
    assert build_card(tmp_path / "a")["content_hash"] != build_card(tmp_path / "b")["content_hash"]


def test_failed_write_leaves_no_shard(tmp_path):
    path = tmp_path / "train" / "part-00000.parquet"
    with pytest.raises(RuntimeError), ShardWriter(path, row_group_size=2) as writer:
        for i in range(5):
            writer.write(make_row(i))
        raise RuntimeError("worker died")
    assert not path.exists()
    assert list((tmp_path / "train").iterdir()) == []


def test_leftover_temporaries_are_ignored_and_removed(tmp_path):
    write_rows(tmp_path, [make_row(i) for i in range(3)])
    stale = tmp_path / "train" / "part-00001.parquet.tmp-123-abc"
    stale.write_bytes(b"half a shard")
    assert count_rows(tmp_path) == 3
    assert remove_stale_temporaries(tmp_path) == 1 and not stale.exists()


def test_missing_canonical_column_is_named(tmp_path):
    row = make_row(0)
    del row["trace"], row["seed"]
    with pytest.raises(DatasetError, match="missing canonical columns trace, seed"):
        normalize_row(row)


def test_random_bytes_file_is_a_clear_error(tmp_path):
    write_rows(tmp_path, [make_row(0)])
    bad = tmp_path / "train" / "part-00009.parquet"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DatasetError, match=r"part-00009\.parquet: not a readable Parquet file"):
        list(iter_rows(tmp_path))


def test_foreign_parquet_is_a_clear_error(tmp_path):
    (tmp_path / "x").mkdir()
    pq.write_table(pa.table({"text": ["hello"], "label": [1]}), tmp_path / "x" / "data.parquet")
    with pytest.raises(DatasetError, match=r"data\.parquet: not a metacot trace dataset \(missing columns: "
                                           r"problem_id, domain"):
        open_dataset(tmp_path)


def test_right_columns_without_marker_or_wrong_type(tmp_path):
    row = normalize_row(make_row(0))
    plain = TRACE_SCHEMA.with_metadata({})
    pq.write_table(pa.Table.from_pylist([row], schema=plain), tmp_path / "a.parquet")
    with pytest.raises(DatasetError, match="without the metacot.dataset marker"):
        open_dataset(tmp_path / "a.parquet")
    wrong = pa.table({**{c: [row[c]] for c in CANONICAL_COLUMNS}, "n_expanded": ["many"]})
    pq.write_table(wrong, tmp_path / "b.parquet")
    with pytest.raises(DatasetError, match="column n_expanded has type string, expected int64"):
        open_dataset(tmp_path / "b.parquet")


def test_missing_folder_and_card(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no .parquet files"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no dataset card"):
        read_card(tmp_path)


def test_extra_columns_round_trip_and_hash(tmp_path):
    rows = [{**make_row(i), "valid": i != 3, "sos_rating": i / 10} for i in range(7)]
    write_rows(tmp_path / "a", rows, row_group_size=3)
    back = list(iter_rows(tmp_path / "a"))
    assert [r["valid"] for r in back] == [True, True, True, False, True, True, True]
    assert back[2]["sos_rating"] == 0.2
    assert count_rows(tmp_path / "a", split="train") == 7
    card = build_card(tmp_path / "a")
    assert card["content_hash"] == recompute_content_hash(tmp_path / "a")
    write_rows(tmp_path / "b", [make_row(i) for i in range(7)])
    assert build_card(tmp_path / "b")["content_hash"] != card["content_hash"]


def test_extra_column_appearing_late_is_refused(tmp_path):
    rows = [make_row(0), make_row(1), {**make_row(2), "late": 1}]
    with pytest.raises(DatasetError, match="column\\(s\\) late appeared after the first row group"):
        write_rows(tmp_path, rows, row_group_size=2)
    assert not list(tmp_path.rglob("*.parquet*"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Current State: 13:[43, 15], Operations: ['4-1=3']\n#_\t\x1f")
                                         + ["é", "٣", "\u2003"]), max_size=200))
def test_fast_token_count_equals_the_regex_count(text):
    """The byte-class count is an optimisation of the regex; both must give the same length statistic."""
    from metacot_core.data.schema import _TOKEN_RE

    assert count_trace_tokens(text) == len(_TOKEN_RE.findall(text))
