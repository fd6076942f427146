"""SMS over SMPP 3.4: the operator's SMSC, reached through one bind.

Two halves:

* :class:`Queued`, the provider every process uses (``SMS_PROVIDER=smpp``):
  it hands a message to the binder through a Redis list (one write, no
  network call to the SMSC in a hop or a job), records it ``queued``.
* :class:`Binder`, the ``ussd-app smpp`` process: holds the lease
  ``keys.SMPP_LOCK`` (one binder at a time), one ``bind_transceiver``
  (smpplib), submits what is queued at most ``SMPP_TPS`` a second with at
  most ``SMPP_WINDOW`` unanswered, keeps the SMSC's ``message_id`` of each
  part in the message's record, and takes MOs and delivery receipts
  (``deliver_sm``) down the same code paths as ``/sms/inbound`` and
  ``/sms/delivery``.

Nothing lost, nothing twice: a message moves from the queue to the in-flight
list atomically, and only while this process holds the lease (the Lua script
checks it: a binder that lost its lease takes nothing more). It leaves the
in-flight list when the SMSC has answered each of its parts. What is left
there after a lost bind or a restart had a submit_sm without an answer: an
offer is then never submitted again (its record says ``unknown``), a service
SMS is (it may reach the phone twice).
"""
from __future__ import annotations

import base64
import collections
import hashlib
import json
import logging
import re
import secrets
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import redis
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from ussd_app.core import gsm7, keys, metrics
from ussd_app.core.errors import BadRequest
from ussd_app.core.msisdn import mask, normalize
from ussd_app.core.store import Script
from ussd_app.sms import keywords, reports
from ussd_app.sms.types import InboundSms

log = logging.getLogger(__name__)
WIRE = "ussd_app.sms.smpp.wire"  # smpplib's client: its DEBUG lines are whole PDUs (an MO's NIK)
logging.getLogger(WIRE).setLevel(logging.INFO)  # never below, whatever LOG_LEVEL says

NAME = "smpp"

# -- the pure parts: addresses, segments, statuses, receipts -------------------
TON_INTERNATIONAL, NPI_ISDN = 1, 1
TON_ALPHANUMERIC, NPI_UNKNOWN = 5, 0
TON_NETWORK = 3  # a short code
DATA_CODING_DEFAULT = 0  # the SMSC's default alphabet: GSM-7, one octet a septet
ESM_UDHI = 0x40  # short_message starts with a user data header
ESM_RECEIPT = 0x04  # a deliver_sm that is a delivery receipt (esm_class bits 2-5)

THROTTLED = (smpplib.consts.SMPP_ESME_RTHROTTLED, smpplib.consts.SMPP_ESME_RMSGQFUL)
RETRY_LATER = smpplib.consts.SMPP_ESME_RX_T_APPN  # deliver_sm_resp: we could not take it, send again

# Receipt 'stat:' -> our status (reports.report): sent is not final.
STATS = {"DELIVRD": "delivered", "UNDELIV": "failed", "EXPIRED": "failed", "REJECTD": "failed",
         "DELETED": "failed", "ACCEPTD": "sent", "ENROUTE": "sent", "UNKNOWN": "sent"}
# message_state TLV (SMPP 3.4 5.3.2.35) -> 'stat:' word
STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
          7: "UNKNOWN", 8: "REJECTD"}
_RECEIPT = re.compile(r"id:(?P<id>\S+).*?stat:(?P<stat>[A-Z]+)(?:.*?err:(?P<err>\w+))?", re.S | re.I)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: bool
    system_id: str
    password: str


def target(url: str) -> Target:
    """``smpp://<system_id>:<password>@<host>:<port>`` (``smpps://``: TLS)."""
    u = urlsplit(url)
    return Target(u.hostname or "", u.port or 2775, u.scheme == "smpps", unquote(u.username or ""),
                  unquote(u.password or ""))


def international(msisdn: str) -> str:
    """+6281... -> 6281... (TON 1 NPI 1: international, no '+')."""
    return msisdn.lstrip("+")


def encode(text: str) -> bytes:
    """GSM-7 as SMPP's data_coding 0 carries it: one octet a septet, an
    extension character as two (escape, then its code)."""
    return text.encode("gsm03.38", errors="replace")


def udh(ref: int, total: int, seq: int) -> bytes:
    """The concatenation header (IEI 0, 8-bit reference) of part ``seq`` of ``total``."""
    return bytes((5, 0, 3, ref & 0xFF, total, seq))


def segments(text: str, ref: int) -> list[bytes]:
    """``text`` as the short_message of each submit_sm: one when it fits in
    160 septets, else parts of at most 153 septets, each behind a UDH naming
    the one reference ``ref``; an escape never ends a part (its character
    would be split over two)."""
    data = encode(text)
    if len(data) <= gsm7.SMS_SEPTETS:
        return [data]
    chunks, start = [], 0
    while start < len(data):
        end = min(start + gsm7.PART_SEPTETS, len(data))
        if end < len(data) and data[end - 1] == 0x1B:
            end -= 1
        chunks.append(data[start:end])
        start = end
    if len(chunks) > 255:
        raise ValueError("message too long for a concatenated SMS (255 parts)")
    return [udh(ref, len(chunks), i + 1) + c for i, c in enumerate(chunks)]


def decode(data: bytes, data_coding: int, esm_class: int) -> str:
    """The text of a deliver_sm's short_message (its UDH dropped)."""
    if esm_class & ESM_UDHI and data:
        data = data[1 + data[0]:]
    coding = data_coding & 0x0F if data_coding < 0xF0 else data_coding & 0x04
    if coding == 8:
        return data.decode("utf-16-be", errors="replace")
    if coding in (1, 3, 4):  # IA5/ASCII, Latin-1, 8-bit data
        return data.decode("latin-1")
    return data.decode("gsm03.38", errors="replace")


def outcome(status: int) -> str:
    """A submit_sm_resp's command_status: ok, throttled (slow down, submit again) or final."""
    if status == smpplib.consts.SMPP_ESME_ROK:
        return "ok"
    return "throttled" if status in THROTTLED else "final"


def describe(status: int) -> str:
    return f"0x{status:08x} {smpplib.consts.DESCRIPTIONS.get(status, 'unknown status')}"


@dataclass(frozen=True)
class Receipt:
    message_id: str
    stat: str  # DELIVRD, UNDELIV, ...
    err: str

    @property
    def status(self) -> str:
        return STATS.get(self.stat, "sent")


def receipt(text: str, receipted_message_id: str | None = None, message_state: int | None = None) -> Receipt | None:
    """A delivery receipt's id and stat, from its TLVs or its text
    (``id:... sub:... dlvrd:... submit date:... done date:... stat:DELIVRD err:000``)."""
    found = _RECEIPT.search(text or "")
    msgid = receipted_message_id or (found.group("id") if found else None)
    stat = STATES.get(message_state) if message_state else None
    stat = (found.group("stat").upper() if found else None) or stat
    if not msgid or not stat:
        return None
    return Receipt(msgid, stat, (found.group("err") if found and found.group("err") else ""))


def mo_id(source: str, dest: str, data: bytes, now: float, window: int = 600) -> str:
    """An MO's id: an SMSC's deliver_sm names none (SMPP 3.4), so the digest of
    what it says, in ``window``-second slots. The SMSC's redelivery of one it
    sent again (our answer lost) within the slot is handled once; the same
    words sent again by the subscriber in the same slot are taken as that
    redelivery too."""
    digest = hashlib.sha256(b"\0".join((source.encode(), dest.encode(), data))).digest()
    return f"smpp-{base64.urlsafe_b64encode(digest[:12]).decode()}-{int(now // window):x}"


# -- the provider: hand over through Redis -------------------------------------
_encode = json.JSONEncoder(separators=(",", ":")).encode


class Queued:
    """``SMS_PROVIDER=smpp`` in every process: the message goes to the binder's
    queue (a Redis list); ``ussd-app smpp`` submits it. A service SMS (a reward
    code, a consent confirmation, a keyword's answer) is from the short code
    and rests encrypted in the queue; an offer is from its campaign's sender ID."""
    remote = False  # one Redis write: no network call to the SMSC where it is sent from
    name = NAME
    accepted_as = "queued"  # recorded before it is queued: the binder's 'sent' comes after

    def __init__(self, r: redis.Redis, vault, short_code: str):
        self.r, self.vault, self.short_code = r, vault, short_code

    def address(self, messages: list[dict]) -> None:
        """A service SMS is from the short code (its record says so too)."""
        for m in messages:
            if m.get("kind", "service") != "offer":
                m["from"] = self.short_code

    def deliver_many(self, messages: list[dict]) -> list[str | None]:
        self.address(messages)
        pipe = self.r.pipeline(transaction=False)
        for m in messages:
            entry = {k: m[k] for k in ("id", "to", "from", "kind", "retry_of", "sent_at") if m.get(k)}
            if entry.get("kind") == "offer":
                entry["text"] = m["text"]
            else:
                entry["text_enc"] = self.vault.encrypt(m["text"])
            pipe.rpush(keys.SMPP_QUEUE, _encode(entry))
        pipe.execute()
        return [None] * len(messages)


def bound(r: redis.Redis) -> bool:
    """Whether an ``ussd-app smpp`` holds a bind now (its renewed marker)."""
    return r.get(keys.SMPP_BOUND) is not None


def gauges(r: redis.Redis):
    """``ussd_smpp_bound`` for the scrape (0 when Redis does not answer)."""
    def read():
        try:
            value = 1 if bound(r) else 0
        except redis.RedisError:
            value = 0
        yield "ussd_smpp_bound", "1 while ussd-app smpp holds a bind_transceiver to the SMSC", value
    return read


# -- the binder ----------------------------------------------------------------
# KEYS[1] queue  KEYS[2] in flight  KEYS[3] lock   ARGV[1] our token  ARGV[2] how many
# Move up to ARGV[2] messages to the in-flight list, only while the lock is ours.
TAKE = Script("""
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {0} end
local out = {1}
for i = 1, tonumber(ARGV[2]) do
  local m = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not m then break end
  out[#out + 1] = m
end
return out
""")

# KEYS[1] in flight  KEYS[2] queue   ARGV[1] the message: back to the head of the queue
REQUEUE = Script("""
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then redis.call('LPUSH', KEYS[2], ARGV[1]) end
return 1
""")

# KEYS[1] lock  KEYS[2] bound marker   ARGV[1] token  ARGV[2] lease ms  ARGV[3] '1' bound
RENEW = Script("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] == '1' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) else redis.call('DEL', KEYS[2]) end
return 1
""")

# KEYS[1] lock  KEYS[2] bound marker   ARGV[1] token: let go
RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) end
return 1
""")


@dataclass(eq=False)
class Submission:
    """One message being submitted: its parts, and what the SMSC said of each."""
    raw: str  # as it sits in the in-flight list
    message: dict  # with its text
    parts: list[bytes]
    ids: list = field(default_factory=list)
    sent: int = 0  # submit_sm written to the socket
    result: str | None = None  # sent, failed (answered) - to record
    reason: str = ""
    done: bool = False  # recorded, out of the in-flight list
    finishing: bool = False  # a thread is recording it

    @property
    def offer(self) -> bool:
        return self.message.get("kind") == "offer"


class Lost(Exception):
    """The bind is gone."""


class Bind:
    """One bind_transceiver: the socket (smpplib), what is unanswered on it."""

    def __init__(self, client: smpplib.client.Client, window: int):
        self.client = client
        self.send_lock = threading.Lock()  # two threads write PDUs: never interleaved
        self.window = threading.BoundedSemaphore(window)
        self.pending: dict[int, tuple[Submission, int, float]] = {}  # sequence -> (what, part, when)
        self.lost = threading.Event()
        self.why = ""
        self.last_rx = time.monotonic()

    def send(self, command: str, register=None, **fields) -> None:
        with self.send_lock:
            if self.lost.is_set():
                raise Lost(self.why)
            pdu = smpplib.smpp.make_pdu(command, client=self.client, **fields)
            if register is not None:
                self.pending[pdu.sequence] = (*register, time.monotonic())
            try:
                self.client.send_pdu(pdu)
            except (smpplib.exceptions.ConnectionError, OSError) as e:
                if register is not None:
                    self.pending.pop(pdu.sequence, None)
                self.drop(f"send failed: {type(e).__name__}")
                raise Lost(self.why) from None

    def reply(self, command: str, sequence: int, **fields) -> None:
        with self.send_lock:
            pdu = smpplib.smpp.make_pdu(command, client=self.client, **fields)
            pdu.sequence = sequence
            self.client.send_pdu(pdu)

    def drop(self, why: str) -> None:
        if not self.lost.is_set():
            self.why = why
            self.lost.set()
            try:
                self.client.disconnect()
            except Exception:  # closing what is already broken
                pass


class Binder:
    """``ussd-app smpp``: the one process bound to the SMSC."""
    ENQUIRE_EVERY = 30.0  # seconds without traffic before an enquire_link
    RESP_TIMEOUT = 60.0  # a submit_sm unanswered this long: the bind is taken as lost
    LEASE = 15.0  # seconds the lock lasts without renewal
    RENEW_EVERY = 3.0
    BACKOFF_FIRST, BACKOFF_CAP = 1.0, 60.0  # rebinding: 1 s doubling up to a minute
    TAKE_AT_ONCE = 50

    def __init__(self, services, stop: threading.Event | None = None):
        self.services, self.r = services, services.r
        config = services.config
        self.target = target(config.SMPP_URL)
        self.system_type = config.SMPP_SYSTEM_TYPE
        self.tps, self.window = config.SMPP_TPS, config.SMPP_WINDOW
        self.stop = stop or threading.Event()
        self.token = secrets.token_hex(12)
        self.bind: Bind | None = None
        self.owned = threading.Event()
        self.subs: list[Submission] = []  # taken, not yet done (both threads: under subs_lock)
        self.subs_lock = threading.Lock()
        self.retry: collections.deque = collections.deque()  # (not before, submission, part)
        self.next_at = 0.0  # the TPS pace
        self.slow_until = 0.0
        self.ref = secrets.randbelow(256)

    # -- the lease ---------------------------------------------------------
    def acquire(self) -> None:
        """Wait for the lock (another binder may hold it: then this one waits)."""
        said = False
        while not self.stop.is_set():
            try:
                if RENEW(self.r, [keys.SMPP_LOCK, keys.SMPP_BOUND],  # still ours (Redis was away)
                         [self.token, int(self.LEASE * 1000), "0"]) or \
                        self.r.set(keys.SMPP_LOCK, self.token, nx=True, px=int(self.LEASE * 1000)):
                    self.owned.set()
                    return
            except redis.RedisError as e:
                log.warning("smpp: Redis does not answer (%s); waiting", type(e).__name__)
            if not said:
                log.warning("smpp: another ussd-app smpp holds the bind (lock %s); waiting for it "
                            "to stop", keys.SMPP_LOCK)
                said = True
            self.stop.wait(1.0)

    def _renew(self) -> None:
        last_ok = time.monotonic()
        while self.owned.is_set() and not self.stop.wait(self.RENEW_EVERY):
            bind = self.bind
            up = bind is not None and not bind.lost.is_set()
            try:
                ok = RENEW(self.r, [keys.SMPP_LOCK, keys.SMPP_BOUND],
                           [self.token, int(self.LEASE * 1000), "1" if up else "0"])
                if ok:
                    last_ok = time.monotonic()
                    continue
                why = "another process took the lock"
            except redis.RedisError as e:
                if time.monotonic() - last_ok < self.LEASE - self.RENEW_EVERY:
                    continue
                why = f"the lock could not be renewed ({type(e).__name__})"
            log.error("smpp: %s; stopping to submit", why)
            self.owned.clear()
            if bind is not None:
                bind.drop(why)
            return

    # -- binding -----------------------------------------------------------
    def connect(self) -> Bind:
        t = self.target
        context = ssl.create_default_context() if t.tls else None
        if context is not None:
            context.check_hostname = True
        client = smpplib.client.Client(t.host, t.port, timeout=self.ENQUIRE_EVERY,
                                       ssl_context=context, allow_unknown_opt_params=True,
                                       logger_name=WIRE)
        try:
            client.connect()
            client.bind_transceiver(system_id=t.system_id, password=t.password,
                                    system_type=self.system_type)
        except Exception:
            try:
                client.disconnect()
            except Exception:  # never connected: nothing to close
                pass
            raise
        return Bind(client, self.window)

    def run(self) -> None:
        """Bind, submit, rebind with backoff, until stopped."""
        failures = 0
        while not self.stop.is_set():
            self.acquire()
            if self.stop.is_set():
                break
            threading.Thread(target=self._renew, name="smpp-lease", daemon=True).start()
            self.settle_leftovers()
            while self.owned.is_set() and not self.stop.is_set():
                try:
                    self.bind = self.connect()
                except Exception as e:  # refused, timed out, bind refused: back off
                    failures += 1
                    pause = min(self.BACKOFF_CAP, self.BACKOFF_FIRST * 2 ** (failures - 1))
                    log.warning("smpp: bind to %s:%s failed (%s); again in %.0f s", self.target.host,
                                self.target.port, _why(e), pause)
                    self.stop.wait(pause)
                    continue
                failures = 0
                log.info("smpp: bound to %s:%s as %s", self.target.host, self.target.port,
                         self.target.system_id)
                self._mark(True)
                reader = threading.Thread(target=self._read, args=(self.bind,), name="smpp-read",
                                          daemon=True)
                reader.start()
                try:
                    self._submit_loop(self.bind)
                finally:
                    if self.stop.is_set():
                        self._unbind(self.bind)
                    self.bind.drop(self.bind.why or "stopping")
                    reader.join(5)
                    self._mark(False)
                    self.settle(self.bind)
                if not self.stop.is_set():
                    log.warning("smpp: bind lost (%s); binding again", self.bind.why)
            self.owned.clear()
        self._release()

    def _mark(self, up: bool) -> None:
        try:
            if up:
                self.r.set(keys.SMPP_BOUND, "1", px=int(self.LEASE * 1000))
            else:
                self.r.delete(keys.SMPP_BOUND)
        except redis.RedisError:
            pass  # the lease renewal writes it again

    def _release(self) -> None:
        try:
            RELEASE(self.r, [keys.SMPP_LOCK, keys.SMPP_BOUND], [self.token])
        except redis.RedisError:
            pass  # the lock lapses by itself

    def _unbind(self, bind: Bind) -> None:
        """Stopping: wait a little for what is unanswered, then unbind."""
        deadline = time.monotonic() + 5
        while bind.pending and time.monotonic() < deadline and not bind.lost.is_set():
            time.sleep(0.05)
        try:
            bind.send("unbind")
            time.sleep(0.2)
        except Lost:
            pass

    # -- submitting ----------------------------------------------------------
    def _submit_loop(self, bind: Bind) -> None:
        while not self.stop.is_set() and not bind.lost.is_set() and self.owned.is_set():
            now = time.monotonic()
            oldest = min((t for _, _, t in list(bind.pending.values())), default=now)
            if now - oldest > self.RESP_TIMEOUT:
                bind.drop(f"no submit_sm_resp in {self.RESP_TIMEOUT:.0f} s")
                return
            self._finish_unwritten()
            if self.retry and self.retry[0][0] <= now:
                _, sub, part = self.retry.popleft()
                self._submit(bind, sub, part)
                continue
            free = self.window - len(bind.pending) - len(self.retry)
            if free <= 0 or (self.retry and not bind.pending):
                time.sleep(0.005)
                continue
            try:
                taken = TAKE(self.r, [keys.SMPP_QUEUE, keys.SMPP_INFLIGHT, keys.SMPP_LOCK],
                             [self.token, min(free, self.TAKE_AT_ONCE)])
            except redis.RedisError as e:
                log.warning("smpp: Redis does not answer (%s); waiting", type(e).__name__)
                self.stop.wait(1.0)
                continue
            if not taken[0]:
                self.owned.clear()
                bind.drop("the lock is another process's")
                return
            if len(taken) == 1:
                self.stop.wait(0.02)  # idle
                continue
            subs = [sub for sub in map(self._prepare, taken[1:]) if sub is not None]
            with self.subs_lock:  # each one taken is settled, whatever happens to the bind next
                self.subs.extend(subs)
            for sub in subs:
                for part in range(len(sub.parts)):
                    if bind.lost.is_set():
                        return
                    self._submit(bind, sub, part)

    def _prepare(self, raw) -> Submission | None:
        raw = raw.decode() if isinstance(raw, bytes) else raw
        try:
            message = json.loads(raw)
            if "text_enc" in message:
                message["text"] = self.services.vault.decrypt(message.pop("text_enc"))
            self.ref = (self.ref + 1) % 256
            parts = segments(message["text"], self.ref)
        except Exception as e:  # one message that cannot be sent never holds up the others
            log.error("smpp: a queued message cannot be sent (%s); dropped as failed", _why(e))
            try:
                message = json.loads(raw)
                message.setdefault("text", "")
                self._finish(Submission(raw, message, [], result="failed", reason=_why(e)[:200]))
            except Exception:  # not even its record: out of the queue all the same
                self.r.lrem(keys.SMPP_INFLIGHT, 1, raw)
            return None
        return Submission(raw, message, parts, ids=[None] * len(parts))

    def _pace(self) -> None:
        now = time.monotonic()
        step = 1.0 / self.tps
        if now < self.slow_until:
            step *= 4  # the SMSC said slow down
        self.next_at = max(self.next_at + step, now)
        wait = self.next_at - now
        if wait > 0:
            time.sleep(wait)

    def _submit(self, bind: Bind, sub: Submission, part: int) -> None:
        if sub.result is not None:  # failed meanwhile: its other parts are not sent
            return
        while not bind.window.acquire(timeout=0.5):
            if bind.lost.is_set() or self.stop.is_set():
                return
        self._pace()
        m = sub.message
        offer = sub.offer
        try:
            bind.send("submit_sm", register=(sub, part),
                      service_type="",
                      source_addr_ton=TON_ALPHANUMERIC if offer else TON_NETWORK,
                      source_addr_npi=NPI_UNKNOWN,
                      source_addr=m["from"],
                      dest_addr_ton=TON_INTERNATIONAL, dest_addr_npi=NPI_ISDN,
                      destination_addr=international(m["to"]),
                      esm_class=ESM_UDHI if len(sub.parts) > 1 else 0,
                      data_coding=DATA_CODING_DEFAULT,
                      registered_delivery=1,
                      short_message=sub.parts[part])
            sub.sent += 1
        except Lost:
            bind.window.release()
        except Exception as e:  # smpplib refused a field (e.g. a sender ID too long): final
            bind.window.release()
            if sub.result is None:
                sub.result, sub.reason = "failed", f"not submitted: {_why(e)}"[:200]
                self._finish(sub)

    def _on_resp(self, bind: Bind, pdu) -> None:
        entry = bind.pending.pop(pdu.sequence, None)
        if entry is None:
            return
        sub, part, started = entry
        bind.window.release()
        metrics.smpp_submit(time.monotonic() - started)
        status = int(pdu.status or 0)
        result = outcome(status)
        if result == "ok":
            msgid = pdu.message_id
            sub.ids[part] = msgid.decode() if isinstance(msgid, bytes) else str(msgid)
            if all(sub.ids) and sub.result is None:
                sub.result = "sent"
                self._finish(sub)
        elif result == "throttled":
            self.slow_until = time.monotonic() + 2.0
            self.retry.append((time.monotonic() + 1.0, sub, part))
            metrics.sms(NAME, "throttled")
        elif sub.result is None:
            sub.result, sub.reason = "failed", describe(status)
            self._finish(sub)

    def _finish(self, sub: Submission) -> None:
        """Record what the SMSC said of ``sub``, take it out of the in-flight list."""
        with self.subs_lock:
            if sub.done or sub.finishing:
                return
            sub.finishing = True
        try:
            reports.submitted(self.services, NAME, sub.message, sub.result,
                              [i for i in sub.ids if i], sub.reason)
            self.r.lrem(keys.SMPP_INFLIGHT, 1, sub.raw)
        except redis.RedisError as e:
            log.warning("smpp: recording message %s failed (%s); trying again", sub.message["id"],
                        type(e).__name__)
            sub.finishing = False
            return
        with self.subs_lock:
            sub.done = True
            if sub in self.subs:
                self.subs.remove(sub)
        metrics.sms(NAME, sub.result)
        if sub.result == "failed":
            log.warning(json.dumps({"event": "sms_refused", "provider": NAME, "id": sub.message["id"],
                                    "to": mask(sub.message["to"]), "reason": sub.reason}))

    def _finish_unwritten(self) -> None:
        with self.subs_lock:
            waiting = [s for s in self.subs if s.result and not s.done]
        for sub in waiting:
            self._finish(sub)

    # -- a lost bind, a restart ------------------------------------------------
    def settle(self, bind: Bind) -> None:
        """After a bind: what was answered is recorded; what was not: a message
        none of whose parts went out is queued again; otherwise an offer is
        recorded ``unknown`` (never submitted again), a service SMS queued again."""
        bind.pending.clear()
        self.retry.clear()
        with self.subs_lock:
            subs, self.subs = self.subs, []
        for sub in subs:
            if sub.done:
                continue
            if sub.result:
                self._finish(sub)  # Redis refused it: the next start settles it
            elif sub.sent == 0 or not sub.offer:
                self._requeue(sub.raw)
            else:
                self._unknown(sub.message, sub.raw, [i for i in sub.ids if i])

    def settle_leftovers(self) -> None:
        """At start (the lock held): what an earlier binder left in flight."""
        while not self.stop.is_set():
            try:
                raws = self.r.lrange(keys.SMPP_INFLIGHT, 0, -1)
                for raw in raws:
                    raw = raw.decode() if isinstance(raw, bytes) else raw
                    message = json.loads(raw)
                    rec = self.r.hget(keys.sms_records(message["to"]), message["id"])
                    status = json.loads(rec).get("status") if rec else None
                    if status not in (None, "queued"):  # recorded; only the removal was missed
                        self.r.lrem(keys.SMPP_INFLIGHT, 1, raw)
                    elif message.get("kind") == "offer":
                        self._unknown(message, raw, [])
                    else:
                        self._requeue(raw)
                if raws:
                    log.warning("smpp: settled %d message(s) an earlier binder left in flight", len(raws))
                return
            except redis.RedisError as e:
                log.warning("smpp: Redis does not answer (%s); waiting", type(e).__name__)
                self.stop.wait(1.0)

    def _requeue(self, raw: str) -> None:
        try:
            REQUEUE(self.r, [keys.SMPP_INFLIGHT, keys.SMPP_QUEUE], [raw])
        except redis.RedisError as e:
            log.warning("smpp: queueing a message again failed (%s); the next start will", type(e).__name__)

    def _unknown(self, message: dict, raw: str, ids: list) -> None:
        message = {k: v for k, v in message.items() if k != "text_enc"}
        message.setdefault("text", "")
        try:
            reports.submitted(self.services, NAME, message, "unknown", ids,
                              "no submit_sm_resp before the bind was lost: the SMSC may have it; "
                              "an offer is never submitted twice")
            self.r.lrem(keys.SMPP_INFLIGHT, 1, raw)
        except redis.RedisError as e:
            log.warning("smpp: recording an unknown outcome failed (%s); the next start will",
                        type(e).__name__)
            return
        metrics.sms(NAME, "unknown")
        log.warning(json.dumps({"event": "sms_unknown_outcome", "provider": NAME, "id": message["id"],
                                "to": mask(message["to"])}))

    # -- reading -----------------------------------------------------------------
    def _read(self, bind: Bind) -> None:
        enquired = None
        while not bind.lost.is_set():
            try:
                pdu = bind.client.read_pdu()
            except socket.timeout:
                if enquired is not None and bind.last_rx < enquired:
                    bind.drop("no answer to enquire_link")
                    return
                enquired = time.monotonic()
                try:
                    bind.send("enquire_link")
                except Lost:
                    return
                continue
            except Exception as e:  # closed, reset, a PDU we cannot read
                bind.drop(f"read failed: {_why(e)}")
                return
            bind.last_rx = time.monotonic()
            try:
                self._dispatch(bind, pdu)
            except Exception as e:
                bind.drop(f"answering a {pdu.command} failed: {_why(e)}")
                return

    def _dispatch(self, bind: Bind, pdu) -> None:
        command = pdu.command
        if command == "submit_sm_resp":
            self._on_resp(bind, pdu)
        elif command == "generic_nack":
            if pdu.sequence in bind.pending:
                self._on_resp(bind, pdu)
        elif command == "deliver_sm":
            status = self.deliver(pdu)
            bind.reply("deliver_sm_resp", pdu.sequence, status=status)
        elif command == "enquire_link":
            bind.reply("enquire_link_resp", pdu.sequence)
        elif command == "unbind":
            bind.reply("unbind_resp", pdu.sequence)
            bind.drop("the SMSC unbound")
        elif command == "data_sm":
            bind.reply("generic_nack", pdu.sequence, status=smpplib.consts.SMPP_ESME_RINVCMDID)

    def deliver(self, pdu) -> int:
        """A deliver_sm: a receipt, or an MO. Its deliver_sm_resp status:
        ROK, or RX_T_APPN when it could not be stored (the SMSC sends it again)."""
        esm = int(pdu.esm_class or 0)
        data = pdu.short_message or b""
        if isinstance(data, str):
            data = data.encode("latin-1")
        source = _text(pdu.source_addr)
        try:
            msisdn = normalize(source, "source_addr")
        except BadRequest:
            log.warning(json.dumps({"event": "smpp_deliver_dropped", "why": "source_addr is not an "
                                    "Indonesian mobile number"}))
            return smpplib.consts.SMPP_ESME_ROK
        try:
            if esm & 0x3C == ESM_RECEIPT:
                return self._receipt(pdu, msisdn, data)
            return self._mo(pdu, msisdn, data, esm)
        except redis.RedisError as e:
            log.warning(json.dumps({"event": "smpp_deliver_retry", "from": mask(msisdn),
                                    "why": f"redis: {type(e).__name__}"}))
            return RETRY_LATER
        except Exception as e:  # a bug: the SMSC tries again later, the log says why
            log.exception("smpp: handling a deliver_sm from %s failed (%s)", mask(msisdn), type(e).__name__)
            return RETRY_LATER

    def _mo(self, pdu, msisdn: str, data: bytes, esm: int) -> int:
        text = decode(data, int(pdu.data_coding or 0), esm)
        dest = _text(pdu.destination_addr)
        sms = InboundSms(sender=msisdn, to=dest, text=text,
                         message_id=mo_id(msisdn, dest, data, self.services.clock()))
        keywords.handle(self.services, sms)  # what /sms/inbound does
        log.info(json.dumps({"event": "sms_inbound", "provider": NAME, "id": sms.message_id,
                             "from": mask(msisdn)}))  # never the text: it may hold a NIK
        return smpplib.consts.SMPP_ESME_ROK

    def _receipt(self, pdu, msisdn: str, data: bytes) -> int:
        state = getattr(pdu, "message_state", None)
        found = receipt(data.decode("latin-1"), _text(getattr(pdu, "receipted_message_id", None)) or None,
                        int(state) if state is not None else None)
        if found is None:
            log.warning(json.dumps({"event": "smpp_receipt_unreadable", "to": mask(msisdn)}))
            return smpplib.consts.SMPP_ESME_ROK
        reason = f"{found.stat} err:{found.err}" if found.status == "failed" else ""
        result = reports.report(self.services, found.message_id, msisdn, found.status, reason)
        log.info(json.dumps({"event": "sms_delivery_report", "provider": NAME, "id": found.message_id[:100],
                             "to": mask(msisdn), "status": found.status, "outcome": result}))
        return smpplib.consts.SMPP_ESME_ROK


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _stopping() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def serve(services) -> None:
    """``ussd-app smpp``: run the binder until SIGTERM or SIGINT."""
    Binder(services, _stopping()).run()


def idle(said) -> None:
    """``ussd-app smpp`` without SMS_PROVIDER=smpp: ``said()``, then wait for SIGTERM or SIGINT."""
    stop = _stopping()
    said()
    while not stop.wait(3600):
        pass
