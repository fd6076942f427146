"""Hubtel: JSON hops, JSON replies.

Request: ``SessionId``, ``Mobile``, ``ServiceCode``, ``Type`` (``Initiation``,
``Response``, ``Release``, ``Timeout``; any case), ``Message`` (on
``Initiation`` the whole dialled string, e.g. ``*700*1#``, whose extra digits
are inputs typed in advance; later the latest input), ``Operator``,
``Sequence`` (the hop's number). Reply: ``{"Type": "Response"|"Release",
"Message", "Label", "DataType": "input"|"display", "FieldType": "text"}``.

Retries: ``Sequence`` identifies the hop, so the same ``Sequence`` again (or an
earlier one) is a retry, answered with the stored reply; the same key typed
twice arrives with two Sequences and is two steps. A second ``Initiation`` of
a live session is a retry of its first hop. ``Release`` and ``Timeout`` close
the session (a ``Timeout`` or a ``Release`` away from the main menu may be
resumed by redialling).
"""
from __future__ import annotations

from collections.abc import Mapping

from ussd_app.core import msisdn as msisdns
from ussd_app.core.errors import BadRequest
from ussd_app.gateways import wire
from ussd_app.ussd.types import RELEASED, TIMEOUT, Hop, Reply

NAME = "hubtel"
PATH = "/ussd/hubtel"
FORMAT = "json"
CONTENT_TYPE = "application/json"
MSISDN = "Mobile"
TYPES = ("initiation", "response", "release", "timeout")
# Documented by Hubtel for its other channels (the Hubtel app, web and POS:
# a service lookup, a favourite, a cart): not served here, answered with a
# polite Release.
DECLINED = ("query", "favorite", "addtocart")


def read(body: bytes) -> dict:
    return wire.json_object(body)


def parse(fields: Mapping, code: str) -> Hop:
    """One hop for the configured service ``code``. ``ServiceCode`` (``713*4``
    or ``*713*4#``) and, on ``Initiation``, the dialled ``Message`` must start
    with that code (else NotOurs); what follows it is typed in advance."""
    session_id = wire.session_id(fields, "SessionId")
    phone = msisdns.normalize(wire.text(fields, "Mobile"), "Mobile")
    kind = wire.text(fields, "Type").lower()
    if kind in DECLINED:
        raise wire.Declined(f"Type {kind} is not served on USSD")
    if kind not in TYPES:
        raise BadRequest("Type must be Initiation, Response, Release, Timeout, Query, Favorite or AddToCart")
    sequence = fields.get("Sequence")
    if sequence is not None and (isinstance(sequence, bool)
                                 or not wire.DIGITS.fullmatch(str(sequence).strip())
                                 or len(str(sequence).strip()) > 18):
        raise BadRequest("Sequence must be a whole number")
    message = wire.text(fields, "Message", required=False)
    given = wire.text(fields, "ServiceCode", required=False)
    wire.check_code(given, code)
    hop = dict(session_id=session_id, msisdn=phone, dialect=NAME, service_code=code,
               network=wire.text(fields, "Operator", required=False) or None,
               seq=None if sequence is None else str(int(str(sequence).strip())))
    if kind == "initiation":
        inputs = (wire.typed_ahead(message, code) if wire.is_dial(message)
                  else wire.segments(given)[len(wire.segments(code)):])
        return Hop(**hop, new=True, inputs=inputs)
    if kind == "response":
        return Hop(**hop, new=False, inputs=(message,))
    return Hop(**hop, end=RELEASED if kind == "release" else TIMEOUT)


def render(reply: Reply, fields: Mapping | None = None) -> str:
    return wire.json_reply({"Type": "Release" if reply.end else "Response", "Message": reply.text,
                            "Label": reply.text.split("\n", 1)[0][:60],
                            "DataType": "display" if reply.end else "input", "FieldType": "text"})


def error(message: str, fields: Mapping | None = None, shown: str = "") -> str:
    """A refused request: the phone shows ``shown`` (subscriber text); the
    technical ``message`` is under ``error`` only."""
    return wire.json_reply({"Type": "Release", "Message": shown, "Label": shown[:60],
                            "DataType": "display", "FieldType": "text", "error": message})


# -- the gateway's side (the simulator and tests act as Hubtel) -------------------------
def encode(session_id: str, msisdn: str, service_code: str, history: list[str],
           new_input: str | None, kind: str) -> tuple[str, str, dict]:
    """Hubtel's request: a ``dial`` (``history`` typed in advance), an ``input``
    after ``history``, a ``release`` or a ``timeout``. Each hop's ``Sequence``
    follows from the history (the same hop sent again has the same one)."""
    body = {"SessionId": session_id, "Mobile": msisdn, "ServiceCode": "*".join(wire.segments(service_code)),
            "Operator": "telkomsel", "ClientState": "", "Platform": "USSD"}
    if kind == "dial":
        body.update(Type="Initiation", Message=wire.dial_string(service_code, history), Sequence=1)
    else:
        body.update(Type={"input": "Response", "release": "Release", "timeout": "Timeout"}[kind],
                    Message=new_input or "", Sequence=len(history) + 2)
    return PATH, CONTENT_TYPE, body


def decode(status: int, content_type: str, body: str) -> tuple[str, bool]:
    return wire.json_decode(status, body, "Message", lambda data: data.get("Type") == "Response")
