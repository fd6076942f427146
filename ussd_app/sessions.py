"""USSD sessions in Redis: one JSON document per session, with a TTL."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

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


def load(r: redis.Redis, session_id: str) -> Session | None:
    raw = r.get(keys.session(session_id))
    return Session(**json.loads(raw)) if raw else None


def save(r: redis.Redis, session: Session, ttl: int) -> None:
    r.set(keys.session(session.id), json.dumps(asdict(session), separators=(",", ":")), ex=ttl)


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
