"""ASCII-only numbers and text for the trace grammars.

Every format writes plain ASCII, but Python's `\\d`, `int()`, `float()` and `str.isdigit()` accept any
Unicode decimal digit (`int("٢٦") == 26`), and `int()` also takes blanks, underscores and signs. A
judge built on them accepted a solved trace rewritten in Arabic-Indic digits. So the parsers read
numbers only from strings of the characters 0-9, and the replay judges refuse text holding a character
no format writes (see `traces.base.foreign_characters`).
"""

from __future__ import annotations

import re

DIGITS = "[0-9]"  # for regexes: `\d` matches every Unicode digit
_UNSIGNED = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")
_FOREIGN = re.compile(r"[^\x20-\x7e\t\n\r]")  # printable ASCII and the three blanks the formats may hold


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty string of the characters 0-9 only (what `str.isdigit` should mean here)."""
    return isinstance(text, str) and _UNSIGNED.fullmatch(text) is not None


def ascii_int(text: str, signed: bool = False) -> int:
    """The integer written in ASCII digits (with a leading '-' when `signed`); ValueError otherwise."""
    pattern = _SIGNED if signed else _UNSIGNED
    if not isinstance(text, str) or pattern.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not an integer written in ASCII digits")
    return int(text)


def first_foreign_char(text: str) -> tuple[int, str] | None:
    """(offset, character) of the first character outside printable ASCII and tab/newline/return."""
    m = _FOREIGN.search(text)
    return None if m is None else (m.start(), m.group())
