"""Our decode loop (evaluation/decode.py) against transformers' generate, and the properties it adds:
finished rows leave the batch, one prefill per prompt, samples that do not depend on the batch."""

from __future__ import annotations

import pytest
import torch
from test_eval_generate import (
    PROMPTS,
    one_torch_thread,  # noqa: F401  (autouse fixture: one torch thread)
    overfit,
    tiny_lm,
)
from transformers.generation.logits_process import TopPLogitsWarper

from metacot_core.evaluation.config import GenerationSettings
from metacot_core.evaluation.decode import _mix32, _mix32_int, gumbel_noise, row_key, top_p_filter
from metacot_core.evaluation.generate import generate

PAIRS = [("Current State: 1:[1]\n", "zz Goal Reached qq qq qq qq qq qq"),
         ("x", "qq zz<eos>"),
         ("Current State: 7:[1, 2]\n", "qq qq qq zz zz qq No solution found. zz zz zz"),
         ("start 0 0 goal 2 2", "zz qq zz qq zz qq zz qq zz qq zz qq zz qq")]
STOPS = ["Goal Reached", "No solution found."]


@pytest.fixture(scope="module")
def trained():
    """A tiny model that ends its four prompts at four different lengths (stop, EOS, stop, max)."""
    model, tok = tiny_lm([p + c for p, c in PAIRS] + ["No solution found. Goal Reached <eos>"], seed=1)
    return overfit(model, tok, PAIRS), tok


def fields(out):
    return [(c.text, c.n_tokens, c.truncated, c.stop, c.prompt_index, c.sample_index) for c in out]


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_greedy_loop_equals_hf_generate(trained, batch_size):
    model, tok = trained
    prompts = [p for p, _ in PAIRS] + PROMPTS
    runs = {engine: generate(model, tok, prompts, GenerationSettings(max_new_tokens=14, batch_size=batch_size,
                                                                      engine=engine),
                             stop_strings=STOPS, progress=False) for engine in ("loop", "hf")}
    assert fields(runs["loop"]) == fields(runs["hf"])
    ends = {c.stop for c in runs["loop"][:4]} | {c.truncated for c in runs["loop"][:4]}
    assert {"Goal Reached", "No solution found.", True} <= ends  # the cases really differ


def test_greedy_loop_equals_hf_on_a_random_two_layer_model():
    model, tok = tiny_lm(PROMPTS + ["Goal Reached No solution found. zz qq <eos>"], seed=3, n_layer=2)
    settings = {e: GenerationSettings(max_new_tokens=30, batch_size=4, engine=e) for e in ("loop", "hf")}
    loop, hf = (generate(model, tok, PROMPTS, settings[e], stop_strings=STOPS, progress=False)
                for e in ("loop", "hf"))
    assert fields(loop) == fields(hf)


def test_samples_do_not_depend_on_batch_size_order_or_neighbours(trained):
    model, tok = trained
    prompts = [p for p, _ in PAIRS]

    def run(batch_size, sort=True, subset=None):
        s = GenerationSettings(max_new_tokens=14, temperature=1.5, n_samples=4, batch_size=batch_size,
                               seed=7, sort_by_length=sort)
        return generate(model, tok, prompts if subset is None else subset, s, stop_strings=STOPS,
                        progress=False)

    base = run(16)
    assert fields(run(1)) == fields(base)
    assert fields(run(5, sort=False)) == fields(base)
    alone = run(16, subset=prompts[:1])  # prompt 0 decoded without the others: the same samples
    assert fields(alone) == fields(base[:4])
    assert len({c.text for c in base}) > 4  # it samples, and the samples of one prompt differ
    other_seed = generate(model, tok, prompts, GenerationSettings(
        max_new_tokens=14, temperature=1.5, n_samples=4, batch_size=16, seed=8), stop_strings=STOPS,
        progress=False)
    assert [c.text for c in other_seed] != [c.text for c in base]


class Recorder(torch.nn.Module):
    """Wraps a causal LM and records (batch, new tokens) of every forward pass."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.calls = model, model.config, []

    def forward(self, input_ids=None, cache=None, **kwargs):
        self.calls.append(tuple(input_ids.shape))
        return self.model(input_ids=input_ids, cache=cache, **kwargs)


def test_one_prefill_per_prompt_and_finished_rows_leave_the_batch(trained):
    model, tok = trained
    rec = Recorder(model)
    prompts = [p for p, _ in PAIRS]
    settings = GenerationSettings(max_new_tokens=14, batch_size=64, n_samples=3, temperature=0.3, seed=1)
    out = generate(rec, tok, prompts, settings, stop_strings=STOPS, progress=False)
    prefill, steps = rec.calls[0], rec.calls[1:]
    assert prefill[0] == len(prompts)  # 4 prefills for 12 rows
    batches = [b for b, t in steps]
    assert all(t == 1 for _, t in steps) and batches == sorted(batches, reverse=True)
    # every row is fed each token it generated but its last: no forward pass on a finished row
    assert sum(batches) == sum(c.n_tokens - 1 for c in out)
    assert len({c.n_tokens for c in out}) > 1 and batches[-1] < len(out)


def test_gumbel_noise_samples_the_softmax():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    n = 40_000
    keys = torch.tensor([row_key(0, i, 0) for i in range(n)], dtype=torch.long)
    picks = (logits + gumbel_noise(keys, 3, 4, torch.device("cpu"))).argmax(dim=-1)
    freq = torch.bincount(picks, minlength=4).double() / n
    assert torch.allclose(freq, logits.softmax(-1), atol=0.01)
    again = (logits + gumbel_noise(keys, 3, 4, torch.device("cpu"))).argmax(dim=-1)
    other_step = (logits + gumbel_noise(keys, 4, 4, torch.device("cpu"))).argmax(dim=-1)
    assert torch.equal(picks, again) and not torch.equal(picks, other_step)


def test_row_keys_differ_and_handle_big_seeds():
    keys = {row_key(s, p, i) for s in (0, 1, 2**40 + 3, -5) for p in range(5) for i in range(5)}
    assert len(keys) == 100 and all(0 <= k < 2**32 for k in keys)
    xs = [0, 1, 2**31, 2**32 - 1, 123456789]  # the tensor hash and the int hash are one function
    assert _mix32(torch.tensor(xs)).tolist() == [_mix32_int(x) for x in xs]


def test_top_p_filter_matches_transformers():
    torch.manual_seed(0)
    logits = torch.randn(6, 11)
    for p in (0.3, 0.9, 0.99):
        ours = top_p_filter(logits, p)
        theirs = TopPLogitsWarper(top_p=p)(None, logits.clone())
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs))


def test_growing_cache_gives_the_logits_of_the_dynamic_cache():
    """The doubling buffers (decode.GrowingLayer) hold the same keys and values as DynamicCache's
    concatenation, through growth and row selection."""
    from transformers.cache_utils import DynamicCache

    from metacot_core.evaluation.decode import GrowingLayer, new_cache

    model, _ = tiny_lm(PROMPTS, seed=2, n_layer=2)
    torch.manual_seed(0)
    ids = torch.randint(4, 20, (3, 5))
    mask = torch.ones_like(ids)
    caches = [new_cache(), DynamicCache()]
    logits = []
    with torch.inference_mode():
        for cache in caches:
            model(input_ids=ids, attention_mask=mask, cache=cache, use_cache=True)
            cache.batch_select_indices(torch.tensor([2, 0, 2]))
            m = mask.clone()
            rows = []
            for t in range(70):  # past the first 64-position buffer: one growth
                m = torch.cat([m, m.new_ones((3, 1))], dim=1)
                out = model(input_ids=ids[:, t % 5: t % 5 + 1], attention_mask=m, cache=cache, use_cache=True,
                            position_ids=torch.full((3, 1), 5 + t))
                rows.append(out.logits[:, -1])
            logits.append(torch.stack(rows))
    assert isinstance(caches[0].layers[0], GrowingLayer) and caches[0].get_seq_length() == 75
    torch.testing.assert_close(logits[0], logits[1])
