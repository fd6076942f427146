"""An inbound SMS as every dialect parses it."""
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
