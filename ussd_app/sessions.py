"""USSD sessions in Redis: one JSON document per session, with a TTL."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from . import keys, points, store


@dataclass
class Session:
    id: str
    msisdn: str
    state: str
    lang: str = "id"
    history: list[str] = field(default_factory=list)
    page: int = 0
    data: dict = field(default_factory=dict)
    last_text: str | None = None
    last_reply: str | None = None
    last_end: bool = False
    hops: int = 0


def load(r: redis.Redis, session_id: str, msisdn: str, now: float
         ) -> tuple[Session | None, points.Points]:
    """The session and the caller's account (status, language, points), in one round trip."""
    view = points.VIEW.command(*points.view_args(msisdn, now))
    try:
        raw, account = store.roundtrip(r, ("GET", keys.session(session_id)), view)
    except redis.exceptions.NoScriptError:
        points.VIEW.load(r)
        raw, account = store.roundtrip(r, ("GET", keys.session(session_id)), view)
    return (Session(**json.loads(raw)) if raw else None), points.parse_view(account)


def save(r: redis.Redis, session: Session, ttl: int) -> None:
    doc = json.dumps(vars(session), separators=(",", ":"))
    store.roundtrip(r, ("SET", keys.session(session.id), doc, "EX", ttl))


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
