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
from ussd_app.ussd.funnel import Counts


# What a gateway says of a session besides its inputs (``Hop.end``).
RELEASED, TIMEOUT, FAILED, COMPLETED = "released", "timeout", "error", "completed"


@dataclass(frozen=True)
class Hop:
    """One hop as every gateway dialect hands it to the machinery, which never
    sees a dialect's own text.

    ``inputs`` are this hop's inputs: on the first hop of a shortcut dial
    (``*700*1*2#``) the inputs typed in advance. Where ``history`` is set
    they are instead every input of the session so far (Africa's Talking's
    cumulative ``text``): the machinery takes what it has not seen yet, and the
    same history again is a retry. ``new`` is the gateway saying the session
    starts (None: it does not say). ``end`` is the gateway closing the session
    (released, timeout, error, completed): nothing is typed, nothing shown.
    ``seq`` is the gateway's identity of the hop (Hubtel's ``Sequence``): the
    same twice is a retry. Without ``seq`` or ``history`` a hop is never taken
    for a retry (the same key twice is two steps), except a second ``new``.
    """
    session_id: str
    msisdn: str
    service_code: str = ""
    inputs: tuple[str, ...] = ()
    history: bool = False
    new: bool | None = None
    end: str | None = None
    seq: str | None = None
    dialect: str = "africastalking"
    network: str | None = None
    event: dict | None = None
    """What an end-of-session notification says (status, hops, duration...),
    kept with the session; never a subscriber's input."""


@dataclass(frozen=True)
class Reply:
    text: str
    end: bool = False


class Account(Protocol):
    """What the machinery itself needs of the caller's account."""
    status: str | None  # None: not enrolled
    lang: str | None


class Accounts(Protocol):
    """Reads the caller's account, and the session with it, in one round trip."""

    def commands(self, msisdn: str, now: float, strings: tuple[str, ...] = ()) -> tuple[tuple, ...]:
        """The Redis commands that read it (for ``store.roundtrip``), and the
        values of ``strings`` (keys in the subscriber's hash slot) with it."""

    def parse(self, replies: list) -> Account:
        """The account from those commands' replies: the values of ``strings``
        are the last of its ``also``, in their order."""


class Ahead(Protocol):
    """What screens read most often, read with the session in its round trip
    (a list screen's revision token, a subscriber's offers): the screen that
    needs it then makes no round trip of its own. Each reply is taken once,
    and none after an answer acted (``Ctx.ahead``)."""

    def strings(self, msisdn: str) -> tuple[str, ...]:
        """The keys read with the account (``Accounts.commands``' ``strings``)."""

    def parse(self, account: Account, values: list) -> dict[str, Any]:
        """What was read, by name, as screens ask for it: from the values of
        :meth:`strings` and the account (which the composition root may have
        asked to read more with it)."""


class Services(Protocol):
    """What a hop is handed: the composition root's ``ussd_app.services.Services``."""
    r: redis.Redis
    config: Config
    accounts: Accounts
    ahead: Ahead | None  # None: nothing is read ahead (a Redis Cluster: those keys live elsewhere)
    vault: Vault
    kept: Kept
    sms: Any  # ussd_app.sms.outbound.Outbound: screens pass it on, never import it
    jobs: Any  # ussd_app.core.queue.Jobs
    funnel: Counts  # this process's funnel counts, written each second

    def clock(self) -> float:
        """Now, in epoch seconds."""
