"""Africa's Talking: form-encoded hops, ``CON``/``END`` plain-text replies.

``POST /ussd``: ``sessionId``, ``serviceCode``, ``phoneNumber``, ``text``,
optional ``networkCode``. ``text`` is every input so far joined by ``*``
(``""`` on dial, then ``"1"``, then ``"1*2"``); a shortcut dial (``*700*1#``)
arrives with inputs in its first ``text``.

Retries: the hop carries the whole history, so the machinery takes only what
it has not seen; the same history again (or an earlier one) is a retry and is
answered with the stored reply, acting on nothing. A gateway that posts only
the latest input here is still served where the input differs from the last
one; the same key twice is then a retry (use a latest-input dialect).

``POST /ussd/events``: the end-of-session notification (``status``
``Success``, ``Incomplete`` or ``Failed``), recorded against the session.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from ussd_app.core import digits, gsm7
from ussd_app.core import msisdn as msisdns
from ussd_app.core.errors import BadRequest
from ussd_app.gateways import wire
from ussd_app.core.inbound import InboundSms
from ussd_app.ussd.types import COMPLETED, FAILED, RELEASED, TIMEOUT, Hop, Reply

NAME = "africastalking"
PATH = "/ussd"
EVENTS_PATH = "/ussd/events"
FORMAT = "form"
CONTENT_TYPE = "text/plain; charset=utf-8"
MSISDN = "phoneNumber"
MAX_TEXT = wire.MAX_INPUT


def parse(form: Mapping[str, str], code: str) -> Hop:
    """Validate one USSD hop for the configured service ``code``; BadRequest
    names the offending field. ``serviceCode`` is the code Africa's Talking
    assigned (``*713*4#`` with a sub-code; inputs typed after it arrive in
    ``text``): another code is NotOurs."""
    session_id = wire.session_id(form, "sessionId")
    phone = msisdns.normalize(form.get("phoneNumber"), "phoneNumber")
    text = form.get("text") or ""
    if len(text) > MAX_TEXT:
        raise BadRequest(f"text is over {MAX_TEXT} characters")
    text = text.strip()
    given = wire.text(form, "serviceCode", required=False)
    wire.check_code(given, code)
    typed = wire.segments(given)[len(wire.segments(code)):]  # a gateway sending *713*4*1# as the code
    inputs = typed + (tuple(text.split("*")) if text else ())
    return Hop(session_id=session_id, msisdn=phone, service_code=code,
               inputs=inputs, history=True, dialect=NAME, network=form.get("networkCode"))


def render(reply: Reply, form: Mapping | None = None) -> str:
    return ("END " if reply.end else "CON ") + reply.text


def error(message: str, form: Mapping | None = None, shown: str | None = None) -> str:
    """A refused request: Africa's Talking ends the session itself on a 4xx
    (showing its own text), so the body is the reason, for its logs."""
    return message


# -- the end-of-session notification -------------------------------------------------
_STATUS = {"success": COMPLETED, "failed": FAILED}


def parse_event(form: Mapping[str, str]) -> Hop:
    """``POST /ussd/events``: how the session ended, as an end signal. Its
    ``input`` and ``lastAppResponse`` are not kept (an input may be a NIK);
    what is kept is bounded in length and alphabet like any untrusted text
    (``errorMessage`` one line of GSM-7, ``date`` and ``cost`` a date and an
    amount), else 400 naming the field."""
    session_id = wire.session_id(form, "sessionId")
    phone = msisdns.normalize(form.get("phoneNumber"), "phoneNumber")
    status = wire.text(form, "status")
    end = _STATUS.get(status.lower())
    if end is None and status.lower() != "incomplete":
        raise BadRequest("status must be Success, Incomplete or Failed")
    why = (form.get("errorMessage") or "").strip()
    problem = gsm7.text_problem(why, MAX_ERROR)
    if problem:
        raise BadRequest(f"errorMessage {problem}")
    if end is None:
        end = TIMEOUT if "time" in why.lower() else RELEASED
    event = {"status": status.capitalize(), "hops": _number(form, "hopsCount", MAX_HOPS),
             "duration_ms": _number(form, "durationInMillis", MAX_DURATION_MS),
             "error": why or None, "cost": _token(form, "cost", _COST, "an amount such as KES 0.05"),
             "date": _token(form, "date", _DATE, "a date such as 2025-01-31 12:00:00")}
    return Hop(session_id=session_id, msisdn=phone,
               service_code=(form.get("serviceCode") or "").strip(),
               end=end, dialect=NAME, event=event)


MAX_ERROR = 200
MAX_HOPS = 10_000
MAX_DURATION_MS = 86_400_000  # a day: no USSD session lasts minutes
_DATE = re.compile(r"[0-9][0-9 :.TZ+-]{0,39}")
_COST = re.compile(r"[A-Za-z0-9 .,]{1,40}")


def _number(form: Mapping[str, str], name: str, high: int) -> int | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    number = digits.number(value, 0, high)
    if number is None:
        raise BadRequest(f"{name} must be a whole number from 0 to {high}")
    return number


def _token(form: Mapping[str, str], name: str, shape: re.Pattern, example: str) -> str | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    if not shape.fullmatch(value):
        raise BadRequest(f"{name} must be {example} (at most 40 characters)")
    return value


def parse_sms(form: Mapping[str, str]) -> InboundSms:
    """Validate one inbound SMS notification."""
    sender = msisdns.normalize(form.get("from"), "from")
    text = form.get("text")
    if text is None:
        raise BadRequest("missing text")
    if len(text) > 1600:
        raise BadRequest("text is over 1600 characters")
    return InboundSms(sender=sender, to=(form.get("to") or "").strip(), text=text,
                      message_id=wire.text(form, "id"), date=form.get("date"),
                      link_id=form.get("linkId"))


# -- the gateway's side (the simulator and tests act as Africa's Talking) -----------
def encode(session_id: str, msisdn: str, service_code: str, history: list[str],
           new_input: str | None, kind: str) -> tuple[str, str, dict]:
    """The request Africa's Talking would send: ``kind`` is ``dial`` (``history``
    typed in advance), ``input`` (``new_input`` after ``history``), or ``release``
    / ``timeout`` / ``completed`` (its end-of-session notification: ``Incomplete``,
    or ``Success`` after the app's ``END``)."""
    if kind in ("release", "timeout", "completed"):
        return EVENTS_PATH, "application/x-www-form-urlencoded", {
            "sessionId": session_id, "phoneNumber": msisdn, "serviceCode": service_code,
            "status": "Success" if kind == "completed" else "Incomplete",
            "hopsCount": str(len(history) + 1),
            "errorMessage": {"timeout": "Session timed out", "release": "User cancelled"}.get(kind, ""),
            "durationInMillis": "1000", "input": "", "lastAppResponse": "", "date": "", "cost": ""}
    inputs = list(history) + ([] if new_input is None else [new_input])
    return PATH, "application/x-www-form-urlencoded", {
        "sessionId": session_id, "serviceCode": service_code, "phoneNumber": msisdn,
        "text": "*".join(inputs)}


def decode(status: int, content_type: str, body: str) -> tuple[str, bool]:
    """What the phone shows, and whether the session ended."""
    if status != 200 or body[:4] not in ("CON ", "END "):
        return body, True
    return body[4:], body.startswith("END ")
