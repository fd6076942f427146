"""An inbound SMS as every dialect parses it: the neutral message a gateway
(``ussd_app.gateways``) hands the keyword router (``ussd_app.sms``). It is core's
so that neither of the two imports the other."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InboundSms:
    sender: str
    to: str
    text: str
    message_id: str
    date: str | None = None
    link_id: str | None = None
