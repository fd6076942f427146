"""Phone numbers: one E.164 form for storage, a masked form for logs."""
from __future__ import annotations

from functools import lru_cache

import phonenumbers

from ussd_app.core.errors import BadRequest


def normalize(raw: str | None, field: str = "msisdn") -> str:
    """``08…``, ``628…`` or ``+628…`` -> ``+628…``; BadRequest otherwise."""
    if not raw or not raw.strip():
        raise BadRequest(f"missing {field}")
    return _e164(raw.strip(), field)


@lru_cache(maxsize=100_000)  # every hop of a session repeats the same number
def _e164(text: str, field: str) -> str:
    if text.startswith("62"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, "ID")
    except phonenumbers.NumberParseException:
        raise BadRequest(f"{field} is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise BadRequest(f"{field} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(msisdn: str | None) -> str:
    """+6281234567890 -> +62812*****890: enough to correlate, not to call."""
    if not msisdn:
        return "-"
    if len(msisdn) <= 7:
        return "*" * len(msisdn)
    return msisdn[:6] + "*" * (len(msisdn) - 9) + msisdn[-3:]
