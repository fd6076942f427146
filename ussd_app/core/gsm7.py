"""The GSM-7 alphabet: what a USSD screen may hold, and how long it is."""
from __future__ import annotations

import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)


_EXTENSION_ASCII = frozenset("[]{}\\^~|")


def length(text: str) -> int:
    """Septets ``text`` takes in GSM-7 (extension characters count twice)."""
    if text.isascii() and "`" not in text:  # the common case, without the codec
        return len(text) + sum(1 for c in text if c in _EXTENSION_ASCII)
    return len(text.encode("gsm03.38"))


def fits(text: str) -> bool:
    try:
        text.encode("gsm03.38")
    except UnicodeEncodeError:
        return False
    return True


def problems(text: str, limit: int) -> list[str]:
    """Why ``text`` cannot be a screen: outside GSM-7 or over ``limit``."""
    if not fits(text):
        bad = sorted({c for c in text if not fits(c)})
        return [f"characters outside GSM-7: {''.join(bad)!r}"]
    n = length(text)
    return [f"{n} characters, over the limit of {limit}"] if n > limit else []
