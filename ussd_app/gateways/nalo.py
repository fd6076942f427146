"""Nalo: JSON hops, JSON replies.

Request: ``USERID`` (the application's id at Nalo), ``MSISDN``, ``USERDATA``,
``MSGTYPE`` (true on the first hop, when ``USERDATA`` holds the dialled code,
e.g. ``*700*1#``, whose extra digits are inputs typed in advance; false
after, when it holds the latest input), ``NETWORK``, ``SESSIONID``. Reply:
``{"USERID", "MSISDN", "MSG", "MSGTYPE"}``, ``MSGTYPE`` true to continue,
false to end.

Retries: Nalo gives no hop identity and sends only the latest input, so every
hop is a step (the same key twice is two steps, as ``1`` Tukar then ``1`` Ya);
only a second first hop (``MSGTYPE`` true) of a live session is a retry.
Money stays exactly-once without it (the redemption's key is not the input).
Nalo sends no release or timeout: a session it drops simply gets no further
hop (counted as a timeout once it expires, and resumable by redialling).
"""
from __future__ import annotations

from collections.abc import Mapping

from ussd_app.gateways import wire
from ussd_app.ussd.types import Hop, Reply

NAME = "nalo"
PATH = "/ussd/nalo"
FORMAT = "json"
CONTENT_TYPE = "application/json"
MSISDN = "MSISDN"


def read(body: bytes) -> dict:
    return wire.json_object(body)


def parse(fields: Mapping, code: str) -> Hop:
    return wire.latest_input_hop(fields, NAME, code, session="SESSIONID", msisdn="MSISDN", user="USERID", first="MSGTYPE",
                                 data="USERDATA", network="NETWORK")


def _echo(fields: Mapping | None) -> dict:
    fields = fields or {}
    return {"USERID": str(fields.get("USERID") or ""), "MSISDN": str(fields.get("MSISDN") or "")}


def render(reply: Reply, fields: Mapping | None = None) -> str:
    return wire.json_reply({**_echo(fields), "MSG": reply.text, "MSGTYPE": not reply.end})


def error(message: str, fields: Mapping | None = None, shown: str = "") -> str:
    """A refused request: the phone shows ``shown`` (subscriber text); the
    technical ``message`` is under ``error`` only."""
    return wire.json_reply({**_echo(fields), "MSG": shown, "MSGTYPE": False, "error": message})


# -- the gateway's side (the simulator and tests act as Nalo) -----------------------
def encode(session_id: str, msisdn: str, service_code: str, history: list[str],
           new_input: str | None, kind: str) -> tuple[str, str, dict] | None:
    """Nalo's request for a ``dial`` or an ``input``; None for ``release`` and
    ``timeout``, which Nalo does not send."""
    if kind not in ("dial", "input"):
        return None
    first = kind == "dial"
    return PATH, CONTENT_TYPE, {
        "USERID": "poinplus", "MSISDN": msisdn, "NETWORK": "TELKOMSEL", "SESSIONID": session_id,
        "MSGTYPE": first,
        "USERDATA": wire.dial_string(service_code, history) if first else (new_input or "")}


def decode(status: int, content_type: str, body: str) -> tuple[str, bool]:
    return wire.json_decode(status, body, "MSG", lambda data: data.get("MSGTYPE") is True)
