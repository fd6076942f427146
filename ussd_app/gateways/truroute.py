"""TruRoute: XML hops, XML replies.

Request: ``<ussd><msisdn/><sessionid/><type/><msg/></ussd>``, ``type`` 1 a new
session (``msg`` the dialled code, e.g. ``*700*1#``, whose extra digits are
inputs typed in advance), 2 a response (``msg`` the latest input), 3 released
by the user, 4 timeout. Reply: the same element with ``type`` 2 (continue) or
3 (release) and ``msg``. The XML is read with defusedxml: no DTD, no entity
expansion, no external references.

Retries: TruRoute gives no hop identity and sends only the latest input, so
every type 2 hop is a step (the same key twice is two steps); a second type 1
of a live session is a retry of its first hop. Types 3 and 4 close the
session (away from the main menu, a redial may resume it).
"""
from __future__ import annotations

from collections.abc import Mapping
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ussd_app.core import msisdn as msisdns
from ussd_app.core.errors import BadRequest
from ussd_app.gateways import wire
from ussd_app.ussd.types import RELEASED, TIMEOUT, Hop, Reply

NAME = "truroute"
PATH = "/ussd/truroute"
FORMAT = "xml"
CONTENT_TYPE = "application/xml; charset=utf-8"
FIELDS = ("msisdn", "sessionid", "type", "msg")


def read(body: bytes) -> dict:
    """The ``<ussd>`` element's fields; BadRequest for anything else."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise BadRequest("body must be a <ussd> XML document") from None
    if root.tag != "ussd":
        raise BadRequest("body must be a <ussd> XML document")
    return {child.tag: (child.text or "") for child in root if child.tag in FIELDS}


def parse(fields: Mapping) -> Hop:
    session_id = wire.session_id(fields, "sessionid")
    phone = msisdns.normalize(wire.text(fields, "msisdn"), "msisdn")
    kind = wire.text(fields, "type")
    if kind not in ("1", "2", "3", "4"):
        raise BadRequest("type must be 1, 2, 3 or 4")
    msg = wire.text(fields, "msg", required=False)
    if kind == "1":
        return Hop(session_id=session_id, msisdn=phone, service_code=wire.service_code(msg),
                   inputs=wire.typed_ahead(msg), new=True, dialect=NAME)
    if kind == "2":
        return Hop(session_id=session_id, msisdn=phone, inputs=(msg,), new=False, dialect=NAME)
    return Hop(session_id=session_id, msisdn=phone, end=RELEASED if kind == "3" else TIMEOUT,
               dialect=NAME)


def _xml(fields: Mapping | None, kind: str, msg: str, error: str | None = None) -> str:
    fields = fields or {}
    root = Element("ussd")
    for name in ("msisdn", "sessionid"):
        SubElement(root, name).text = str(fields.get(name) or "")
    SubElement(root, "type").text = kind
    SubElement(root, "msg").text = msg
    if error is not None:
        SubElement(root, "error").text = error
    return tostring(root, encoding="unicode")


def render(reply: Reply, fields: Mapping | None = None) -> str:
    return _xml(fields, "3" if reply.end else "2", reply.text)


def error(message: str, fields: Mapping | None = None) -> str:
    return _xml(fields, "3", message, error=message)


# -- the gateway's side (the simulator and tests act as TruRoute) -----------------------
def encode(session_id: str, msisdn: str, service_code: str, history: list[str],
           new_input: str | None, kind: str) -> tuple[str, str, str]:
    """TruRoute's request: a ``dial`` (``history`` typed in advance), an ``input``,
    a ``release`` (type 3) or a ``timeout`` (type 4)."""
    kinds = {"dial": "1", "input": "2", "release": "3", "timeout": "4"}
    msg = wire.dial_string(service_code, history) if kind == "dial" else (new_input or "")
    root = Element("ussd")
    for name, value in (("msisdn", msisdn), ("sessionid", session_id), ("type", kinds[kind]),
                        ("msg", msg)):
        SubElement(root, name).text = value
    return PATH, "application/xml", tostring(root, encoding="unicode")


def decode(status: int, content_type: str, body: str) -> tuple[str, bool]:
    try:
        fields = read(body.encode())
    except BadRequest:
        return body, True
    return fields.get("msg", ""), status != 200 or fields.get("type") != "2"
