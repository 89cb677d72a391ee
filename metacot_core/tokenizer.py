"""Word-level tokenizer over the trace grammar, saved as a `PreTrainedTokenizerFast` directory.

Why this design (measured on the 400 SoS reference traces, mean tokens per trace; see
`bench/bench_sft.py --tokenizer-designs`): one token per digit gives 4,866; one token per number
4,120; numbers as bare tokens plus punctuation runs (", ", ":[", "], ") and the fixed SoS phrases
("Exploring Operation: ", "Moving to Node #", ...) as single tokens gives about 2,400, so a 4,096
context holds most SoS traces. A number is always the same token wherever it appears (no " 9" vs
"9" variants), so the model learns one embedding per number; a node id `#0,1,2` is `0 , 1 , 2`.

The model is WordPiece with an empty continuation prefix: a pre-token found in the vocabulary is one
token, anything else (a number never seen, a new word) is split greedily into the longest known
pieces, down to single characters, which are all in the vocabulary. So a legal trace never becomes
`<unk>`, and the `Fuse` decoder (plain concatenation) makes decode(encode(text)) == text exactly,
whitespace and newlines included.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)

# Fixed phrases of each format's grammar, one token each. SoS is exact (the reference generator's
# text); the others list their keywords so that a vocabulary built before any data exists covers them.
FORMAT_PHRASES: dict[str, tuple[str, ...]] = {
    "sos": (
        "Current State: ",
        "], Operations: [",
        "Exploring Operation: ",
        ", Resulting Numbers: [",
        "Generated Node #",
        "] Operation: ",
        "] from Operation: ",
        "Moving to Node #",
        " unequal: No Solution",
        " equal: Goal Reached",
        "No solution found.",
    ),
    "solution": ("Solution: ", "Goal Reached"),
}
FORMAT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "sos": (
        "Current",
        "State",
        "Operations",
        "Exploring",
        "Operation",
        "Resulting",
        "Numbers",
        "Generated",
        "Node",
        "Moving",
        "to",
        "unequal",
        "equal",
        "No",
        "Solution",
        "Goal",
        "Reached",
        "solution",
        "found",
        "from",
    ),
    "astar": (
        "create",
        "close",
        "plan",
        "start",
        "goal",
        "wall",
        "query",
        "trace",
        "bos",
        "eos",
        "c",
        "x",
        "y",
        "g",
        "h",
    ),
    "mcts": (
        "select",
        "expand",
        "rollout",
        "backup",
        "visits",
        "value",
        "reward",
        "node",
        "action",
        "goal",
        "dead",
        "end",
        "solution",
        "step",
        "sim",
        "best",
    ),
    "solution": ("Solution", "Steps", "Goal", "Reached", "plan"),
}
# Numbers below this are always in the vocabulary (Countdown operands and targets, grid coordinates).
BASE_NUMBERS = 1000
MAX_PIECE_CHARS = 1_000_000


def _all_phrases() -> list[str]:
    phrases = {p for group in FORMAT_PHRASES.values() for p in group}
    return sorted(phrases, key=lambda p: (-len(p), p))


def split_pattern(phrases: Sequence[str] | None = None) -> str:
    """The pre-tokenizer regex: grammar phrases, words (with a leading space), bare numbers,
    punctuation runs (with one trailing space), newline, single whitespace. It matches every
    character, so pre-tokens concatenate back to the input."""
    phrases = _all_phrases() if phrases is None else list(phrases)
    alts = [re.escape(p) for p in phrases]
    alts += [r" ?[A-Za-z_]+", r"\d+", r"[^\sA-Za-z_\d]+ ?", r"\n", r"\s"]
    return "|".join(alts)


def pre_tokenize(text: str, pattern: str | None = None) -> list[str]:
    """The pieces the tokenizer looks up (Python mirror of the Rust pre-tokenizer; for measuring)."""
    return re.findall(pattern or split_pattern(), text)


def base_vocabulary() -> list[str]:
    """Tokens every tokenizer has, data or not: specials, every printable ASCII character and the
    whitespace characters (so the greedy fallback can always finish), numbers, phrases, keywords."""
    out: list[str] = list(SPECIAL_TOKENS)
    out += [chr(c) for c in range(0x20, 0x7F)] + ["\n", "\t", "\r"]
    out += [str(n) for n in range(BASE_NUMBERS)]
    out += _all_phrases()
    for words in FORMAT_KEYWORDS.values():
        for word in words:
            out += [word, " " + word]
    return list(dict.fromkeys(out))


def build_tokenizer(texts: Iterable[str], min_frequency: int = 1) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is the grammar's plus every pre-token of `texts` seen at least
    `min_frequency` times (every character of `texts` is always kept, so encoding them is exact)."""
    pattern = split_pattern()
    rx = re.compile(pattern)
    counts: Counter[str] = Counter()
    chars: set[str] = set()
    for text in texts:
        counts.update(rx.findall(text))
        chars.update(text)
    vocab_list = base_vocabulary()
    known = set(vocab_list)
    vocab_list += sorted(c for c in chars if c not in known)
    known.update(chars)
    vocab_list += sorted(t for t, n in counts.items() if n >= min_frequency and t not in known)
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    return _wrap(_rust_tokenizer(vocab, pattern))


def _rust_tokenizer(vocab: dict[str, int], pattern: str) -> Tokenizer:
    tok = Tokenizer(
        models.WordPiece(
            vocab=vocab, unk_token=UNK, continuing_subword_prefix="", max_input_chars_per_word=MAX_PIECE_CHARS
        )
    )
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    return path


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer saved at `path` (never from a hub); a clear error when there is none."""
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path}: no tokenizer here (tokenizer.json missing)")
    from metacot_core.models import refuse_remote_code

    refuse_remote_code(path)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)


def encode(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    """Token ids of `text` without special tokens (training adds BOS/EOS itself)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def decode(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


def unknown_count(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int]) -> int:
    unk = tokenizer.unk_token_id
    return sum(1 for i in ids if i == unk)
