"""The reward catalog and each reward's stock (in the reward's own hash slot)."""
from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Literal

import redis

from ussd_app.core import bodies, formats, keys, store
from ussd_app.core.bodies import Meta
from ussd_app.core.errors import BadRequest
from ussd_app.core.store import Script

FULFILMENTS = ("voucher", "airtime", "data", "premium", "goods")
CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,23}$")
SLUG = re.compile(r"\A[a-z][a-z0-9-]{0,19}\Z")


@dataclass(frozen=True)
class Reward:
    code: str
    name: dict
    category: str
    points: int
    fulfilment: str
    partner: str = ""
    stock: int | None = None  # units left; None = unlimited
    max_per_transaction: int = 1
    monthly_limit: int | None = None
    active_from: float | None = None
    active_until: float | None = None
    generate_codes: bool = False
    revision: str = ""  # a fresh token on every PUT: what a quote names
    available: int | None = None  # codes in the pool, for a pooled voucher reward

    def label(self, lang: str) -> str:
        return self.name.get(lang) or self.name["id"]

    def active(self, now: float) -> bool:
        return ((self.active_from is None or self.active_from <= now)
                and (self.active_until is None or now < self.active_until))

    @property
    def pooled(self) -> bool:
        """A voucher reward whose codes all come from the uploaded pool: the
        codes available are its stock."""
        return self.fulfilment == "voucher" and not self.generate_codes

    @property
    def left(self) -> int | None:
        """Units that can be delivered now (None: unlimited): the stock, and for
        a pooled reward no more than the codes available."""
        limits = [n for n in (self.stock, self.available if self.pooled else None) if n is not None]
        return min(limits) if limits else None

    def public(self) -> dict:
        out = asdict(self)
        for k in ("active_from", "active_until"):
            out[k] = formats.iso(out[k]) if out[k] is not None else None
        if not self.pooled:
            out.pop("available")
        return out


NAME_MAX = 40  # GSM-7 septets: a list line with its number and price
PARTNER_MAX = 60


class Name(bodies.Texts):
    LIMIT = NAME_MAX  # each a line a phone can show


class RewardBody(bodies.Body):
    """A PUT body or a catalog file entry (other keys, such as a file's ``vouchers``, are ignored)."""
    name: Name
    category: Annotated[str, Meta(pattern=SLUG.pattern,
                                  description="a lowercase word such as pulsa, data or voucher")]
    points: Annotated[int, Meta(ge=1, le=10_000_000, description="a whole number from 1 to 10000000")]
    fulfilment: Literal[FULFILMENTS]
    partner: Annotated[str, bodies.text(PARTNER_MAX, required=False)] | None = ""
    stock: Annotated[int, Meta(ge=0, le=100_000_000, description="a whole number from 0 to 100000000")
                     ] | None = None
    max_per_transaction: Annotated[int, Meta(ge=1, le=99, description="a whole number from 1 to 99")] = 1
    monthly_limit: Annotated[int, Meta(ge=1, le=10_000, description="a whole number from 1 to 10000")
                             ] | None = None
    active_from: bodies.IsoTime | None = None
    active_until: bodies.IsoTime | None = None
    generate_codes: bool = False


def validate(code: str, body: dict, now: float | None = None) -> Reward:
    """A reward from a PUT body or a catalog file entry (:class:`RewardBody`);
    BadRequest names the field.

    Every text a subscriber sees is one GSM-7 line within its limit; dates lie
    within ``formats.NEAR_YEARS`` of ``now`` (default: the current time)."""
    now = time.time() if now is None else now
    code = code.upper()
    if not CODE.fullmatch(code):
        raise BadRequest("code must be 1-24 letters, digits, - or _")
    if isinstance(body, dict) and "name" in body:
        body = {**body, "name": bodies.texts(body["name"])}
    got = bodies.decode(body, RewardBody)
    reward = Reward(
        code=code, name=got.name.as_dict(), category=got.category, points=got.points,
        fulfilment=got.fulfilment, partner=got.partner or "", stock=got.stock,
        max_per_transaction=got.max_per_transaction, monthly_limit=got.monthly_limit,
        active_from=bodies.near_time(got.active_from, "active_from", now),
        active_until=bodies.near_time(got.active_until, "active_until", now),
        generate_codes=got.generate_codes)
    if reward.active_from and reward.active_until and reward.active_until <= reward.active_from:
        raise BadRequest("active_until must be after active_from")
    return reward


def put(r: redis.Redis, reward: Reward) -> Reward:
    """Store a reward under a fresh revision; its ``stock`` (when given) becomes
    the units left. A quote of the earlier revision is no longer honoured."""
    revision = secrets.token_urlsafe(12)
    definition = {k: v for k, v in asdict(reward).items() if k not in ("stock", "available")}
    definition["revision"] = revision
    pipe = r.pipeline(transaction=False)
    # The definition first, then the revision the stock hold checks: a reader
    # in between sees the new terms under the new revision and is refused once.
    pipe.hset(keys.reward(reward.code), "def", json.dumps(definition, separators=(",", ":")))
    if reward.stock is None:
        pipe.delete(keys.reward_stock(reward.code))
    else:
        pipe.set(keys.reward_stock(reward.code), reward.stock)
    pipe.set(keys.reward_revision(reward.code), revision)
    pipe.sadd(keys.REWARDS, reward.code)
    store.revise(pipe, keys.REWARDS_REVISION)
    pipe.execute()
    return get(r, reward.code)


def get(r: redis.Redis, code: str) -> Reward | None:
    found = load(r, [code.upper()])
    return found[0] if found else None


def load(r: redis.Redis, codes: list[str]) -> list[Reward]:
    """The rewards ``codes`` with their units left and codes available."""
    raw = store.roundtrip(r, *(command for code in codes for command in (
        ("HGET", keys.reward(code), "def"), ("GET", keys.reward_stock(code)),
        ("LLEN", keys.voucher_pool(code)))))
    out = []
    for i in range(0, len(raw), 3):
        if raw[i]:
            d = json.loads(raw[i])
            out.append(Reward(**d, stock=int(raw[i + 1]) if raw[i + 1] is not None else None,
                              available=int(raw[i + 2])))
    return out


def catalog(r: redis.Redis) -> list[Reward]:
    """Every reward, ordered by category, then price, then code."""
    return sorted(load(r, sorted(r.smembers(keys.REWARDS))), key=lambda w: (w.category, w.points, w.code))


def definitions(r: redis.Redis, kept: store.Kept, revision: str | None = None) -> list[Reward]:
    """Every reward ordered as :func:`catalog`, *without stock* (``stock`` and
    ``available`` are None: read a reward's units left with :func:`get`).

    Kept per process and checked against the catalog's revision on each call
    (``revision``: as the caller read it): one GET, or none, instead of
    reading every definition on every list screen.
    """
    revision = store.revision(r, keys.REWARDS_REVISION, revision)
    found = kept.get("rewards", revision)
    if found is None:
        found = kept.put("rewards", revision,
                         [replace(w, stock=None, available=None) for w in catalog(r)])
    return found


def active(r: redis.Redis, now: float, kept: store.Kept) -> list[Reward]:
    """The rewards on offer now (definitions only: see :func:`definitions`)."""
    return [w for w in definitions(r, kept) if w.active(now)]


def load_file(r: redis.Redis, vault, text: str) -> list[Reward]:
    """Load a YAML catalog (``rewards: {CODE: {...}}``); each entry is validated
    first, so a bad file changes nothing. ``vouchers`` lists add to the pool
    (codes already there or already given out are skipped)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BadRequest(f"not valid YAML: {e.problem}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rewards"), dict):
        raise BadRequest("the file needs a top-level 'rewards:' mapping of code -> reward")
    parsed = []
    for code, body in data["rewards"].items():
        try:
            reward = validate(str(code), body)
            vouchers = voucher_codes([str(v) for v in (body or {}).get("vouchers") or []], "vouchers")
            if vouchers and reward.fulfilment != "voucher":
                raise BadRequest("vouchers are for a reward with fulfilment voucher")
            parsed.append((reward, vouchers))
        except BadRequest as e:
            raise BadRequest(f"reward {code}: {e}") from None
    loaded = []
    for reward, vouchers in parsed:
        put(r, reward)
        if vouchers:
            add_vouchers(r, vault, reward.code, vouchers)
        loaded.append(get(r, reward.code))
    return loaded


# -- the voucher pool: codes encrypted at rest, found again by a keyed hash -------
VOUCHER = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._/+-]{0,39}\Z")
MAX_VOUCHERS = 10_000  # per request or file entry

# KEYS[1] pool  KEYS[2] digests   ARGV: digest, encrypted code, digest, encrypted code, ...
# Returns {added, duplicates, codes now available}.
ADD_VOUCHERS = Script("""
local added, dup = 0, 0
for i = 1, #ARGV, 2 do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    added = added + 1
  else
    dup = dup + 1
  end
end
return {added, dup, redis.call('LLEN', KEYS[1])}
""", durable=True)


VoucherCodes = Annotated[list[Annotated[str, Meta(
    pattern=VOUCHER.pattern,
    description="a voucher code: 1-40 letters, digits or . _ / + -, starting with a letter or digit")]],
    Meta(max_length=MAX_VOUCHERS, description=f"a list of at most {MAX_VOUCHERS} voucher codes")]


def voucher_codes(codes, field: str = "codes") -> list[str]:
    """``codes`` checked (a code is a secret: an error names its place, never it)."""
    return bodies.decode(codes, VoucherCodes, where=field)


def add_vouchers(r: redis.Redis, vault, code: str, codes: list[str]) -> dict:
    """Add ``codes`` to the pool of reward ``code``, each once ever:
    ``{"added", "duplicates", "available"}`` (duplicates: already in the pool,
    already given out, or twice in ``codes``)."""
    out = {"added": 0, "duplicates": 0, "available": r.llen(keys.voucher_pool(code))}
    for i in range(0, len(codes), 1000):
        args = [x for c in codes[i:i + 1000] for x in (vault.digest(c), vault.encrypt(c))]
        added, dup, available = ADD_VOUCHERS(r, [keys.voucher_pool(code), keys.voucher_digests(code)], args)
        out = {"added": out["added"] + added, "duplicates": out["duplicates"] + dup,
               "available": available}
    return out


# -- stock: scripts over one reward's slot --------------------------------------
# KEYS[1] stock  KEYS[2] reservations  KEYS[3] revision  KEYS[4] voucher pool  KEYS[5] claims
# ARGV[1] redemption id  ARGV[2] quantity  ARGV[3] quoted revision
# ARGV[4] codes: 'pool' (a code per unit, else out of stock), 'some' (the pool's
#         codes while they last), '' (none)
# Returns 1 when held (now or by an earlier call with this id), 0 when out of
# stock, -1 when the reward changed since the quote (then nothing is held).
RESERVE = Script("""
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held and string.sub(held, 1, 9) ~= 'released:' then return 1 end
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[3] then return -1 end
local qty = tonumber(ARGV[2])
local stock = redis.call('GET', KEYS[1])
if stock and tonumber(stock) < qty then return 0 end
if ARGV[4] == 'pool' and redis.call('LLEN', KEYS[4]) < qty then return 0 end
if stock then redis.call('DECRBY', KEYS[1], qty) end
if ARGV[4] ~= '' then
  local codes = {}
  for _ = 1, qty do
    local c = redis.call('LPOP', KEYS[4])
    if not c then break end
    codes[#codes + 1] = c
  end
  if #codes > 0 then redis.call('HSET', KEYS[5], ARGV[1], cjson.encode(codes)) end
end
redis.call('HSET', KEYS[2], ARGV[1], 'held:' .. qty)
return 1
""", durable=True)

# KEYS[1] stock  KEYS[2] reservations  KEYS[3] voucher pool  KEYS[4] claims
# ARGV[1] redemption id  ARGV[2] 'used' | 'released'
# Settles a held reservation once: 'released' puts the units and codes back.
SETTLE = Script("""
local held = redis.call('HGET', KEYS[2], ARGV[1])
if not held or string.sub(held, 1, 5) ~= 'held:' then return 0 end
local qty = tonumber(string.sub(held, 6))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. qty)
if ARGV[2] == 'released' then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], qty) end
  local codes = redis.call('HGET', KEYS[4], ARGV[1])
  if codes then
    local list = cjson.decode(codes)
    for i = #list, 1, -1 do redis.call('LPUSH', KEYS[3], list[i]) end
    redis.call('HDEL', KEYS[4], ARGV[1])
  end
end
return 1
""", durable=True)


def hold_codes(reward: Reward) -> str:
    """What RESERVE takes from the pool for ``reward`` (see RESERVE)."""
    if reward.fulfilment != "voucher":
        return ""
    return "some" if reward.generate_codes else "pool"


def reserve_args(reward: Reward, rid: str, qty: int, revision: str) -> tuple[list, list]:
    """RESERVE's keys and arguments: hold ``qty`` of ``reward`` for redemption
    ``rid`` if its revision is still ``revision``."""
    code = reward.code
    return ([keys.reward_stock(code), keys.reward_reservations(code), keys.reward_revision(code),
             keys.voucher_pool(code), keys.voucher_claims(code)],
            [rid, qty, revision, hold_codes(reward)])


def settle(r: redis.Redis, code: str, rid: str, outcome: str) -> bool:
    """Mark a held reservation ``used`` or ``released`` (the latter restores
    stock and puts held voucher codes back at the head of the pool)."""
    return bool(SETTLE(r, [keys.reward_stock(code), keys.reward_reservations(code),
                           keys.voucher_pool(code), keys.voucher_claims(code)], [rid, outcome]))


def claimed(r: redis.Redis, code: str, rid: str) -> list[str]:
    """The (encrypted) voucher codes redemption ``rid`` holds."""
    raw = r.hget(keys.voucher_claims(code), rid)
    return json.loads(raw) if raw else []
