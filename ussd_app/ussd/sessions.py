"""USSD sessions in Redis: one JSON document per session, with a TTL, in the
subscriber's hash slot beside the pointer a plain redial resumes from.

The document keeps no input a subscriber typed (a NIK would sit in clear in
Redis and its dumps): a gateway's retry is known by the hop's identity, or by
how many inputs of the history were seen and a keyed digest of them."""
from __future__ import annotations

import msgspec
import redis

from ussd_app.core import keys, store
from ussd_app.core.store import Script
from ussd_app.ussd.types import Account, Accounts


class Session(msgspec.Struct):
    """A session's document: read and written whole by msgspec, a tenth of
    the time of json plus a dataclass on every hop."""
    id: str
    msisdn: str
    state: str
    lang: str = "id"
    history: list[str] = []
    page: int = 0
    data: dict = {}
    dialect: str = "africastalking"
    seen: int = 0  # how many inputs of a gateway's history were taken
    mark: str | None = None  # keyed digest of that history (never the inputs)
    seq: str | None = None  # the gateway's identity of the last hop
    last_reply: str | None = None
    last_end: bool = False
    hops: int = 0
    at: float = 0.0  # the last hop, or the gateway's end signal
    entered: float = 0.0  # when the current screen was entered
    closed: str | None = None  # how the session ended (completed, released, timeout, error)
    resume: str | None = None  # the dropped session this one offered to resume
    event: dict | None = None  # the gateway's end-of-session notification
    pointed: bool = False  # this session last set the resume pointer (a save may have to remove it)


_decode = msgspec.json.Decoder(Session).decode
_encode = msgspec.json.Encoder().encode

# KEYS[1] the session  KEYS[2] the subscriber's resume pointer
# ARGV[1] the session document  ARGV[2] its TTL (s)
# ARGV[3] the pointer's value ('': this session is not resumable)  ARGV[4] the pointer's TTL (s)
# ARGV[5] the session id (a pointer is removed only when it points to this session)
SAVE = Script("""
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
else
  local held = redis.call('GET', KEYS[2])
  if held and string.sub(held, -#ARGV[5] - 1) == '|' .. ARGV[5] then redis.call('DEL', KEYS[2]) end
end
return 1
""")


class Pointer(msgspec.Struct, frozen=True):
    """Where a plain redial may resume: the subscriber's latest session that
    left the main menu and did not end (``keys.resume``)."""
    at: float
    dialect: str
    state: str
    session_id: str

    def value(self) -> str:
        return f"{self.at}|{self.dialect}|{self.state}|{self.session_id}"

    @classmethod
    def parse(cls, raw: str | None) -> Pointer | None:
        if not raw:
            return None
        at, dialect, state, session_id = raw.split("|", 3)
        return cls(float(at), dialect, state, session_id)


def load(r: redis.Redis, accounts: Accounts, msisdn: str, session_id: str, now: float,
         resume: bool = True, ahead: tuple[str, ...] = ()) -> tuple[Session | None, Account, Pointer | None, list]:
    """The session, the caller's account (status, language, points), the
    resume pointer and the values of the keys ``ahead``, in one round trip
    (the account's commands read the others with it)."""
    own = (keys.session(msisdn, session_id), keys.resume(msisdn)) if resume else (keys.session(msisdn, session_id),)
    account = accounts.parse(store.roundtrip(r, *accounts.commands(msisdn, now, own + ahead)))
    values = account.also[len(account.also) - len(own) - len(ahead):]
    raw, held = values[0], (values[1] if resume else None)
    return (_decode(raw) if raw else None), account, Pointer.parse(held), values[len(own):]


def get(r: redis.Redis, msisdn: str, session_id: str) -> Session | None:
    (raw,) = store.roundtrip(r, ("GET", keys.session(msisdn, session_id)))
    return _decode(raw) if raw else None


def save(r: redis.Redis, session: Session, ttl: int, pointer: Pointer | None = None,
         resume_ttl: int = 0, also: tuple = ()) -> list:
    """Write the session (and, where resuming is on, the pointer: set to it,
    or removed if it pointed here), with ``also`` in the same round trip;
    returns the replies to ``also``.

    Plain SETs where they say it all; :data:`SAVE`'s compare-and-delete only
    where this session set the pointer and is no longer resumable (a script
    costs Redis several times a SET)."""
    key = keys.session(session.msisdn, session.id)
    if resume_ttl > 0 and pointer is not None:
        session.pointed = True
        writes = (("SET", key, _encode(session), "EX", ttl),
                  ("SET", keys.resume(session.msisdn), pointer.value(), "EX", resume_ttl))
    elif resume_ttl > 0 and session.pointed:
        session.pointed = False
        writes = (SAVE.command([key, keys.resume(session.msisdn)],
                               [_encode(session), ttl, "", resume_ttl, session.id]),)
    else:
        writes = (("SET", key, _encode(session), "EX", ttl),)
    return store.roundtrip(r, *writes, *also)[len(writes):]
