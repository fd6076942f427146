"""Africa's Talking dialect: form-encoded hops, ``CON``/``END`` plain-text replies."""
from __future__ import annotations

from collections.abc import Mapping

from ussd_app.core import msisdn as msisdns
from ussd_app.core.errors import BadRequest
from ussd_app.ussd.types import Reply, UssdRequest
from ussd_app.sms.types import InboundSms

MAX_TEXT = 200
CONTENT_TYPE = "text/plain; charset=utf-8"


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None or not value.strip():
        raise BadRequest(f"missing {name}")
    return value.strip()


def parse_ussd(form: Mapping[str, str]) -> UssdRequest:
    """Validate one USSD hop; BadRequest names the offending field."""
    session_id = _required(form, "sessionId")
    if len(session_id) > 128:
        raise BadRequest("sessionId is over 128 characters")
    phone = msisdns.normalize(form.get("phoneNumber"), "phoneNumber")
    text = form.get("text") or ""
    if len(text) > MAX_TEXT:
        raise BadRequest(f"text is over {MAX_TEXT} characters")
    return UssdRequest(session_id=session_id,
                       service_code=(form.get("serviceCode") or "").strip(),
                       msisdn=phone, text=text.strip(),
                       network_code=form.get("networkCode"))


def render(reply: Reply) -> str:
    return ("END " if reply.end else "CON ") + reply.text


def parse_sms(form: Mapping[str, str]) -> InboundSms:
    """Validate one inbound SMS notification."""
    sender = msisdns.normalize(form.get("from"), "from")
    text = form.get("text")
    if text is None:
        raise BadRequest("missing text")
    if len(text) > 1600:
        raise BadRequest("text is over 1600 characters")
    return InboundSms(sender=sender, to=(form.get("to") or "").strip(), text=text,
                      message_id=_required(form, "id"), date=form.get("date"),
                      link_id=form.get("linkId"))
