"""Partner institutions' API keys: one per institution, shown once when made
and stored only as its SHA-256 (a random 32-byte key needs no slow hash: there
is nothing to guess). A key reads its own institution's leads and lead
deliveries, nothing else (``web/auth.py``)."""
from __future__ import annotations

import hashlib
import json
import secrets

import redis

from ussd_app.core import keys
from ussd_app.core.errors import BadRequest, Conflict
from ussd_app.core.store import Script
from ussd_app.offers.campaigns import ID

PREFIX = "pk_"

# KEYS[1] institution -> record  KEYS[2] key digest -> institution
# ARGV[1] institution  ARGV[2] digest  ARGV[3] record JSON
# Returns 1, or 0 when the institution has a key already.
ADD = Script("""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
""")

# KEYS[1] institution -> record  KEYS[2] key digest -> institution   ARGV[1] institution
# Returns 1 if a key was revoked, 0 if there was none.
REVOKE = Script("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[2], cjson.decode(raw).digest)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
""")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def institution_id(value) -> str:
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise BadRequest("institution must be 1-40 lowercase letters, digits or -")
    return value


def add(r: redis.Redis, institution: str, now: float) -> str:
    """A new key for ``institution`` (Conflict if it has one: revoke it first)."""
    institution = institution_id(institution)
    key = PREFIX + secrets.token_urlsafe(32)
    record = json.dumps({"digest": digest(key), "created_at": now}, separators=(",", ":"))
    if not ADD(r, [keys.PARTNERS, keys.PARTNER_KEYS], [institution, digest(key), record]):
        raise Conflict(f"{institution} has a key already: revoke it first")
    return key


def revoke(r: redis.Redis, institution: str) -> bool:
    return bool(REVOKE(r, [keys.PARTNERS, keys.PARTNER_KEYS], [institution]))


def institution_of(r: redis.Redis, key: str) -> str | None:
    """The institution whose key this is, if any."""
    if not key.startswith(PREFIX):
        return None
    return r.hget(keys.PARTNER_KEYS, digest(key))


def every(r: redis.Redis) -> list[dict]:
    """Institutions with a key, and when it was made (never the key)."""
    return [{"institution": inst, "created_at": json.loads(raw)["created_at"]}
            for inst, raw in sorted(r.hgetall(keys.PARTNERS).items())]
