"""The trace tokenizer: exact round trip on every SoS reference trace, loadable by AutoTokenizer."""

from __future__ import annotations

import json

import pytest
from sft_fixtures import SOS_DIR
from transformers import AutoTokenizer

from metacot_core.tokenizer import (
    BOS,
    EOS,
    PAD,
    build_tokenizer,
    decode,
    encode,
    load_tokenizer,
    save_tokenizer,
    unknown_count,
)


def _texts(name: str) -> list[str]:
    out = []
    for line in (SOS_DIR / name).read_text().splitlines():
        rec = json.loads(line)
        out += [rec["search_path"], rec["optimal_path"]]
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tok = build_tokenizer(_texts("train.jsonl"))
    return save_tokenizer(tok, tmp_path_factory.mktemp("tok"))


def test_round_trip_is_exact_on_every_sos_trace_including_unseen_ones(saved):
    tok = AutoTokenizer.from_pretrained(str(saved), local_files_only=True)
    texts = _texts("train.jsonl") + _texts("val.jsonl") + _texts("val_target.jsonl")
    assert len(texts) == 800
    for text in texts:
        ids = encode(tok, text)
        assert unknown_count(tok, ids) == 0
        assert decode(tok, ids) == text


def test_numbers_are_single_tokens_and_phrases_compress(saved):
    tok = load_tokenizer(saved)
    pieces = tok.convert_ids_to_tokens(
        encode(tok, "Generated Node #0,12: 13:[18, 9, 270] Operation: 15*18=270\n")
    )
    assert pieces == [
        "Generated Node #",
        "0",
        ",",
        "12",
        ": ",
        "13",
        ":[",
        "18",
        ", ",
        "9",
        ", ",
        "270",
        "] Operation: ",
        "15",
        "*",
        "18",
        "=",
        "270",
        "\n",
    ]


def test_words_and_numbers_never_seen_fall_back_to_known_pieces(saved):
    tok = load_tokenizer(saved)
    text = "create 3 4 c5 close zebra 123456789\n\tplan  x"
    ids = encode(tok, text)
    assert unknown_count(tok, ids) == 0
    assert decode(tok, ids) == text


def test_special_tokens_and_bos_on_plain_call(saved):
    tok = load_tokenizer(saved)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS, EOS, PAD)
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    ids = tok("Current State: 13:[1, 2]")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] != tok.eos_token_id


def test_prompt_and_trace_encode_the_same_apart_or_together(saved):
    tok = load_tokenizer(saved)
    text = _texts("val.jsonl")[0]
    head, _, rest = text.partition("\n")
    assert encode(tok, head + "\n") + encode(tok, rest) == encode(tok, text)


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer here"):
        load_tokenizer(tmp_path / "nope")
