"""What every dialect's wire has in common: required fields, a session id,
the dialled string of a shortcut dial, a bounded JSON body."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ussd_app.core import digits, msisdn as msisdns
from ussd_app.core.errors import BadRequest
from ussd_app.ussd.types import Hop

MAX_SESSION_ID = 128
MAX_INPUT = 200  # a gateway's own limit on what one hop carries
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DIGITS = re.compile(r"[0-9]+")
_DIAL = re.compile(r"\*[0-9*]*#")


def text(fields: Mapping[str, Any], name: str, required: bool = True) -> str:
    """The string field ``name`` (numbers taken as their digits); BadRequest names it."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRequest(f"missing {name}")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{name} must be a string")
    value = str(value).strip()
    if len(value) > MAX_INPUT:
        raise BadRequest(f"{name} is over {MAX_INPUT} characters")
    return value


def session_id(fields: Mapping[str, Any], name: str) -> str:
    value = text(fields, name)
    if len(value) > MAX_SESSION_ID:
        raise BadRequest(f"{name} is over {MAX_SESSION_ID} characters")
    if _CONTROL.search(value):
        raise BadRequest(f"{name} holds control characters")
    return value


def flag(fields: Mapping[str, Any], name: str) -> bool:
    """A boolean field; JSON true/false, or the strings and numbers gateways use for them."""
    value = fields.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)) and str(value).strip().lower() in ("true", "1", "false", "0"):
        return str(value).strip().lower() in ("true", "1")
    if value is None:
        raise BadRequest(f"missing {name}")
    raise BadRequest(f"{name} must be true or false")


def is_dial(value: str) -> bool:
    """Whether ``value`` is a dialled string (``*700#``, ``*700*1*2#``)."""
    return bool(_DIAL.fullmatch(value))


class Declined(Exception):
    """A request the gateway documents that this service does not serve (a
    Hubtel ``Query``, a TruRoute charge report): answered with a polite end in
    the dialect's form (the text ``key`` of ``menus/texts``, in the
    subscriber's language), never a 400; ``why`` goes to the log. ``hop``, when
    set, is an end signal to record (the session it closes)."""

    def __init__(self, why: str, key: str = "error.not_served", hop: Hop | None = None):
        super().__init__(why)
        self.why, self.key, self.hop = why, key, hop


class NotOurs(Declined):
    """A hop for a service code that is not the configured one (``*999#``)."""

    def __init__(self, dialled: str):
        parts = segments(dialled)
        shown = f"*{'*'.join(parts)}#" if all(digits.only(p) for p in parts) else "(not a code)"
        self.dialled = shown if len(shown) <= 40 else shown[:37] + "..."
        super().__init__(f"service code {self.dialled} is not ours", "error.not_ours")


def segments(code: str) -> tuple[str, ...]:
    """A code's parts without ``*`` and ``#``: ``*713*4#``, ``713*4`` -> ('713', '4')."""
    return tuple(part for part in code.strip().strip("*#").split("*") if part)


def typed_ahead(dialled: str, code: str) -> tuple[str, ...]:
    """The inputs typed in advance in a dialled string after the configured
    ``code``: with ``*713*4#``, ``*713*4#`` -> (), ``*713*4*1*2#`` -> ('1', '2').
    A dialled string that does not start with the whole code raises NotOurs;
    anything that is no dialled string (a gateway sending no code) types nothing."""
    return _after_code(dialled, code) if is_dial(dialled) else ()


def check_code(given: str, code: str) -> None:
    """A gateway's own service code field (``*713*4#``, or Hubtel's ``713*4``):
    empty (not sent), the configured ``code``, or the code with inputs after it;
    else NotOurs."""
    if segments(given):
        _after_code(given, code)


def _after_code(given: str, code: str) -> tuple[str, ...]:
    """The parts of ``given`` after the whole configured ``code``; NotOurs when it does not start so."""
    parts, ours = segments(given), segments(code)
    if parts[:len(ours)] != ours:
        raise NotOurs(given)
    return parts[len(ours):]


def dial_string(code: str, inputs: list[str] | tuple[str, ...]) -> str:
    """What a phone dials to type ``inputs`` in advance: ``*700#``, ('1',) -> ``*700*1#``."""
    base = code.strip().rstrip("#")
    return "*".join([base, *inputs]) + "#"


def json_object(body: bytes) -> dict:
    """A JSON object from a request body; BadRequest otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def json_reply(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False)


def latest_input_hop(fields: Mapping[str, Any], dialect: str, code: str, *, session: str, msisdn: str,
                     user: str, first: str, data: str, network: str) -> Hop:
    """The hop of a gateway that flags the first hop (whose data is the dialled
    string) and then sends the latest input only (Nalo, Arkesel), each field
    under the name the gateway gives it; ``code`` is the configured service code."""
    sid = session_id(fields, session)
    phone = msisdns.normalize(text(fields, msisdn), msisdn)
    text(fields, user)
    new = flag(fields, first)
    typed = text(fields, data, required=False)
    net = text(fields, network, required=False) or None
    if new:
        return Hop(session_id=sid, msisdn=phone, service_code=code,
                   inputs=typed_ahead(typed, code), new=True, dialect=dialect, network=net)
    return Hop(session_id=sid, msisdn=phone, inputs=(typed,), new=False, dialect=dialect, network=net)


def json_decode(status: int, body: str, message: str, continues) -> tuple[str, bool]:
    """A JSON dialect's reply as the phone shows it: the text under ``message``
    (an error's technical reason is under ``error``, never shown), and whether
    it ends the session (``continues(data)`` false)."""
    try:
        data = json_object(body.encode())
    except BadRequest:
        return body, True
    if status != 200:
        return str(data.get(message) or data.get("error") or body), True
    return str(data.get(message, "")), not continues(data)
