"""The GSM-7 alphabet: what a USSD screen may hold, and how long it is."""
from __future__ import annotations

import re

import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)


SMS_SEPTETS = 160  # one SMS in GSM-7
PART_SEPTETS = 153  # one part of a concatenated SMS (its 6-octet header takes the rest)

_EXTENSION_ASCII = frozenset("[]{}\\^~|")
# ASCII that is no screen text: control characters (line breaks apart) and '`',
# which GSM-7 lacks. Found by one regex search, not by the codec, on every hop.
_ASCII_UNSHOWABLE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f`]")


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


def is_text(text: str) -> bool:
    """``text`` can be shown: GSM-7, no control characters (line breaks allowed)."""
    if text.isascii():
        return _ASCII_UNSHOWABLE.search(text) is None
    return all(line.isprintable() for line in text.split("\n")) and fits(text)


def is_line(text: str) -> bool:
    """``text`` can be shown as one line: :func:`is_text` without line breaks."""
    return "\n" not in text and is_text(text)


def text_problem(text: str, limit: int, lines: bool = False) -> str | None:
    """Why an operator's or partner's ``text`` cannot reach a subscriber, or None:
    outside GSM-7, a control character or (unless ``lines``) a line break, over
    ``limit`` septets. The reason reads after the field's name."""
    if not fits(text):
        bad = "".join(sorted({c for c in text if not fits(c)}))
        return f"has characters outside GSM-7: {bad!r}"
    if not (is_text(text) if lines else is_line(text)):
        return "must be one line without control characters" if not lines else (
            "must not hold control characters")
    n = length(text)
    if n > limit:
        return f"must be at most {limit} characters (GSM-7; this is {n})"
    return None


def problems(text: str, limit: int) -> list[str]:
    """Why ``text`` cannot be a screen: outside GSM-7 or over ``limit``."""
    if not fits(text):
        bad = sorted({c for c in text if not fits(c)})
        return [f"characters outside GSM-7: {''.join(bad)!r}"]
    if not is_text(text):
        return ["control characters"]
    n = length(text)
    return [f"{n} characters, over the limit of {limit}"] if n > limit else []
