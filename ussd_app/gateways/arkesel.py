"""Arkesel: JSON hops, JSON replies.

Request: ``sessionID``, ``userID`` (the application's id at Arkesel),
``msisdn``, ``userData`` (on a new session the dialled code, e.g. ``*700*1#``,
whose extra digits are inputs typed in advance; after, the latest input),
``network``, ``newSession`` (true on the first hop). Reply: ``{"sessionID",
"userID", "msisdn", "message", "continueSession"}``.

Retries: Arkesel gives no hop identity and sends only the latest input, so
every hop is a step (the same key twice is two steps); only a second new
session of a live session is a retry of its first hop. Arkesel sends no
release or timeout: a dropped session simply gets no further hop (a timeout
once it expires, and resumable by redialling).
"""
from __future__ import annotations

from collections.abc import Mapping

from ussd_app.gateways import wire
from ussd_app.ussd.types import Hop, Reply

NAME = "arkesel"
PATH = "/ussd/arkesel"
FORMAT = "json"
CONTENT_TYPE = "application/json"
MSISDN = "msisdn"


def read(body: bytes) -> dict:
    return wire.json_object(body)


def parse(fields: Mapping, code: str) -> Hop:
    return wire.latest_input_hop(fields, NAME, code, session="sessionID", msisdn="msisdn", user="userID", first="newSession",
                                 data="userData", network="network")


def _echo(fields: Mapping | None) -> dict:
    fields = fields or {}
    return {name: str(fields.get(name) or "") for name in ("sessionID", "userID", "msisdn")}


def render(reply: Reply, fields: Mapping | None = None) -> str:
    return wire.json_reply({**_echo(fields), "message": reply.text, "continueSession": not reply.end})


def error(message: str, fields: Mapping | None = None, shown: str = "") -> str:
    """A refused request: the phone shows ``shown`` (subscriber text); the
    technical ``message`` is under ``error`` only."""
    return wire.json_reply({**_echo(fields), "message": shown, "continueSession": False,
                            "error": message})


# -- the gateway's side (the simulator and tests act as Arkesel) -----------------------
def encode(session_id: str, msisdn: str, service_code: str, history: list[str],
           new_input: str | None, kind: str) -> tuple[str, str, dict] | None:
    """Arkesel's request for a ``dial`` or an ``input``; None for ``release`` and
    ``timeout``, which Arkesel does not send."""
    if kind not in ("dial", "input"):
        return None
    first = kind == "dial"
    return PATH, CONTENT_TYPE, {
        "sessionID": session_id, "userID": "poinplus", "msisdn": msisdn, "network": "TELKOMSEL",
        "newSession": first,
        "userData": wire.dial_string(service_code, history) if first else (new_input or "")}


def decode(status: int, content_type: str, body: str) -> tuple[str, bool]:
    return wire.json_decode(status, body, "message", lambda data: data.get("continueSession") is True)
