"""Phone numbers: one E.164 form for storage, a masked form for logs.

Subscribers are Indonesian mobile numbers: ``+628`` and 9 to 12 more ASCII
digits, written ``08…``, ``628…`` or ``+628…`` (spaces and hyphens between the
digits are ignored). Anything else, another country, a landline, a number
with letters (``+62812FLOWERS``) or non-ASCII digits, is refused.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ussd_app.core.errors import BadRequest

_MOBILE = re.compile(r"(?:\+62|62|0)(8[0-9]{9,12})")
_SEPARATORS = re.compile(r"(?<=[0-9])[ -](?=[0-9])")


def normalize(raw: str | None, field: str = "msisdn") -> str:
    """``08…``, ``628…`` or ``+628…`` -> ``+628…``; BadRequest otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise BadRequest(f"missing {field}")
    return _e164(raw.strip(), field)


@lru_cache(maxsize=100_000)  # every hop of a session repeats the same number
def _e164(text: str, field: str) -> str:
    found = _MOBILE.fullmatch(_SEPARATORS.sub("", text)) if len(text) <= 40 else None
    if found is None:
        raise BadRequest(f"{field} is not an Indonesian mobile number (+628 and 9 to 12 more digits, "
                         "or 08... / 628...)")
    return "+62" + found.group(1)


def mask(msisdn: str | None) -> str:
    """+6281234567890 -> +62812*****890: enough to correlate, not to call."""
    if not msisdn:
        return "-"
    if len(msisdn) <= 7:
        return "*" * len(msisdn)
    return msisdn[:6] + "*" * (len(msisdn) - 9) + msisdn[-3:]
