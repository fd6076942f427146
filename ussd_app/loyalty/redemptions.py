"""Redeeming rewards: on the terms the subscriber confirmed, exactly once,
soonest-expiring points first, and refunded only when delivery surely failed.

A redemption starts from a :class:`Quote`: the terms a confirmation showed
(the reward, its revision, points per unit, quantity) under a fresh id. The
quote id is the redemption's idempotency key (however often the confirmation
arrives, one redemption), and its terms are what is charged. Then four steps,
each a Lua script over one hash slot (so they run on Redis Cluster too), each
idempotent on the redemption id:
1. hold stock and, for a pooled voucher reward, its codes (the reward's slot:
   ``rewards.RESERVE``), refused if the reward's revision is no longer the
   quoted one: nothing is held or taken, and the caller shows the new terms;
2. debit the quoted points and record the redemption ``pending`` (the
   subscriber's slot); if refused, the held stock is released;
3. fulfil outside the hop (a job, ``fulfilment.fulfil``): the provider's
   outcome is ``done`` (:func:`confirm`), ``failed`` (:func:`refund`: points
   and stock back) or ``unknown`` (asked again with the same reference, with
   backoff; when retries run out the redemption is ``needs_review``
   (:func:`to_review`), never refunded until a person settles it);
4. finish (:func:`finish`): the subscriber's SMS, stock used or released, the
   status index, and the pending marker dropped.
A marker in a pending index, written before step 1, lets :func:`recover`
settle whatever a crash left half-way.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import redis

from ussd_app.core import formats, keys, store, subscribers, texts
from ussd_app.core.errors import Conflict
from ussd_app.core.formats import WIB
from ussd_app.core.msisdn import mask
from ussd_app.core.queue import PARTNERS
from ussd_app.core.store import Script
from ussd_app.loyalty import rewards
from ussd_app.loyalty.points import LUA_LIVE
from ussd_app.loyalty.rewards import Reward

log = logging.getLogger(__name__)

# KEYS[1] idempotency  KEYS[2] buckets  KEYS[3] bucket points  KEYS[4] ledger
# KEYS[5] counters     KEYS[6] profile  KEYS[7] monthly counts KEYS[8] redemptions
# ARGV[1] idempotency key  ARGV[2] redemption id  ARGV[3] reward code  ARGV[4] quantity
# ARGV[5] points in all    ARGV[6] now  ARGV[7] monthly limit (-1 none)  ARGV[8] channel
# ARGV[9] reward name      ARGV[10] reference (the quote id)  ARGV[11] reward revision
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
  revision = ARGV[11], month_key = KEYS[7]}
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
# ARGV[1] redemption id  ARGV[2] now  ARGV[3] reason  ARGV[4] the status it must be in
# Puts a redemption's points back into the buckets they came from.
# Returns 1 if refunded now, 0 if it was not in that status.
REFUND = Script(LUA_LIVE + """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec.status ~= ARGV[4] then return 0 end
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

# KEYS[1] redemptions   ARGV[1] redemption id  ARGV[2] now  ARGV[3] 'delivered' or
# 'delivered_enc' (a voucher code, encrypted)  ARGV[4] its value  ARGV[5] the status it must be in
# Returns 1 if the redemption is now done, 0 if it was not in that status.
CONFIRM = Script("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec.status ~= ARGV[5] then return 0 end
rec.status, rec.settled_at = 'done', tonumber(ARGV[2])
rec[ARGV[3]] = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1
""", durable=True)

# KEYS[1] redemptions   ARGV[1] redemption id  ARGV[2] now  ARGV[3] reason
# A pending redemption whose outcome stayed unknown: a person settles it.
REVIEW = Script("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec.status ~= 'pending' then return 0 end
rec.status, rec.reason, rec.review_at = 'needs_review', ARGV[3], tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1
""", durable=True)


FULFIL_JOB = "ussd_app.loyalty.fulfilment.fulfil"  # by name: fulfilment builds on this module


@dataclass(frozen=True)
class Outcome:
    status: str  # ok, dup, not_enrolled, blocked, short, limit, out_of_stock, inactive, changed
    balance: int = 0
    redemption: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status in ("ok", "dup")


@dataclass(frozen=True)
class Quote:
    """The terms a confirmation showed, under a fresh id (the idempotency key)."""
    id: str
    reward: str
    revision: str
    points: int  # per unit
    quantity: int

    @property
    def total(self) -> int:
        return self.points * self.quantity

    def as_dict(self) -> dict:
        return {"id": self.id, "reward": self.reward, "revision": self.revision,
                "points": self.points, "quantity": self.quantity}

    @classmethod
    def from_dict(cls, d: dict) -> Quote:
        return cls(id=str(d["id"]), reward=str(d["reward"]), revision=str(d.get("revision") or ""),
                   points=int(d["points"]), quantity=int(d["quantity"]))


def new_quote(reward: Reward, qty: int) -> Quote:
    """The terms of ``qty`` of ``reward`` as they stand, under a fresh id."""
    return Quote(secrets.token_urlsafe(16), reward.code, reward.revision, reward.points, qty)


def refusal_text(lang: str, outcome: Outcome, reward: Reward | None, qty: int = 1) -> str:
    """Why a redemption was refused, in the subscriber's words (USSD and SMS)."""
    if outcome.status == "short":
        return texts.t(lang, "rewards.refused.short",
                       short=formats.points(reward.points * qty - outcome.balance, lang))
    if outcome.status == "limit":
        return texts.t(lang, "rewards.refused.limit", limit=reward.monthly_limit)
    return texts.t(lang, f"rewards.refused.{outcome.status}")


RID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def redemption_id(idempotency_key: str) -> str:
    """24 characters of base64url (not hex: no long run of digits that a scan
    for NIK-like numbers would trip on)."""
    return base64.urlsafe_b64encode(hashlib.sha256(idempotency_key.encode()).digest()[:18]).decode()


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, WIB).strftime("%Y-%m")


def monthly_key(msisdn: str, now: float) -> str:
    return keys.monthly_redemptions(msisdn, month_of(now))


def monthly_used(r: redis.Redis, msisdn: str, code: str, now: float) -> int:
    """Units of ``code`` the subscriber redeemed this month (WIB)."""
    return int(r.hget(monthly_key(msisdn, now), code) or 0)


# -- a quote awaiting its SMS confirmation (TUKAR <code>, then YA) ---------------
QUOTE_TTL = 300


def quote(r: redis.Redis, msisdn: str, reward: Reward, qty: int = 1) -> Quote:
    """Quote ``reward`` by SMS and hold the terms until the subscriber answers
    YA (or QUOTE_TTL); a later quote replaces it."""
    held = new_quote(reward, qty)
    key = keys.sms_pending(msisdn)
    pipe = r.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"action": "redeem", **held.as_dict()})
    pipe.expire(key, QUOTE_TTL)
    pipe.execute()
    return held


def quoted(r: redis.Redis, msisdn: str) -> Quote | None:
    """The quote awaiting confirmation, if any."""
    held = r.hgetall(keys.sms_pending(msisdn))
    if held.get("action") != "redeem" or "revision" not in held:
        return None
    return Quote.from_dict(held)


def drop_quote(r: redis.Redis, msisdn: str, quote_id: str | None = None) -> None:
    """Forget the SMS quote (only quote ``quote_id``, if given)."""
    key = keys.sms_pending(msisdn)
    if quote_id is None or r.hget(key, "id") == quote_id:
        r.delete(key)


def _marker(msisdn: str, rid: str, code: str) -> str:
    return f"{msisdn}|{rid}|{code}"


def hold_commands(msisdn: str, reward: Reward, quote: Quote, rid: str, now: float) -> tuple:
    """Redemption ``rid``'s first round trip: its pending marker (what
    recover() settles after a crash), then the stock held; both idempotent."""
    return (("ZADD", keys.PENDING_REDEMPTIONS, "NX", now, _marker(msisdn, rid, reward.code)),
            rewards.RESERVE.command(*rewards.reserve_args(reward, rid, quote.quantity, quote.revision)))


def debit_command(msisdn: str, reward: Reward, quote: Quote, rid: str, now: float,
                  channel: str) -> store.ScriptCommand:
    """Redemption ``rid``'s debit on the terms of ``quote`` (:data:`REDEEM`), once per quote."""
    limit = reward.monthly_limit if reward.monthly_limit is not None else -1
    return REDEEM.command([
        keys.idempotency(msisdn), keys.buckets(msisdn), keys.bucket_points(msisdn),
        keys.ledger(msisdn), keys.counters(msisdn), keys.profile(msisdn),
        monthly_key(msisdn, now), keys.redemptions(msisdn)],
        [f"redeem:{quote.id}", rid, reward.code, quote.quantity, quote.total, now, limit,
         channel, reward.label("id"), quote.id, quote.revision])


def redeem(services, msisdn: str, reward: Reward | None, quote: Quote, channel: str) -> Outcome:
    """Redeem on the terms of ``quote``, once per quote; fulfilment follows in a job.

    ``changed``: the reward is no longer as quoted (nothing held, nothing
    taken): show the new terms for a fresh confirmation.
    """
    r, now = services.r, services.clock()
    if reward is None or reward.code != quote.reward or not reward.active(now):
        return Outcome("inactive")
    rid = redemption_id(f"{msisdn}|{quote.id}")
    marker = _marker(msisdn, rid, reward.code)
    # The pending marker and the stock held in one round trip, then the debit.
    added, held = store.roundtrip(r, *hold_commands(msisdn, reward, quote, rid, now))
    if held != 1:
        if added:
            r.zrem(keys.PENDING_REDEMPTIONS, marker)
        return Outcome("changed" if held == -1 else "out_of_stock")
    (status, *rest), = store.roundtrip(r, debit_command(msisdn, reward, quote, rid, now, channel))
    if status == "ok":
        services.jobs.enqueue(FULFIL_JOB, msisdn, rid, job_id=f"fulfil-{rid}",
                              retry=services.config.fulfilment_retry, queue=PARTNERS)
        return Outcome(status, int(rest[1]), rest[0])
    if status == "dup":
        if added:  # the marker was gone: the first confirmation has finished
            r.zrem(keys.PENDING_REDEMPTIONS, marker)
        rec = get(r, msisdn, rid)
        if rec is not None and rec["status"] == "failed":  # refunded: the hold taken again goes back
            rewards.settle(r, reward.code, rid, "released")
        return Outcome(status, int(rest[1]), rest[0])
    rewards.settle(r, reward.code, rid, "released")
    if added:
        r.zrem(keys.PENDING_REDEMPTIONS, marker)
    return Outcome(status, int(rest[0]))


def get(r: redis.Redis, msisdn: str, rid: str) -> dict | None:
    raw = r.hget(keys.redemptions(msisdn), rid)
    return json.loads(raw) if raw else None


# -- settling: the provider's outcome, then the end of the redemption -------------
def confirm(services, msisdn: str, rid: str, delivered: str, secret: bool = False,
            was: str = "pending") -> bool:
    """Record a redemption in status ``was`` as done (``secret``: ``delivered``
    is a voucher code, kept encrypted). True if it is done now."""
    field, value = ("delivered_enc", services.vault.encrypt(delivered)) if secret else ("delivered", delivered)
    return bool(CONFIRM(services.r, [keys.redemptions(msisdn)],
                        [rid, services.clock(), field, value, was]))


def refund(services, msisdn: str, rid: str, reason: str, was: str = "pending") -> bool:
    """Give a redemption's points back (once), from status ``was``; the stock
    and the SMS follow in :func:`finish`."""
    r = services.r
    rec = get(r, msisdn, rid)
    if rec is None:
        return False
    return bool(REFUND(r, [keys.redemptions(msisdn), keys.buckets(msisdn), keys.bucket_points(msisdn),
                           keys.ledger(msisdn), keys.counters(msisdn), rec["month_key"]],
                       [rid, services.clock(), reason, was]))


def to_review(services, msisdn: str, rid: str, reason: str) -> bool:
    """A pending redemption whose outcome stayed unknown becomes ``needs_review``:
    points stay taken and stock held until a person settles it."""
    done = bool(REVIEW(services.r, [keys.redemptions(msisdn)], [rid, services.clock(), reason]))
    if done:
        log.warning("redemption needs review redemption=%s msisdn=%s: %s", rid, mask(msisdn), reason)
    return done


def lease(services, msisdn: str, rid: str) -> bool:
    """Take the redemption's lease (one worker at a time fulfils or finishes it)."""
    ttl = int(services.config.FULFILMENT_TIMEOUT * 2) + 60
    return bool(services.r.set(keys.fulfilling(msisdn, rid), 1, nx=True, ex=ttl))


def unlease(services, msisdn: str, rid: str) -> None:
    services.r.delete(keys.fulfilling(msisdn, rid))


def notify(services, msisdn: str, rec: dict) -> None:
    """The subscriber's SMS for a settled redemption (a stable message id: sent
    again after a crash, a remote provider gets it once)."""
    r = services.r
    lang = subscribers.language(r, msisdn) or texts.DEFAULT
    reward = rewards.get(r, rec["reward"])
    name = reward.label(lang) if reward else rec["name"]
    pts = formats.points(rec["points"], lang)
    secret = False
    if rec["status"] == "failed":
        text = texts.t(lang, "sms.redeem_failed", reward=name, points=pts)
    elif "delivered_enc" in rec:
        secret = True
        text = texts.t(lang, "sms.redeem_voucher", reward=name, points=pts,
                       code=services.vault.decrypt(rec["delivered_enc"]))
    else:
        text = texts.t(lang, "sms.redeem_done", reward=name, points=pts,
                       code=rec.get("delivered") or rec["id"][:10].upper())
    services.sms.send(msisdn, text, message_id=f"redeem:{rec['id']}:{rec['status']}", secret=secret)


def finish(services, msisdn: str, rid: str) -> str:
    """Bring a settled redemption to its end, once: the SMS, the stock (used, or
    released with its codes), the status index, the markers dropped. A
    ``needs_review`` one moves from the pending index to the review index.
    Returns the redemption's status."""
    r = services.r
    rec = get(r, msisdn, rid)
    if rec is None:
        return "missing"
    status, code = rec["status"], rec["reward"]
    marker = _marker(msisdn, rid, code)
    if status == "pending":
        return status
    if status == "needs_review":
        pipe = r.pipeline(transaction=False)
        pipe.zadd(keys.redemptions_index("needs_review"), {marker: rec.get("review_at", 0)}, nx=True)
        pipe.zrem(keys.PENDING_REDEMPTIONS, marker)
        pipe.execute()
        return status
    pipe = r.pipeline(transaction=False)
    pipe.zscore(keys.PENDING_REDEMPTIONS, marker)
    pipe.zscore(keys.redemptions_index("needs_review"), marker)
    if all(score is None for score in pipe.execute()):
        return status  # finished before
    notify(services, msisdn, rec)
    rewards.settle(r, code, rid, "used" if status == "done" else "released")
    pipe = r.pipeline(transaction=False)
    pipe.zadd(keys.redemptions_index(status), {marker: rec.get("settled_at", 0)})
    pipe.zrem(keys.PENDING_REDEMPTIONS, marker)
    pipe.zrem(keys.redemptions_index("needs_review"), marker)
    pipe.execute()
    return status


def recover(services, older_than: float) -> dict:
    """Settle what crashes left: markers older than ``older_than`` seconds.

    A pending redemption is fulfilled again (same reference) unless its job is
    still waiting (queued, or scheduled for a retry) or a worker holds its
    lease; a settled one is finished (SMS, stock, index); an unknown outcome is
    never refunded here. A marker that fails is logged, counted in ``failed``
    and left for the next round: it does not hold back the others (a lost
    Redis does: the round stops).
    """
    r, now = services.r, services.clock()
    counts = {"refulfilled": 0, "released": 0, "settled": 0, "failed": 0}
    for marker in r.zrangebyscore(keys.PENDING_REDEMPTIONS, "-inf", now - older_than):
        try:
            done = _recover_one(services, marker)
        except redis.RedisError:
            raise
        except Exception:
            log.exception("recovery of redemption %s failed; next round tries again",
                          marker.split("|")[1])
            done = "failed"
        if done:
            counts[done] += 1
    return counts


def _recover_one(services, marker: str) -> str | None:
    """What :func:`recover` did with one marker (a key of its counts), or None."""
    r = services.r
    msisdn, rid, code = marker.split("|")
    rec = get(r, msisdn, rid)
    if rec is None:  # crashed between holding stock and debiting points
        rewards.settle(r, code, rid, "released")
        r.zrem(keys.PENDING_REDEMPTIONS, marker)
        return "released"
    if rec["status"] == "pending":  # its fulfilment was lost
        job_id = f"fulfil-{rid}"
        if r.exists(keys.fulfilling(msisdn, rid)) or services.jobs.waiting(job_id):
            return None
        services.jobs.drop(job_id)
        services.jobs.enqueue(FULFIL_JOB, msisdn, rid, job_id=job_id,
                              retry=services.config.fulfilment_retry, queue=PARTNERS)
        return "refulfilled"
    if lease(services, msisdn, rid):  # settled, not finished
        try:
            finish(services, msisdn, rid)
        finally:
            unlease(services, msisdn, rid)
        return "settled"
    return None


def settle_review(services, rid: str, outcome: str, reference: str | None = None) -> dict | None:
    """A person settles a ``needs_review`` redemption: ``done`` (the provider
    delivered: the subscriber is told) or ``refund`` (points and stock back).
    Returns the record after, or None when no redemption ``rid`` awaits review."""
    r = services.r
    if not RID.match(rid):  # never a glob pattern
        return None
    found = next((m for m, _ in r.zscan_iter(keys.redemptions_index("needs_review"), match=f"*|{rid}|*")),
                 None)
    if found is None:
        return None
    msisdn, rid, _ = found.split("|")
    if not lease(services, msisdn, rid):
        raise Conflict("the redemption is being fulfilled right now; try again in a minute")
    try:
        if outcome == "done":
            confirm(services, msisdn, rid, reference or "REF-" + rid[:10].upper(), was="needs_review")
        else:
            refund(services, msisdn, rid, reference or "refunded after review", was="needs_review")
        finish(services, msisdn, rid)
    finally:
        unlease(services, msisdn, rid)
    return get(r, msisdn, rid)


# -- reading ------------------------------------------------------------------------
def public(rec: dict) -> dict:
    """A record as the API shows it (no voucher code, buckets named)."""
    rec = dict(rec)
    rec.pop("month_key", None)
    if "delivered_enc" in rec:
        rec["delivered_enc"] = "(encrypted)"  # a voucher code: only the subscriber's SMS shows it
    rec["taken"] = [{"bucket": t[0], "points": t[1],
                     "expires_at": None if t[2] in ("inf", math.inf) else t[2]} for t in rec["taken"]]
    return rec


def history(r: redis.Redis, msisdn: str) -> list[dict]:
    return sorted((public(json.loads(v)) for v in r.hvals(keys.redemptions(msisdn))),
                  key=lambda x: x["at"])


def listing(r: redis.Redis, status: str, cursor: int = 0, limit: int = 100) -> tuple[list[dict], int | None]:
    """Redemptions in ``status`` (pending and needs_review oldest first, done and
    failed newest first), each with its ``msisdn``; and the next cursor."""
    index = keys.redemptions_index(status)
    if status in ("pending", "needs_review"):
        markers = r.zrange(index, cursor, cursor + limit - 1)
    else:
        markers = r.zrevrange(index, cursor, cursor + limit - 1)
    pipe = r.pipeline(transaction=False)
    for m in markers:
        msisdn, rid, _ = m.split("|")
        pipe.hget(keys.redemptions(msisdn), rid)
    out = []
    for m, raw in zip(markers, pipe.execute() if markers else []):
        if raw:
            rec = json.loads(raw)
            if rec["status"] == status:
                out.append({"msisdn": m.split("|")[0], **public(rec)})
    return out, (cursor + limit if len(markers) == limit else None)
