"""SFT data: prompt masking, overflow policies, packing without cross-document attention, errors."""

from __future__ import annotations

import pytest
import torch
from sft_fixtures import sos_rows, tiny_dataset, write_split

from metacot_core.models import ModelConfig, build_model
from metacot_core.tokenizer import build_tokenizer, encode
from metacot_core.training.data import (
    IGNORE,
    BatchPlan,
    DataError,
    collate_packed,
    collate_padded,
    encode_row,
    make_examples,
    pack_rows,
    padding_waste,
    read_rows,
)
from metacot_core.training.sft import loss_sum


@pytest.fixture(scope="module")
def rows():
    return sos_rows("train.jsonl", "train", limit=60, max_chars=3000)


@pytest.fixture(scope="module")
def tok(rows):
    return build_tokenizer(r[k] for r in rows for k in ("prompt", "trace"))


def test_prompt_positions_get_no_loss(rows, tok):
    row = rows[0]
    n_prompt = len(encode(tok, row["prompt"]))
    n_trace = len(encode(tok, row["trace"]))
    (ex,), _ = make_examples([row], tok, 10_000, "split")
    # inputs: <bos> prompt trace (no eos); targets: the next token, masked while it is still prompt
    assert len(ex) == 1 + n_prompt + n_trace
    assert ex.targets[:n_prompt] == [IGNORE] * n_prompt
    assert IGNORE not in ex.targets[n_prompt:]
    assert ex.targets[-1] == tok.eos_token_id
    assert ex.input_ids[0] == tok.bos_token_id


def test_loss_counts_trace_tokens_only(rows, tok):
    """Worked by hand: loss_sum is -sum log p(target) over exactly the trace+eos positions."""
    model = build_model(ModelConfig(n_layer=1, d_model=32, n_head=2), len(tok), 1, 2, 0)
    exs, _ = make_examples(rows[:2], tok, 10_000, "split")
    batch = collate_padded(exs, [0, 1], tok.pad_token_id)
    with torch.no_grad():
        got = float(loss_sum(model, batch, "fp32"))
        logp = torch.log_softmax(model(input_ids=batch.input_ids).logits.float(), -1)
    want = 0.0
    for r, ex in enumerate(exs):
        keep = [t for t, target in enumerate(ex.targets) if target != IGNORE]
        want -= float(logp[r, keep, [ex.targets[t] for t in keep]].sum())
    assert got == pytest.approx(want, rel=1e-5)
    n_prompt = [len(encode(tok, rows[i]["prompt"])) for i in range(2)]
    assert batch.n_targets == sum(len(e) - n for e, n in zip(exs, n_prompt, strict=True))


def test_packed_documents_do_not_attend_to_each_other(rows, tok):
    model = build_model(ModelConfig(n_layer=2, d_model=32, n_head=2), len(tok), 1, 2, 0).eval()
    exs, _ = make_examples(rows[:3], tok, 10_000, "split")
    seq_len = sum(len(e) for e in exs) + 5
    packed = collate_packed(exs, [[0, 1, 2]], seq_len, tok.pad_token_id)
    with torch.no_grad():
        # use_cache=False matters: with a cache transformers ignores packed position ids (as in training)
        together = model(
            input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False
        ).logits[0]
        at = 0
        for ex in exs:
            alone = model(input_ids=torch.tensor([ex.input_ids])).logits[0]
            assert torch.allclose(together[at : at + len(ex)], alone, atol=1e-4)
            at += len(ex)


def test_overflow_policies_and_their_counts(rows, tok):
    lengths = [len(e) for e in make_examples(rows, tok, 100_000, "split")[0]]
    seq_len = sorted(lengths)[len(lengths) // 2]  # about half the rows overflow
    long = sum(n > seq_len for n in lengths)
    kept, s = make_examples(rows, tok, seq_len, "drop")
    assert (s.overflowing, s.dropped, len(kept)) == (long, long, len(rows) - long)
    kept, s = make_examples(rows, tok, seq_len, "truncate")
    assert s.truncated == long and len(kept) == len(rows) and max(len(e) for e in kept) == seq_len
    pieces, s = make_examples(rows, tok, seq_len, "split")
    assert s.split_rows == long and len(pieces) == len(rows) + s.extra_pieces
    assert sum(len(e) for e in pieces) == sum(lengths)  # nothing lost, nothing repeated


def test_context_shorter_than_the_prompt_is_an_error(rows, tok):
    n = 1 + len(encode(tok, rows[0]["prompt"]))
    with pytest.raises(DataError, match=f"prompt is {n} tokens"):
        make_examples(rows[:1], tok, n - 1, "truncate")


def test_packing_wastes_little_and_bucketing_is_measured(tok):
    all_rows = sos_rows("train.jsonl", "train")  # 200 SoS traces, split into 1024-token pieces
    exs, _ = make_examples(all_rows, tok, 1024, "split")
    pack = BatchPlan(exs, 1024, 4, "pack", tok.pad_token_id)
    bucket = BatchPlan(exs, 1024, 4, "bucket", tok.pad_token_id)
    assert padding_waste(pack) < 0.05
    assert 0.0 <= padding_waste(bucket) < 1.0
    bins = pack_rows([len(e) for e in exs], 1024)
    assert sorted(i for b in bins for i in b) == list(range(len(exs)))
    assert all(sum(len(exs[i]) for i in b) <= 1024 for b in bins)


@pytest.mark.parametrize("batching", ["pack", "bucket"])
def test_plan_is_deterministic_and_ranks_are_disjoint(rows, tok, batching):
    exs, _ = make_examples(rows, tok, 512, "split")
    plans = [BatchPlan(exs, 512, 2, batching, 0, seed=1, rank=r, world=2) for r in range(2)]
    ids = [set(map(str, p.epoch(0))) for p in plans]
    assert ids[0] and not ids[0] & ids[1]
    again = BatchPlan(exs, 512, 2, batching, 0, seed=1, rank=0, world=2)
    assert again.epoch(1) == plans[0].epoch(1) and again.epoch(0) != again.epoch(1)
    n0 = len(plans[0].epoch(0))
    assert plans[0].locate(n0 + 1) == (1, 1)


def test_reading_errors_name_the_problem(tmp_path):
    root = tiny_dataset(tmp_path / "ds", n_train=4, n_val=2)
    assert len(read_rows(root, "train")) == 4
    with pytest.raises(DataError, match="no rows left after filtering"):
        read_rows(root, "train", formats=["astar"])
    with pytest.raises(DataError, match="no Parquet files for split 'harder'"):
        read_rows(root, "harder")
    with pytest.raises(DataError, match="dataset folder not found"):
        read_rows(tmp_path / "nope", "train")
    bad = [{"problem_id": "x", "prompt": "p"}]
    write_split(tmp_path / "bad", "train", bad)
    with pytest.raises(DataError, match="lack column"):
        read_rows(tmp_path / "bad", "train")


def test_encode_row_adds_bos_and_eos(rows, tok):
    ids, n_masked = encode_row(tok, rows[0]["prompt"], rows[0]["trace"])
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert n_masked == 1 + len(encode(tok, rows[0]["prompt"]))


@pytest.mark.parametrize("batching", ["pack", "bucket"])
def test_curriculum_goes_short_to_long_then_shuffles(rows, tok, batching):
    exs, _ = make_examples(rows, tok, 512, "split")
    plain = BatchPlan(exs, 512, 2, batching, 0, seed=1)
    curriculum = BatchPlan(exs, 512, 2, batching, 0, seed=1, curriculum_epochs=1.5)

    def longest(batch):
        members = [i for row in batch for i in row] if batching == "pack" else batch
        return max(len(exs[i]) for i in members)

    first = [longest(b) for b in curriculum.epoch(0)]
    assert first == sorted(first) and first[0] < first[-1]  # short to long over all of epoch 0
    assert sorted(map(str, curriculum.epoch(0))) == sorted(map(str, plain.epoch(0)))  # same batches
    half = round(0.5 * len(curriculum.epoch(1)))  # epoch 1: first half ordered, the rest as shuffled
    second = [longest(b) for b in curriculum.epoch(1)[:half]]
    assert second == sorted(second)
    assert curriculum.epoch(1)[half:] == plain.epoch(1)[half:]
    assert curriculum.epoch(2) == plain.epoch(2)
