"""Subscriber profiles: status, credit score, free attributes, language."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import redis
from msgspec import UNSET, UnsetType
from tqdm import tqdm

from ussd_app.core import bodies, keys, store
from ussd_app.core.bodies import Meta

STATUSES = ("active", "blocked")


@dataclass(frozen=True)
class Profile:
    msisdn: str
    status: str | None = None  # None: not enrolled
    credit_score: int | None = None
    attributes: dict = field(default_factory=dict)
    lang: str | None = None

    @property
    def enrolled(self) -> bool:
        return self.status is not None

    def public(self) -> dict:
        return {"msisdn": self.msisdn, "status": self.status, "credit_score": self.credit_score,
                "attributes": self.attributes, "language": self.lang or "id"}


class ProfileBody(bodies.Body):
    """A PUT body: only the fields sent change (``credit_score`` null clears it)."""
    status: Literal[STATUSES] | UnsetType = UNSET
    credit_score: Annotated[int, Meta(ge=0, le=1000, description="a whole number from 0 to 1000")
                            ] | None | UnsetType = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET
    language: Literal["id", "en"] | UnsetType = UNSET


def validate(body: dict) -> dict:
    """The fields of a PUT body (:class:`ProfileBody`), checked; BadRequest names the wrong one."""
    got = bodies.decode(body, ProfileBody)
    out = {name: getattr(got, name) for name in ("status", "credit_score", "attributes")
           if getattr(got, name) is not UNSET}
    if got.language is not UNSET:
        out["lang"] = got.language
    return out


def put(r: redis.Redis, msisdn: str, fields: dict) -> Profile:
    """Create or update a profile (a new one is enrolled as active)."""
    mapping = {}
    for name, value in fields.items():
        if name == "attributes":
            value = json.dumps(value, separators=(",", ":"))
        mapping[name] = "" if value is None else value
    pipe = r.pipeline(transaction=False)  # the index lives in another slot
    pipe.hsetnx(keys.profile(msisdn), "status", "active")
    if mapping:
        pipe.hset(keys.profile(msisdn), mapping=mapping)
    pipe.sadd(keys.SUBSCRIBERS, msisdn)
    pipe.execute()
    return get(r, msisdn)


def from_hash(msisdn: str, raw: dict) -> Profile:
    score = raw.get("credit_score")
    return Profile(msisdn=msisdn, status=raw.get("status") or None,
                   credit_score=int(score) if score else None,
                   attributes=json.loads(raw["attributes"]) if raw.get("attributes") else {},
                   lang=raw.get("lang") or None)


def get(r: redis.Redis, msisdn: str) -> Profile:
    (flat,) = store.roundtrip(r, ("HGETALL", keys.profile(msisdn)))
    return from_hash(msisdn, store.pairs(flat))


def set_language(r: redis.Redis, msisdn: str, lang: str) -> None:
    r.hset(keys.profile(msisdn), "lang", lang)


def language(r: redis.Redis, msisdn: str) -> str | None:
    return r.hget(keys.profile(msisdn), "lang")


def progress(r: redis.Redis, total: int | None = None, show: bool = True):
    """A progress bar over ``total`` subscribers (default: every known one),
    drawn only on a terminal."""
    return tqdm(total=r.scard(keys.SUBSCRIBERS) if total is None else total, unit="subscribers",
                disable=not (show and sys.stderr.isatty()))


def in_batches(r: redis.Redis, size: int) -> Iterator[list[str]]:
    """Every known MSISDN, ``size`` at a time (SSCAN: a million never sit in memory)."""
    cursor = 0
    while True:
        cursor, chunk = r.sscan(keys.SUBSCRIBERS, cursor, count=size)
        if chunk:
            yield chunk
        if cursor == 0:
            return
