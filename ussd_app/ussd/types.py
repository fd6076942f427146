"""What the USSD machinery is handed and gives back: the neutral hop every
gateway dialect parses into, the reply it renders, and the caller's account as
the composition root lets the machinery read it (``ussd/`` knows no domain)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import redis

from ussd_app.core.config import Config
from ussd_app.core.pii import Vault
from ussd_app.core.store import Kept


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


class Account(Protocol):
    """What the machinery itself needs of the caller's account."""
    status: str | None  # None: not enrolled
    lang: str | None


class Accounts(Protocol):
    """Reads the caller's account in the same round trip as the session."""

    def command(self, msisdn: str, now: float) -> tuple:
        """The Redis command that reads it (for ``store.roundtrip``)."""

    def parse(self, reply: Any) -> Account:
        """The account from that command's reply."""


class Services(Protocol):
    """What a hop is handed: the composition root's ``ussd_app.services.Services``."""
    r: redis.Redis
    config: Config
    accounts: Accounts
    vault: Vault
    kept: Kept
    sms: Any  # ussd_app.sms.outbound.Outbound: screens pass it on, never import it
    jobs: Any  # ussd_app.core.queue.Jobs

    def clock(self) -> float:
        """Now, in epoch seconds."""
