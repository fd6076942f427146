"""USSD sessions in Redis: one JSON document per session, with a TTL."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from . import keys


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


def load(r: redis.Redis, session_id: str, msisdn: str) -> tuple[Session | None, str | None]:
    """The session, and the caller's saved language (for a new session), in one round trip."""
    pipe = r.pipeline(transaction=False)
    pipe.get(keys.session(session_id))
    pipe.hget(keys.profile(msisdn), "lang")
    raw, lang = pipe.execute()
    return (Session(**json.loads(raw)) if raw else None), lang


def save(r: redis.Redis, session: Session, ttl: int) -> None:
    r.set(keys.session(session.id), json.dumps(vars(session), separators=(",", ":")), ex=ttl)


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
