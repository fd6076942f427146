"""The reward catalog and each reward's stock (in the reward's own hash slot)."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace

import redis

from ussd_app.core import formats, keys, store
from ussd_app.core.errors import BadRequest
from ussd_app.core.store import Script

FULFILMENTS = ("voucher", "airtime", "data", "premium", "goods")
CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,23}$")
SLUG = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


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

    def label(self, lang: str) -> str:
        return self.name.get(lang) or self.name["id"]

    def active(self, now: float) -> bool:
        return ((self.active_from is None or self.active_from <= now)
                and (self.active_until is None or now < self.active_until))

    def public(self) -> dict:
        out = asdict(self)
        for k in ("active_from", "active_until"):
            out[k] = formats.iso(out[k]) if out[k] is not None else None
        return out


def _int(body, name, low, high, optional=False):
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return value


def _time(body, name):
    value = body.get(name)
    if value is None:
        return None
    try:
        return formats.parse_iso(value)
    except (ValueError, TypeError):
        raise BadRequest(f"{name} must be an ISO 8601 time, e.g. 2026-12-31T23:59:00+07:00") from None


def validate(code: str, body: dict) -> Reward:
    """A reward from a PUT body or a catalog file entry; BadRequest names the field."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    code = code.upper()
    if not CODE.match(code):
        raise BadRequest("code must be 1-24 letters, digits, - or _")
    name = body.get("name")
    if isinstance(name, str):
        name = {"id": name}
    if not isinstance(name, dict) or not isinstance(name.get("id"), str) or not name["id"].strip():
        raise BadRequest("name must have an Indonesian text in name.id")
    if any(not isinstance(v, str) or len(v) > 40 for v in name.values()):
        raise BadRequest("name texts must be strings of at most 40 characters")
    category = body.get("category")
    if not isinstance(category, str) or not SLUG.match(category):
        raise BadRequest("category must be a lowercase word such as pulsa, data or voucher")
    fulfilment = body.get("fulfilment")
    if fulfilment not in FULFILMENTS:
        raise BadRequest("fulfilment must be one of " + ", ".join(FULFILMENTS))
    reward = Reward(
        code=code, name={k: v.strip() for k, v in name.items()}, category=category,
        points=_int(body, "points", 1, 10_000_000), fulfilment=fulfilment,
        partner=str(body.get("partner") or "")[:60],
        stock=_int(body, "stock", 0, 100_000_000, optional=True),
        max_per_transaction=_int({"max_per_transaction": body.get("max_per_transaction", 1)},
                                 "max_per_transaction", 1, 99),
        monthly_limit=_int(body, "monthly_limit", 1, 10_000, optional=True),
        active_from=_time(body, "active_from"), active_until=_time(body, "active_until"),
        generate_codes=bool(body.get("generate_codes", False)))
    if reward.active_from and reward.active_until and reward.active_until <= reward.active_from:
        raise BadRequest("active_until must be after active_from")
    return reward


def put(r: redis.Redis, reward: Reward) -> Reward:
    """Store a reward; its ``stock`` (when given) becomes the units left."""
    definition = {k: v for k, v in asdict(reward).items() if k != "stock"}
    pipe = r.pipeline(transaction=False)
    pipe.hset(keys.reward(reward.code), "def", json.dumps(definition, separators=(",", ":")))
    if reward.stock is None:
        pipe.delete(keys.reward_stock(reward.code))
    else:
        pipe.set(keys.reward_stock(reward.code), reward.stock)
    pipe.sadd(keys.REWARDS, reward.code)
    store.revise(pipe, keys.REWARDS_REVISION)
    pipe.execute()
    return get(r, reward.code)


def get(r: redis.Redis, code: str) -> Reward | None:
    found = load(r, [code.upper()])
    return found[0] if found else None


def load(r: redis.Redis, codes: list[str]) -> list[Reward]:
    raw = store.roundtrip(r, *(command for code in codes for command in (
        ("HGET", keys.reward(code), "def"), ("GET", keys.reward_stock(code)))))
    out = []
    for i in range(0, len(raw), 2):
        if raw[i]:
            d = json.loads(raw[i])
            out.append(Reward(**d, stock=int(raw[i + 1]) if raw[i + 1] is not None else None))
    return out


def catalog(r: redis.Redis) -> list[Reward]:
    """Every reward, ordered by category, then price, then code."""
    return sorted(load(r, sorted(r.smembers(keys.REWARDS))), key=lambda w: (w.category, w.points, w.code))


def definitions(r: redis.Redis, kept: store.Kept) -> list[Reward]:
    """Every reward ordered as :func:`catalog`, *without stock* (``stock`` is
    None: read a reward's units left with :func:`get`).

    Kept per process and checked against the catalog's revision on each call:
    one GET instead of reading every definition on every list screen.
    """
    revision = store.revision(r, keys.REWARDS_REVISION)
    found = kept.get("rewards", revision)
    if found is None:
        found = kept.put("rewards", revision, [replace(w, stock=None) for w in catalog(r)])
    return found


def active(r: redis.Redis, now: float, kept: store.Kept) -> list[Reward]:
    """The rewards on offer now (definitions only: see :func:`definitions`)."""
    return [w for w in definitions(r, kept) if w.active(now)]


def load_file(r: redis.Redis, text: str) -> list[Reward]:
    """Load a YAML catalog (``rewards: {CODE: {...}}``); each entry is validated
    first, so a bad file changes nothing. ``vouchers`` lists add to the pool."""
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
            parsed.append((validate(str(code), body), (body or {}).get("vouchers") or []))
        except BadRequest as e:
            raise BadRequest(f"reward {code}: {e}") from None
    loaded = []
    for reward, vouchers in parsed:
        loaded.append(put(r, reward))
        fresh = [v for v in map(str, vouchers) if not r.hexists(keys.voucher_claims(reward.code), v)]
        if fresh and r.llen(keys.voucher_pool(reward.code)) == 0:
            add_vouchers(r, reward.code, fresh)
    return loaded


def add_vouchers(r: redis.Redis, code: str, vouchers: list[str]) -> int:
    if vouchers:
        r.rpush(keys.voucher_pool(code), *vouchers)
    return r.llen(keys.voucher_pool(code))


# -- stock: scripts over one reward's slot --------------------------------------
# KEYS[1] stock  KEYS[2] reservations   ARGV[1] redemption id  ARGV[2] quantity
# Returns 1 when held (now or by an earlier call with this id), 0 when out of stock.
RESERVE = Script("""
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 1 end
local qty = tonumber(ARGV[2])
local stock = redis.call('GET', KEYS[1])
if stock and tonumber(stock) < qty then return 0 end
if stock then redis.call('DECRBY', KEYS[1], qty) end
redis.call('HSET', KEYS[2], ARGV[1], 'held:' .. qty)
return 1
""", durable=True)

# KEYS[1] stock  KEYS[2] reservations   ARGV[1] redemption id  ARGV[2] 'used' | 'released'
# Settles a held reservation once: 'released' puts the units back.
SETTLE = Script("""
local held = redis.call('HGET', KEYS[2], ARGV[1])
if not held or string.sub(held, 1, 5) ~= 'held:' then return 0 end
local qty = tonumber(string.sub(held, 6))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. qty)
if ARGV[2] == 'released' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], qty)
end
return 1
""")

# KEYS[1] voucher pool  KEYS[2] claims   ARGV[1] redemption id
# The voucher of this redemption: the one claimed before, or the next of the pool.
CLAIM_VOUCHER = Script("""
local code = redis.call('HGET', KEYS[2], ARGV[1])
if code then return code end
code = redis.call('LPOP', KEYS[1])
if not code then return false end
redis.call('HSET', KEYS[2], ARGV[1], code)
return code
""", durable=True)


def reserve_args(code: str, rid: str, qty: int) -> tuple[list, list]:
    """RESERVE's keys and arguments: hold ``qty`` of ``code`` for redemption ``rid``."""
    return [keys.reward_stock(code), keys.reward_reservations(code)], [rid, qty]


def settle(r: redis.Redis, code: str, rid: str, outcome: str) -> bool:
    """Mark a held reservation ``used`` or ``released`` (the latter restores stock)."""
    return bool(SETTLE(r, [keys.reward_stock(code), keys.reward_reservations(code)], [rid, outcome]))


def claim_voucher(r: redis.Redis, code: str, rid: str) -> str | None:
    return CLAIM_VOUCHER(r, [keys.voucher_pool(code), keys.voucher_claims(code)], [rid])
