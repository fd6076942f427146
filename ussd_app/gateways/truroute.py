"""TruRoute: XML hops, XML replies.

Request: ``<ussd><msisdn/><sessionid/><type/><msg/></ussd>``, ``type`` 1 a new
session (``msg`` the dialled code, e.g. ``*700*1#``, whose extra digits are
inputs typed in advance), 2 a response (``msg`` the latest input), 3 released
by the user, 4 timeout, 10 a premium-rate charge failed (``msg`` the reason:
we never ask for a charge, so the session ends politely and the reason is
logged). Reply: the same element with ``type`` 2 (continue) or 3 (release),
``msg`` and, as TruRoute's template has it, ``<premium><cost>0</cost>
<ref>NULL</ref></premium>`` (no charge). The XML is read with the standard library's expat
parser, refusing any DTD (so no entity is ever declared, expanded or
fetched): the wire is one flat element, and a tree builder (ElementTree,
defusedxml) cost a hop a fifth of its time (bench/run.py --dialect truroute).

Retries: TruRoute gives no hop identity and sends only the latest input, so
every type 2 hop is a step (the same key twice is two steps); a second type 1
of a live session is a retry of its first hop. Types 3 and 4 close the
session (away from the main menu, a redial may resume it).
"""
from __future__ import annotations

from collections.abc import Mapping
from xml.parsers import expat
from xml.sax.saxutils import escape

from ussd_app.core import msisdn as msisdns
from ussd_app.core.errors import BadRequest
from ussd_app.gateways import wire
from ussd_app.ussd.types import FAILED, RELEASED, TIMEOUT, Hop, Reply

NAME = "truroute"
PATH = "/ussd/truroute"
FORMAT = "xml"
CONTENT_TYPE = "application/xml; charset=utf-8"
MSISDN = "msisdn"
FIELDS = ("msisdn", "sessionid", "type", "msg")
CHARGE_FAILED = "10"
PREMIUM = "<premium><cost>0</cost><ref>NULL</ref></premium>"  # no charge, no charging reference
NOT_USSD = "body must be a <ussd> XML document"


def _refuse(*_):
    raise BadRequest(NOT_USSD)


def read(body: bytes, names: tuple[str, ...] = FIELDS) -> dict:
    """The ``<ussd>`` element's fields (those ``names``); BadRequest for
    anything else (a DTD included)."""
    fields, depth, text, seen = {}, [], [], []

    def start(name, attrs):
        if not depth and (seen or name != "ussd"):
            _refuse()
        seen.append(name)
        depth.append(name)
        text.clear()

    def end(name):
        if len(depth) == 2 and name in names:
            fields[name] = "".join(text)
        depth.pop()

    def chars(data):
        if len(depth) == 2:
            text.append(data)

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, LookupError, ValueError):  # LookupError: an unknown encoding="..."
        raise BadRequest(NOT_USSD) from None
    if not seen:
        _refuse()
    return fields


def parse(fields: Mapping, code: str) -> Hop:
    """One hop for the configured service ``code``: a type 1 ``msg`` must
    start with it (else NotOurs); what follows it is typed in advance."""
    session_id = wire.session_id(fields, "sessionid")
    phone = msisdns.normalize(wire.text(fields, "msisdn"), "msisdn")
    kind = wire.text(fields, "type")
    if kind not in ("1", "2", "3", "4", CHARGE_FAILED):
        raise BadRequest("type must be 1, 2, 3, 4 or 10")
    msg = wire.text(fields, "msg", required=False)
    if kind == CHARGE_FAILED:
        reason = "".join(c for c in msg[:100] if c.isprintable())
        raise wire.Declined(f"type 10: a premium charge failed ({reason!r}); we ask for none",
                            "error.not_processed",
                            Hop(session_id=session_id, msisdn=phone, end=FAILED, dialect=NAME))
    if kind == "1":
        return Hop(session_id=session_id, msisdn=phone, service_code=code,
                   inputs=wire.typed_ahead(msg, code), new=True, dialect=NAME)
    if kind == "2":
        return Hop(session_id=session_id, msisdn=phone, inputs=(msg,), new=False, dialect=NAME)
    return Hop(session_id=session_id, msisdn=phone, end=RELEASED if kind == "3" else TIMEOUT,
               dialect=NAME)


def _xml(fields: Mapping | None, kind: str, msg: str, error: str | None = None) -> str:
    fields = fields or {}
    out = [f"<ussd><msisdn>{escape(str(fields.get('msisdn') or ''))}</msisdn>"
           f"<sessionid>{escape(str(fields.get('sessionid') or ''))}</sessionid>"
           f"<type>{kind}</type><msg>{escape(msg)}</msg>{PREMIUM}"]
    if error is not None:
        out.append(f"<error>{escape(error)}</error>")
    out.append("</ussd>")
    return "".join(out)


def render(reply: Reply, fields: Mapping | None = None) -> str:
    return _xml(fields, "3" if reply.end else "2", reply.text)


def error(message: str, fields: Mapping | None = None, shown: str = "") -> str:
    """A refused request: the phone shows ``shown`` (subscriber text) in
    ``msg``; the technical ``message`` is in ``<error>`` only."""
    return _xml(fields, "3", shown, error=message)


# -- the gateway's side (the simulator and tests act as TruRoute) -----------------------
def encode(session_id: str, msisdn: str, service_code: str, history: list[str],
           new_input: str | None, kind: str) -> tuple[str, str, str]:
    """TruRoute's request: a ``dial`` (``history`` typed in advance), an ``input``,
    a ``release`` (type 3) or a ``timeout`` (type 4)."""
    kinds = {"dial": "1", "input": "2", "release": "3", "timeout": "4"}
    msg = wire.dial_string(service_code, history) if kind == "dial" else (new_input or "")
    return PATH, "application/xml", (f"<ussd><msisdn>{escape(msisdn)}</msisdn>"
                                     f"<sessionid>{escape(session_id)}</sessionid>"
                                     f"<type>{kinds[kind]}</type><msg>{escape(msg)}</msg></ussd>")


def decode(status: int, content_type: str, body: str) -> tuple[str, bool]:
    try:
        fields = read(body.encode())
    except BadRequest:
        return body, True
    return fields.get("msg", ""), status != 200 or fields.get("type") != "2"


def reason(body: str) -> str | None:
    """The technical reason of a refused request (its ``<error>``), for tests and logs."""
    try:
        return read(body.encode(), ("error",)).get("error")
    except BadRequest:
        return None
