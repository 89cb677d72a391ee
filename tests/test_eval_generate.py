"""Batched KV-cache decoding: same greedy output batched or alone, stop strings, EOS, truncation, samples."""

from __future__ import annotations

import pytest
import torch

from metacot_core.config import ConfigError, build_config
from metacot_core.evaluation.config import GenerationSettings
from metacot_core.evaluation.generate import (
    StopOnStrings,
    cut_at_stop,
    default_stop_strings,
    encode_prompt,
    generate,
    left_pad,
)
from metacot_core.models import ModelConfig, build_model
from metacot_core.tokenizer import build_tokenizer


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: a second torch thread only spins against other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_lm(texts: list[str], seed: int = 0, d_model: int = 32, n_layer: int = 1):
    """A word-level tokenizer over `texts` and a random 1-layer GPT-2 (tens of K parameters)."""
    tok = build_tokenizer(texts)
    cfg = ModelConfig(preset="1m", n_layer=n_layer, d_model=d_model, n_head=2, context=256)
    model = build_model(cfg, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, seed=seed)
    return model.eval(), tok


def overfit(model, tok, pairs: list[tuple[str, str]], steps: int = 150):
    """Teach the tiny model to continue each prompt with its completion (+ EOS when it ends in one)."""
    rows = []
    for prompt, completion in pairs:
        ids = encode_prompt(tok, prompt) + tok(completion, add_special_tokens=False)["input_ids"]
        rows.append(ids)
    width = max(len(r) for r in rows)
    batch = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = torch.tensor(r)
        labels[i, : len(r)] = torch.tensor(r)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


PROMPTS = ["Current State: 13:[43, 15, 18, 9], Operations: []\n", "Current State: 7:[1, 2]\n",
           "start 0 0 goal 2 2 wall 1 1", "Current State: 24:[6, 4, 1, 1, 2], Operations: []\n", "x"]


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(PROMPTS + ["Goal Reached No solution found. zz qq <eos>"])


def test_batched_greedy_equals_one_at_a_time(lm):
    model, tok = lm
    batched = generate(model, tok, PROMPTS, GenerationSettings(max_new_tokens=24, batch_size=8),
                       progress=False)
    single = generate(model, tok, PROMPTS, GenerationSettings(max_new_tokens=24, batch_size=1),
                      progress=False)
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.n_tokens for c in batched] == [c.n_tokens for c in single]
    assert [c.prompt_index for c in batched] == list(range(len(PROMPTS)))


def test_stop_string_eos_and_truncation():
    pairs = [("Current State: 1:[1]\n", "zz Goal Reached qq qq qq qq qq qq qq qq qq"),
             ("x", "qq zz<eos>")]
    model, tok = tiny_lm([p + c for p, c in pairs], seed=1)
    overfit(model, tok, pairs)
    settings = GenerationSettings(max_new_tokens=12, batch_size=4)
    stopped, ended = generate(model, tok, [p for p, _ in pairs], settings, stop_strings=["Goal Reached"],
                              progress=False)
    assert stopped.text == "zz Goal Reached" and stopped.stop == "Goal Reached" and not stopped.truncated
    assert stopped.n_tokens == len(tok("zz Goal Reached", add_special_tokens=False)["input_ids"])
    assert ended.text == "qq zz" and not ended.truncated and ended.stop is None
    assert ended.n_tokens == len(tok("qq zz", add_special_tokens=False)["input_ids"]) + 1  # EOS counted
    # without the stop string the first one runs on until max_new_tokens: truncated
    run_on = generate(model, tok, [pairs[0][0]], settings, stop_strings=[], progress=False)[0]
    assert run_on.truncated and run_on.n_tokens == 12 and run_on.text.startswith("zz Goal Reached qq")


def test_sampling_n_per_prompt_in_order_and_seeded(lm):
    model, tok = lm
    settings = GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=0.9, n_samples=3, batch_size=4)
    out = generate(model, tok, PROMPTS[:3], settings, progress=False)
    assert [(c.prompt_index, c.sample_index) for c in out] == [(p, s) for p in range(3) for s in range(3)]
    again = generate(model, tok, PROMPTS[:3], settings, progress=False)
    assert [c.text for c in out] == [c.text for c in again]
    assert len({c.text for c in out}) > 1  # sampling actually samples


def test_settings_reject_greedy_with_many_samples():
    with pytest.raises(ConfigError, match="n_samples"):
        build_config(GenerationSettings, {"n_samples": 4})


def test_left_pad_right_aligns_rows():
    ids, mask = left_pad([[5, 6, 7], [9]], pad=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 9]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_encode_prompt_has_bos_and_no_trailing_eos(lm):
    _, tok = lm
    ids = encode_prompt(tok, "x")
    assert ids[0] == tok.bos_token_id and ids[-1] != tok.eos_token_id


def test_cut_at_stop_takes_the_earliest():
    assert cut_at_stop("a No solution found. b Goal Reached", ["Goal Reached", "No solution found."]) == (
        "a No solution found.", "No solution found.")
    assert cut_at_stop("nothing", ["Goal Reached"]) == ("nothing", None)


def test_stop_criterion_marks_rows(lm):
    _, tok = lm
    prompt = [tok.bos_token_id]
    hit = prompt + tok(" Goal Reached", add_special_tokens=False)["input_ids"]
    miss = prompt + tok(" zz qq", add_special_tokens=False)["input_ids"]
    width = max(len(hit), len(miss))
    miss = miss + [tok.pad_token_id] * (width - len(miss))
    hit = hit + [tok.pad_token_id] * (width - len(hit))
    crit = StopOnStrings(tok, ["Goal Reached"], prompt_width=1, batch=2)
    done = crit(torch.tensor([hit, miss]), None)
    assert done.tolist() == [True, False] and crit.which == ["Goal Reached", None]


def test_default_stop_strings_for_sos():
    assert "Goal Reached" in default_stop_strings("sos")
    assert default_stop_strings(None) == []


def test_a_prompt_near_the_context_end_truncates_instead_of_crashing():
    """prompt + max_new_tokens beyond the position table (a 10x10 maze prompt with 768 new tokens on
    a 1024-token model crashed an RL run with an IndexError): the completion stops at the context."""
    texts = ["a b c d e f g h"]
    tok = build_tokenizer(texts)
    cfg = ModelConfig(preset="1m", n_layer=1, d_model=32, n_head=2, context=32)
    model = build_model(cfg, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, seed=0).eval()
    long_prompt = " ".join(["a"] * 12)  # ~24 tokens with the spaces and BOS
    n_prompt = len(encode_prompt(tok, long_prompt))
    short, full = generate(model, tok, ["b", " ".join(["a"] * 16)], GenerationSettings(
        max_new_tokens=100, batch_size=2, sort_by_length=False), stop_strings=[], progress=False)
    assert full.truncated and full.n_tokens == 0  # a prompt that fills the whole context
    (cut,) = generate(model, tok, [long_prompt], GenerationSettings(max_new_tokens=100), stop_strings=[],
                      progress=False)
    assert cut.truncated and 0 < cut.n_tokens <= 32 - n_prompt
    assert short.n_tokens <= 32 - len(encode_prompt(tok, " ".join(["a"] * 16)))  # padded with the long one
