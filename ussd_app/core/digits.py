"""ASCII digits, the only digits a subscriber or a partner may type.

``str.isdigit()``, ``isnumeric()`` and ``isdecimal()`` accept '²' and
full-width '３', and ``int()`` reads '３' as 3: neither may judge input here.
"""
from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def only(text: str, length: int | None = None) -> bool:
    """``text`` is one or more ASCII digits (exactly ``length`` of them when given)."""
    return (isinstance(text, str) and _DIGITS.fullmatch(text) is not None
            and (length is None or len(text) == length))


def number(text: str, low: int, high: int) -> int | None:
    """The whole number ``text`` spells in ASCII digits, if within ``low``..``high``; else None."""
    if not only(text) or len(text) > len(str(high)) + 2:  # no int() of a thousand digits
        return None
    value = int(text)
    return value if low <= value <= high else None
