"""What every gateway dialect parses into and renders from."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UssdRequest:
    session_id: str
    service_code: str
    msisdn: str
    text: str
    network_code: str | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    end: bool = False
