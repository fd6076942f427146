"""USSD sessions in Redis: one JSON document per session, with a TTL."""
from __future__ import annotations

import msgspec
import redis

from ussd_app.core import keys, store
from ussd_app.ussd.types import Account, Accounts


class Session(msgspec.Struct):
    """A session's document: read and written whole by msgspec, a tenth of
    the time of json plus a dataclass on every hop."""
    id: str
    msisdn: str
    state: str
    lang: str = "id"
    history: list[str] = []
    page: int = 0
    data: dict = {}
    last_text: str | None = None
    last_reply: str | None = None
    last_end: bool = False
    hops: int = 0


_decode = msgspec.json.Decoder(Session).decode
_encode = msgspec.json.Encoder().encode


def load(r: redis.Redis, accounts: Accounts, session_id: str, msisdn: str, now: float
         ) -> tuple[Session | None, Account]:
    """The session and the caller's account (status, language, points), in one round trip."""
    raw, account = store.roundtrip(r, ("GET", keys.session(msisdn, session_id)),
                                   accounts.command(msisdn, now))
    return (_decode(raw) if raw else None), accounts.parse(account)


def save(r: redis.Redis, session: Session, ttl: int) -> None:
    store.roundtrip(r, ("SET", keys.session(session.msisdn, session.id), _encode(session), "EX", ttl))


def new_input(last_text: str, text: str) -> str:
    """What ``text`` adds to the history seen so far.

    Africa's Talking sends every input joined by ``*``; a gateway that sends
    only the latest input is handled too (its text is taken whole).
    """
    if last_text == "":
        return text
    if text.startswith(last_text + "*"):
        return text[len(last_text) + 1:]
    return text
