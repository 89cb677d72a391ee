"""Instance JSON (`--instance`, the dataset's `instance` column) read with a bound on integer length.

`json.loads` turns every digit string into an int, and Python refuses to convert one of more than 4,300
digits with an error that names `sys.set_int_max_str_digits`, not the input. No instance needs more
than a few digits (see each domain config's limits), so a long integer is refused here, in one line
naming where it came from, before it is built.
"""

from __future__ import annotations

import json
from typing import Any

MAX_INT_DIGITS = 18  # above every domain's number limits, below where int() gets slow or refuses


def loads_instance(text: str, source: str = "instance") -> Any:
    """The JSON value in `text`; ValueError naming `source` for malformed JSON or an integer literal
    longer than MAX_INT_DIGITS digits."""

    def parse_int(digits: str) -> int:
        n = len(digits.lstrip("-"))
        if n > MAX_INT_DIGITS:
            raise ValueError(f"{source}: a {n}-digit integer; instance numbers have at most {MAX_INT_DIGITS}")
        return int(digits)

    try:
        return json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON ({err})") from None
