"""Loyalty points: earnings as buckets with their own expiry, an append-only
ledger, balances that never count an expired bucket."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from ussd_app.core import keys, store
from ussd_app.core.formats import WIB
from ussd_app.core.store import Script

# Lua shared by the scripts below: the live buckets of a subscriber, soonest
# expiry first (ties: oldest bucket id first), and their sum.
LUA_LIVE = """
local function live(buckets_key, points_key, now)
  local ids = redis.call('ZRANGEBYSCORE', buckets_key, '(' .. now, '+inf', 'WITHSCORES')
  local out, total = {}, 0
  if #ids == 0 then return out, 0 end
  local names = {}
  for i = 1, #ids, 2 do names[#names + 1] = ids[i] end
  local pts = redis.call('HMGET', points_key, unpack(names))
  for i = 1, #names do
    local p = tonumber(pts[i]) or 0
    if p > 0 then
      out[#out + 1] = {names[i], ids[2 * i], p}
      total = total + p
    end
  end
  return out, total
end
local function ledger_append(ledger_key, counters_key, entry)
  entry['id'] = redis.call('HINCRBY', counters_key, 'ledger', 1)
  redis.call('RPUSH', ledger_key, cjson.encode(entry))
end
"""

# KEYS[1] idempotency hash   KEYS[2] buckets zset     KEYS[3] bucket points hash
# KEYS[4] ledger list        KEYS[5] counters hash    KEYS[6] profile hash
# ARGV[1] idempotency key    ARGV[2] points (>0)      ARGV[3] expiry epoch or 'inf'
# ARGV[4] now (epoch)        ARGV[5] source           ARGV[6] reference
# Returns {created 1|0, balance}.
EARN = Script(LUA_LIVE + """
local now = tonumber(ARGV[4])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  local _, balance = live(KEYS[2], KEYS[3], now)
  return {0, balance}
end
redis.call('HSETNX', KEYS[6], 'status', 'active')
local _, before = live(KEYS[2], KEYS[3], now)
local id = string.format('b%010d', redis.call('HINCRBY', KEYS[5], 'bucket', 1))
local points = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('HSET', KEYS[3], id, points)
local _, after = live(KEYS[2], KEYS[3], now)
local expires = cjson.null
if ARGV[3] ~= 'inf' then expires = tonumber(ARGV[3]) end
ledger_append(KEYS[4], KEYS[5], {type = 'earn', points = points, bucket = id,
  expires_at = expires, source = ARGV[5], reference = ARGV[6], by = ARGV[5],
  at = now, balance_before = before, balance_after = after})
redis.call('HSET', KEYS[1], ARGV[1], id)
return {1, after}
""", durable=True)

# KEYS[1] buckets zset  KEYS[2] bucket points hash  KEYS[3] ledger  KEYS[4] counters
# ARGV[1] now
# Moves every bucket at or past its expiry out of the live set with an 'expire'
# ledger entry. Returns the points expired. Running it twice expires nothing twice.
EXPIRE = Script(LUA_LIVE + """
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
local _, balance = live(KEYS[1], KEYS[2], now)
local total = 0
for i = 1, #due, 2 do
  local id = due[i]
  local p = tonumber(redis.call('HGET', KEYS[2], id)) or 0
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if p > 0 then
    total = total + p
    ledger_append(KEYS[3], KEYS[4], {type = 'expire', points = -p, bucket = id,
      expires_at = tonumber(due[i + 1]), by = 'system', reason = 'expired', at = now,
      balance_before = balance, balance_after = balance})
  end
end
return total
""")


@dataclass(frozen=True)
class Bucket:
    id: str
    points: int
    expires_at: float  # epoch seconds; math.inf = never


@dataclass(frozen=True)
class Points:
    balance: int
    buckets: list[Bucket]
    status: str | None = None  # the programme status: active, blocked, None = not enrolled
    lang: str | None = None
    also: tuple = ()  # what else the view was asked to read (view_commands' fields, hashes and strings)

    @property
    def next_expiry(self) -> Bucket | None:
        """The soonest expiry, with every point expiring at that moment."""
        dated = [b for b in self.buckets if b.expires_at != math.inf]
        if not dated:
            return None
        first = dated[0].expires_at
        return Bucket("", sum(b.points for b in dated if b.expires_at == first), first)


def default_expiry(now: float, policy: str, days: int) -> float:
    """Calendar: 31 Dec 23:59 WIB of the earning's year; rolling: ``days`` later."""
    if policy == "rolling":
        return now + timedelta(days=days).total_seconds()
    year = datetime.fromtimestamp(now, WIB).year
    return datetime(year, 12, 31, 23, 59, tzinfo=WIB).timestamp()


def _subscriber_keys(msisdn: str) -> list[str]:
    return [keys.idempotency(msisdn), keys.buckets(msisdn), keys.bucket_points(msisdn),
            keys.ledger(msisdn), keys.counters(msisdn), keys.profile(msisdn)]


def earn(r: redis.Redis, msisdn: str, points: int, source: str, reference: str,
         expires_at: float, now: float) -> tuple[bool, int]:
    """Credit ``points`` once per ``reference``; returns (created, balance)."""
    exp = "inf" if expires_at == math.inf else repr(float(expires_at))
    created, balance = EARN(r, _subscriber_keys(msisdn),
                            [f"earn:{reference}", points, exp, now, source, reference])
    if created:
        r.sadd(keys.SUBSCRIBERS, msisdn)
    return bool(created), int(balance)


def view(r: redis.Redis, msisdn: str, now: float) -> Points:
    """Balance, live buckets (soonest expiry first), status and language, in
    one round trip."""
    return parse_view(store.roundtrip(r, *view_commands(msisdn, now)))


def view_commands(msisdn: str, now: float, fields: tuple[str, ...] = (), hashes: tuple = (),
                  strings: tuple[str, ...] = ()) -> tuple[tuple, ...]:
    """The commands that read ``msisdn``'s account, for one round trip
    (``store.roundtrip``; :func:`parse_view` reads their replies): the
    profile's status, language and ``fields``, the buckets not yet expired
    and their points, ``hashes`` (key functions of the subscriber's other
    hashes) whole, and ``strings`` (keys, one MGET), in that order
    (``Points.also``). On a Redis Cluster every key must be in the
    subscriber's hash slot.

    Plain reads, not a script: the same reads as a script cost Redis almost
    four times their command time on every hop (docs/benchmark.md). Redis
    runs a client's commands in turn and the round trip's come in one write,
    so none of another client falls between them in practice; if one did (a
    bucket earned or spent between the bucket list and its points), one
    screen would show a balance a moment old or new. Nothing is charged on a
    view: a debit's script reads the buckets itself."""
    commands = (("HMGET", keys.profile(msisdn), "status", "lang", *fields),
                ("ZRANGEBYSCORE", keys.buckets(msisdn), f"({now!r}", "+inf", "WITHSCORES"),
                ("HGETALL", keys.bucket_points(msisdn)),
                *(("HGETALL", key(msisdn)) for key in hashes))
    return (*commands, ("MGET", *strings)) if strings else commands


def parse_view(replies: list, hashes: int = 0) -> Points:
    """The account from the replies to :func:`view_commands` (``hashes``: how
    many it was asked to read)."""
    (status, lang, *fields), dated, amounts, *rest = replies
    held = store.pairs(amounts)
    buckets = []
    for i in range(0, len(dated), 2):
        amount = int(held.get(dated[i]) or 0)
        if amount > 0:
            buckets.append(Bucket(dated[i], amount, float(dated[i + 1])))
    strings = rest[hashes] if len(rest) > hashes else ()
    also = (*(value or "" for value in fields), *rest[:hashes], *strings)
    return Points(sum(b.points for b in buckets), buckets, status or None, lang or None, also)


def expire(r: redis.Redis, msisdn: str, now: float) -> int:
    """Write off every bucket past its date; returns the points expired."""
    return int(EXPIRE(r, [keys.buckets(msisdn), keys.bucket_points(msisdn),
                          keys.ledger(msisdn), keys.counters(msisdn)], [now]))


def ledger(r: redis.Redis, msisdn: str) -> list[dict]:
    return [json.loads(e) for e in r.lrange(keys.ledger(msisdn), 0, -1)]


class Accounts:
    """The caller's account (status, language, points) as the USSD machinery
    reads it with each session (``ussd.types.Accounts``), with the profile's
    ``fields`` and the subscriber's ``hashes`` the composition root asks for
    (``Points.also``: what screens would otherwise read themselves)."""

    def __init__(self, fields: tuple[str, ...] = (), hashes: tuple = ()):
        self.fields, self.hashes = fields, hashes

    def commands(self, msisdn: str, now: float, strings: tuple[str, ...] = ()) -> tuple[tuple, ...]:
        return view_commands(msisdn, now, self.fields, self.hashes, strings)

    def parse(self, replies: list) -> Points:
        return parse_view(replies, len(self.hashes))
