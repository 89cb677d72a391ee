"""Batched decoding with the KV cache: prompts in, completions out (the evaluator's and RL's sampler).

Prompts are left-padded so every row's next token sits at the same position, and the KV cache is
reused across steps, so a batch of 64 costs little more per step than one prompt. The default engine
is our own loop (evaluation/decode.py: one prefill per distinct prompt, finished rows leave the batch,
samples that do not depend on the batch); engine="hf" keeps transformers' `model.generate`, which
decodes every row until the longest one ends.
A completion stops at the tokenizer's EOS or at the first stop string of its trace format (SoS: the
"Goal Reached" line or "No solution found."); one that reaches max_new_tokens is marked truncated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from metacot_core.evaluation.config import GenerationSettings
from metacot_core.evaluation.decode import Row, StopChecker, decode, row_key

# Where a trace ends even if the model does not emit EOS (SoS stops at the first goal claim or the
# give-up line). Formats without an end marker (astar, mcts) rely on EOS; a format may declare its own
# `stop_strings` attribute instead.
DEFAULT_STOP_STRINGS: dict[str, list[str]] = {
    "sos": ["Goal Reached", "No solution found."],
    "solution": ["Goal Reached"],
}


@dataclass(slots=True)
class Completion:
    """One decoded continuation of prompt `prompt_index` (sample `sample_index` of it).

    n_tokens counts generated tokens up to and including EOS or the token that completed a stop string.
    truncated: the completion ended only because it reached max_new_tokens.
    """

    text: str
    n_tokens: int
    truncated: bool
    prompt_index: int = 0
    sample_index: int = 0
    stop: str | None = None


def default_stop_strings(format_name: str | None) -> list[str]:
    """The stop strings of a trace format: its own `stop_strings` attribute, else the built-in table."""
    if format_name is None:
        return []
    try:
        from metacot_core.registry import get_format

        declared = getattr(get_format(format_name), "stop_strings", None)
    except Exception:  # an unknown or not-yet-importable format still gets the table's stops
        declared = None
    if declared:
        return list(declared)
    return list(DEFAULT_STOP_STRINGS.get(format_name, []))


def resolve_device(name: str) -> torch.device:
    """"auto" -> the first GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_checkpoint(path: str | Path, device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) from a local checkpoint directory; never touches a model hub."""
    from metacot_core.models import is_model_dir, load_local_model
    from metacot_core.tokenizer import load_tokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: checkpoint directory not found")
    if not is_model_dir(path):
        raise FileNotFoundError(f"{path}: not a model checkpoint (needs config.json and *.safetensors)")
    tokenizer = load_tokenizer(path)
    model = load_local_model(path)
    model.to(resolve_device(device))
    model.eval()
    return model, tokenizer


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a prompt with the tokenizer's leading special tokens but no trailing EOS.

    A post-processor that appends EOS to every text (training does so to end traces) would tell the
    model the prompt is already finished, so a trailing EOS is dropped here.
    """
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
    if len(ids) > 1 and eos is not None and ids[-1] == eos and eos != bos:
        ids.pop()
    return ids


def pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every row right-aligned."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids, mask


class StopOnStrings(StoppingCriteria):
    """Stops each row once its decoded tail contains a stop string; records the step it happened.

    Only a short tail is decoded per step (enough tokens to hold the longest stop string), so the
    check costs O(batch) small decodes per step, not a decode of the whole completion.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int, batch: int) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_width = prompt_width
        self.window = max((len(s) for s in self.stops), default=0) + 4
        self.stopped_at = [0] * batch  # generated tokens when the row stopped (0 = not stopped)
        self.which: list[str | None] = [None] * batch

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs: Any) -> torch.BoolTensor:
        n_gen = input_ids.shape[1] - self.prompt_width
        done = torch.tensor([s > 0 for s in self.stopped_at], dtype=torch.bool, device=input_ids.device)
        if not self.stops or n_gen <= 0:
            return done
        live = [i for i, s in enumerate(self.stopped_at) if s == 0]
        if not live:
            return done
        start = max(self.prompt_width, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[live, start:].tolist(), skip_special_tokens=True)
        for row, tail in zip(live, tails, strict=True):
            hit = next((s for s in self.stops if s in tail), None)
            if hit is not None:
                self.stopped_at[row] = n_gen
                self.which[row] = hit
                done[row] = True
        return done


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """Text up to and including the earliest stop string (and which one), or the text unchanged."""
    best: tuple[int, str] | None = None
    for s in stops:
        if not s:
            continue
        idx = text.find(s)
        if idx >= 0 and (best is None or idx + len(s) < best[0]):
            best = (idx + len(s), s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def _generated_length(row: list[int], eos: int | None, stopped_at: int, max_new: int) -> tuple[int, bool]:
    """(tokens generated, ended by EOS) for one row of generated ids (padding after the end ignored)."""
    limit = stopped_at if stopped_at > 0 else len(row)
    if eos is not None:
        for i, tok in enumerate(row[:limit]):
            if tok == eos:
                return i + 1, True
    return min(limit, max_new), False


def context_length(model: Any) -> int | None:
    """The model's maximum number of positions (prompt plus generated tokens), when it declares one."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def room_for_tokens(model: Any, prompt_len: int, max_new_tokens: int) -> int:
    """How many tokens can be generated after a `prompt_len`-token (padded) prompt: `max_new_tokens`,
    cut to what the context has left, so a long prompt truncates the completion instead of indexing
    past the position table (an IndexError deep in the model, minutes into an RL run)."""
    context = context_length(model)
    if context is None:
        return max_new_tokens
    return max(0, min(max_new_tokens, context - prompt_len))


@torch.inference_mode()
def _decode_batch(model: Any, tokenizer: Any, rows: list[list[int]], settings: GenerationSettings,
                  stops: list[str], device: torch.device) -> list[tuple[str, int, bool, str | None]]:
    pad = pad_id(tokenizer)
    ids, mask = left_pad(rows, pad)
    max_new = room_for_tokens(model, ids.shape[1], settings.max_new_tokens)
    if max_new == 0:  # the prompt fills the context: nothing can be written
        return [("", 0, True, None) for _ in rows]
    ids, mask = ids.to(device), mask.to(device)
    stopper = StopOnStrings(tokenizer, stops, ids.shape[1], len(rows))
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new,
        "pad_token_id": pad,
        "eos_token_id": tokenizer.eos_token_id,
        "use_cache": True,
        "stopping_criteria": StoppingCriteriaList([stopper]),
    }
    if settings.greedy:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
    out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    generated = out[:, ids.shape[1]:].tolist()
    results = []
    for i, row in enumerate(generated):
        n, ended_eos = _generated_length(row, tokenizer.eos_token_id, stopper.stopped_at[i], max_new)
        text = tokenizer.decode(row[:n], skip_special_tokens=True)
        text, hit = cut_at_stop(text, stops)
        truncated = hit is None and not ended_eos and n >= max_new
        results.append((text, n, truncated, hit))
    return results


def _decode_batch_loop(model: Any, tokenizer: Any, encoded: list[list[int]], jobs: list[tuple[int, int]],
                       settings: GenerationSettings, stop: StopChecker,
                       device: torch.device) -> list[tuple[str, int, bool, str | None]]:
    """`_decode_batch` on our loop: each distinct prompt of `jobs` is prefilled once."""
    width = max(len(encoded[p]) for p, _ in jobs)
    max_new = room_for_tokens(model, width, settings.max_new_tokens)
    if max_new == 0:
        return [("", 0, True, None) for _ in jobs]
    rows = [Row(prompt=p, key=row_key(settings.seed, p, s)) for p, s in jobs]
    temperature = 0.0 if settings.greedy else settings.temperature
    decoded = decode(model, encoded, rows, max_new_tokens=max_new, pad=pad_id(tokenizer),
                     eos=tokenizer.eos_token_id, stop=stop, temperature=temperature, top_p=settings.top_p,
                     device=device)
    texts = tokenizer.batch_decode([d.ids for d in decoded], skip_special_tokens=True)
    results = []
    for d, text in zip(decoded, texts, strict=True):
        text, hit = cut_at_stop(text, stop.stops)
        n = len(d.ids)
        results.append((text, n, hit is None and not d.eos and n >= max_new, hit))
    return results


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], settings: GenerationSettings,
             stop_strings: Sequence[str] | None = None, progress: bool = True) -> list[Completion]:
    """Completions for every prompt, `settings.n_samples` each, in prompt order then sample order.

    `stop_strings` (e.g. from default_stop_strings(format)) is used when settings.stop_strings is None.
    Prompts are batched by length (less padding) but results come back in the input order. With the
    default engine a sample depends only on (seed, prompt index, sample index, the model), not on the
    batch it was decoded in.
    """
    if not prompts:
        return []
    stops = list(settings.stop_strings if settings.stop_strings is not None else (stop_strings or []))
    device = next(model.parameters()).device if settings.device == "auto" else resolve_device(settings.device)
    if next(model.parameters()).device != device:
        model.to(device)
    model.eval()
    torch.manual_seed(settings.seed)
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    jobs = [(p, s) for p in range(len(prompts)) for s in range(settings.n_samples)]
    if settings.sort_by_length:
        jobs.sort(key=lambda job: len(encoded[job[0]]))
    results: dict[tuple[int, int], Completion] = {}
    batches = [jobs[i:i + settings.batch_size] for i in range(0, len(jobs), settings.batch_size)]
    checker = StopChecker(tokenizer, stops) if settings.engine == "loop" else None
    for batch in tqdm(batches, desc="decode", unit="batch", disable=not progress):
        if checker is not None:
            decoded = _decode_batch_loop(model, tokenizer, encoded, batch, settings, checker, device)
        else:
            decoded = _decode_batch(model, tokenizer, [encoded[p] for p, _ in batch], settings, stops, device)
        for (p, s), (text, n, truncated, hit) in zip(batch, decoded, strict=True):
            results[(p, s)] = Completion(text=text, n_tokens=n, truncated=truncated, prompt_index=p,
                                         sample_index=s, stop=hit)
    return [results[(p, s)] for p in range(len(prompts)) for s in range(settings.n_samples)]
