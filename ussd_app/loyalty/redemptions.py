"""Redeeming rewards: exactly once, soonest-expiring points first, refunded
when fulfilment fails.

A redemption is three atomic steps, each a Lua script over one hash slot
(so they run on Redis Cluster too), each idempotent on the redemption id,
which is derived from the caller's idempotency key (the USSD hop, the SMS):
1. hold stock (the reward's slot): ``rewards.RESERVE``;
2. debit points and record the redemption as ``pending`` (the subscriber's slot);
   if refused, the held stock is released;
3. fulfil outside the hop (a job), then ``done`` (stock used) or ``failed``
   (points refunded to the buckets they came from, stock released).
A marker in a pending index, written before step 1, lets :func:`recover`
settle whatever a crash left half-way.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime

import redis

from ussd_app.core import formats, keys, store, texts
from ussd_app.loyalty import rewards
from ussd_app.core.formats import WIB
from ussd_app.loyalty.points import LUA_LIVE
from ussd_app.loyalty.rewards import Reward
from ussd_app.core.store import Script

# KEYS[1] idempotency  KEYS[2] buckets  KEYS[3] bucket points  KEYS[4] ledger
# KEYS[5] counters     KEYS[6] profile  KEYS[7] monthly counts KEYS[8] redemptions
# ARGV[1] idempotency key  ARGV[2] redemption id  ARGV[3] reward code  ARGV[4] quantity
# ARGV[5] points in all    ARGV[6] now  ARGV[7] monthly limit (-1 none)  ARGV[8] channel
# ARGV[9] reward name      ARGV[10] reference
# Returns {'ok'|'dup', id, balance after} or {'not_enrolled'|'blocked'|'short'|'limit', balance}.
REDEEM = Script(LUA_LIVE + """
local now = tonumber(ARGV[6])
local done = redis.call('HGET', KEYS[1], ARGV[1])
if done then
  local _, balance = live(KEYS[2], KEYS[3], now)
  return {'dup', done, balance}
end
local status = redis.call('HGET', KEYS[6], 'status')
local rows, balance = live(KEYS[2], KEYS[3], now)
if not status then return {'not_enrolled', balance} end
if status == 'blocked' then return {'blocked', balance} end
local total, qty = tonumber(ARGV[5]), tonumber(ARGV[4])
if balance < total then return {'short', balance} end
local limit = tonumber(ARGV[7])
if limit >= 0 and (tonumber(redis.call('HGET', KEYS[7], ARGV[3])) or 0) + qty > limit then
  return {'limit', balance}
end
local left, taken = total, {}
for _, b in ipairs(rows) do
  if left == 0 then break end
  local take = math.min(left, b[3])
  redis.call('HINCRBY', KEYS[3], b[1], -take)
  taken[#taken + 1] = {b[1], take, b[2]}
  left = left - take
end
redis.call('HINCRBY', KEYS[7], ARGV[3], qty)
redis.call('EXPIRE', KEYS[7], 40 * 86400)
local record = {id = ARGV[2], reward = ARGV[3], name = ARGV[9], quantity = qty, points = total,
  taken = taken, status = 'pending', at = now, channel = ARGV[8], reference = ARGV[10],
  month_key = KEYS[7]}
redis.call('HSET', KEYS[8], ARGV[2], cjson.encode(record))
ledger_append(KEYS[4], KEYS[5], {type = 'redeem', points = -total, reward = ARGV[3],
  quantity = qty, redemption = ARGV[2], reference = ARGV[10], by = ARGV[8], at = now,
  reason = 'redeem ' .. ARGV[9], balance_before = balance, balance_after = balance - total,
  buckets = taken})
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'ok', ARGV[2], balance - total}
""", durable=True)

# KEYS[1] redemptions  KEYS[2] buckets  KEYS[3] bucket points  KEYS[4] ledger
# KEYS[5] counters     KEYS[6] monthly counts of the redemption's month
# ARGV[1] redemption id  ARGV[2] now  ARGV[3] reason
# Puts a pending redemption's points back into the buckets they came from.
# Returns 1 if refunded now, 0 if it was not pending.
REFUND = Script(LUA_LIVE + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec.status ~= 'pending' then return 0 end
local now = tonumber(ARGV[2])
local _, before = live(KEYS[2], KEYS[3], now)
for _, t in ipairs(rec.taken) do
  if not redis.call('ZSCORE', KEYS[2], t[1]) then redis.call('ZADD', KEYS[2], t[3], t[1]) end
  redis.call('HINCRBY', KEYS[3], t[1], t[2])
end
redis.call('HINCRBY', KEYS[6], rec.reward, -rec.quantity)
local _, after = live(KEYS[2], KEYS[3], now)
rec.status, rec.reason, rec.settled_at = 'failed', ARGV[3], now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
ledger_append(KEYS[4], KEYS[5], {type = 'refund', points = rec.points, reward = rec.reward,
  redemption = ARGV[1], reference = rec.reference, by = 'system', at = now,
  reason = ARGV[3], balance_before = before, balance_after = after, buckets = rec.taken})
return 1
""", durable=True)

# KEYS[1] redemptions   ARGV[1] redemption id  ARGV[2] now  ARGV[3] voucher or confirmation
# Returns 1 if the pending redemption is now done, 0 if it was not pending.
CONFIRM = Script("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec.status ~= 'pending' then return 0 end
rec.status, rec.settled_at, rec.delivered = 'done', tonumber(ARGV[2]), ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1
""")


FULFIL_JOB = "ussd_app.loyalty.fulfilment.fulfil"  # by name: fulfilment builds on this module


@dataclass(frozen=True)
class Outcome:
    status: str  # ok, dup, not_enrolled, blocked, short, limit, out_of_stock, inactive
    balance: int = 0
    redemption: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status in ("ok", "dup")


def refusal_text(lang: str, outcome: Outcome, reward: Reward | None, qty: int = 1) -> str:
    """Why a redemption was refused, in the subscriber's words (USSD and SMS)."""
    if outcome.status == "short":
        return texts.t(lang, "rewards.refused.short",
                       short=formats.points(reward.points * qty - outcome.balance, lang))
    if outcome.status == "limit":
        return texts.t(lang, "rewards.refused.limit", limit=reward.monthly_limit)
    return texts.t(lang, f"rewards.refused.{outcome.status}")


def redemption_id(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, WIB).strftime("%Y-%m")


def monthly_key(msisdn: str, now: float) -> str:
    return keys.monthly_redemptions(msisdn, month_of(now))


def monthly_used(r: redis.Redis, msisdn: str, code: str, now: float) -> int:
    """Units of ``code`` the subscriber redeemed this month (WIB)."""
    return int(r.hget(monthly_key(msisdn, now), code) or 0)


# -- a quote awaiting its SMS confirmation (TUKAR <code>, then YA) ---------------
QUOTE_TTL = 300


def quote(r: redis.Redis, msisdn: str, reward: Reward, message_id: str) -> None:
    """Hold the terms quoted by SMS until the subscriber answers YA (or QUOTE_TTL)."""
    key = keys.sms_pending(msisdn)
    pipe = r.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"action": "redeem", "reward": reward.code, "id": message_id})
    pipe.expire(key, QUOTE_TTL)
    pipe.execute()


def quoted(r: redis.Redis, msisdn: str) -> dict | None:
    """The quote awaiting confirmation, if any."""
    held = r.hgetall(keys.sms_pending(msisdn))
    return held if held.get("action") == "redeem" else None


def drop_quote(r: redis.Redis, msisdn: str) -> None:
    r.delete(keys.sms_pending(msisdn))


def _marker(msisdn: str, rid: str, code: str) -> str:
    return f"{msisdn}|{rid}|{code}"


def redeem(services, msisdn: str, reward: Reward, qty: int, idempotency_key: str,
           channel: str) -> Outcome:
    """Redeem ``qty`` of ``reward`` once per ``idempotency_key``; fulfilment follows in a job."""
    r, now = services.r, services.clock()
    if not reward.active(now):
        return Outcome("inactive")
    rid = redemption_id(f"{msisdn}|{idempotency_key}")
    # The pending marker first (what recover() settles after a crash), and the
    # stock held, in one round trip (both are idempotent: a resend is harmless).
    _, held = store.roundtrip(
        r, ("ZADD", keys.PENDING_REDEMPTIONS, "NX", now, _marker(msisdn, rid, reward.code)),
        rewards.RESERVE.command(*rewards.reserve_args(reward.code, rid, qty)))
    if not held:
        r.zrem(keys.PENDING_REDEMPTIONS, _marker(msisdn, rid, reward.code))
        return Outcome("out_of_stock")
    limit = reward.monthly_limit if reward.monthly_limit is not None else -1
    status, *rest = REDEEM(r, [
        keys.idempotency(msisdn), keys.buckets(msisdn), keys.bucket_points(msisdn),
        keys.ledger(msisdn), keys.counters(msisdn), keys.profile(msisdn),
        monthly_key(msisdn, now), keys.redemptions(msisdn)],
        [f"redeem:{idempotency_key}", rid, reward.code, qty, reward.points * qty, now, limit,
         channel, reward.label("id"), idempotency_key])
    if status in ("ok", "dup"):
        if status == "ok":
            services.jobs.enqueue(FULFIL_JOB, msisdn, rid, job_id=f"fulfil-{rid}")
        return Outcome(status, int(rest[1]), rest[0])
    rewards.settle(r, reward.code, rid, "released")
    r.zrem(keys.PENDING_REDEMPTIONS, _marker(msisdn, rid, reward.code))
    return Outcome(status, int(rest[0]))


def get(r: redis.Redis, msisdn: str, rid: str) -> dict | None:
    raw = r.hget(keys.redemptions(msisdn), rid)
    return json.loads(raw) if raw else None


def confirm(services, msisdn: str, rid: str, delivered: str) -> bool:
    r = services.r
    rec = get(r, msisdn, rid)
    if not CONFIRM(r, [keys.redemptions(msisdn)], [rid, services.clock(), delivered]):
        return False
    rewards.settle(r, rec["reward"], rid, "used")
    r.zrem(keys.PENDING_REDEMPTIONS, _marker(msisdn, rid, rec["reward"]))
    return True


def refund(services, msisdn: str, rid: str, reason: str) -> bool:
    """Give a pending redemption's points and stock back (once)."""
    r = services.r
    rec = get(r, msisdn, rid)
    if rec is None:
        return False
    done = REFUND(r, [keys.redemptions(msisdn), keys.buckets(msisdn), keys.bucket_points(msisdn),
                      keys.ledger(msisdn), keys.counters(msisdn), rec["month_key"]],
                  [rid, services.clock(), reason])
    rewards.settle(r, rec["reward"], rid, "released")
    r.zrem(keys.PENDING_REDEMPTIONS, _marker(msisdn, rid, rec["reward"]))
    return bool(done)


def recover(services, older_than: float) -> dict:
    """Settle what crashes left: markers older than ``older_than`` seconds."""
    r, now = services.r, services.clock()
    counts = {"refulfilled": 0, "released": 0, "settled": 0}
    for marker in r.zrangebyscore(keys.PENDING_REDEMPTIONS, "-inf", now - older_than):
        msisdn, rid, code = marker.split("|")
        rec = get(r, msisdn, rid)
        if rec is None:  # crashed between holding stock and debiting points
            rewards.settle(r, code, rid, "released")
            r.zrem(keys.PENDING_REDEMPTIONS, marker)
            counts["released"] += 1
        elif rec["status"] == "pending":  # crashed before fulfilment settled
            services.jobs.enqueue(FULFIL_JOB, msisdn, rid)
            counts["refulfilled"] += 1
        else:
            rewards.settle(r, code, rid, "used" if rec["status"] == "done" else "released")
            r.zrem(keys.PENDING_REDEMPTIONS, marker)
            counts["settled"] += 1
    return counts


def history(r: redis.Redis, msisdn: str) -> list[dict]:
    recs = [json.loads(v) for v in r.hvals(keys.redemptions(msisdn))]
    for rec in recs:
        rec.pop("month_key", None)
        rec["taken"] = [{"bucket": t[0], "points": t[1],
                         "expires_at": None if t[2] in ("inf", math.inf) else t[2]} for t in rec["taken"]]
    return sorted(recs, key=lambda x: x["at"])
