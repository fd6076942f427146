"""What became of each outbound SMS: a record per message id, from the
provider's answer (``sent``, or ``failed`` with its reason) and then its
delivery reports (``POST /sms/delivery``: ``delivered``, or ``failed`` with
the reason). A service SMS (anything but an offer: a reward code, a consent
confirmation, a keyword's answer) that fails is sent once more through the
provider, as a new message; if that fails too, it is reported (the record,
``ussd_sms_total{result="undelivered"}``, a warning line).

Records live in the subscriber's slot for ``RECORD_DAYS``; the text of a
service SMS (it may hold a voucher code) is kept only encrypted, and only
until the message is delivered or has failed for good.
"""
from __future__ import annotations

import itertools
import json
import logging
import secrets

import msgspec

from ussd_app.core import formats, keys, metrics, store
from ussd_app.core.msisdn import mask
from ussd_app.core.store import Script

log = logging.getLogger(__name__)

RECORD_DAYS = 30
FINAL = ("delivered", "failed")
# Africa's Talking delivery report statuses -> ours
STATUSES = {"sent": "sent", "submitted": "sent", "buffered": "sent", "success": "delivered",
            "failed": "failed", "rejected": "failed", "expired": "failed",
            "absentsubscriber": "failed"}

# KEYS[1] the subscriber's SMS records   ARGV[1] provider's message id (ours where it
# named none: 'p:<id>' is kept only for a provider's own ids)  ARGV[2] status
# ARGV[3] reason  ARGV[4] now
# The first final report (delivered, failed) wins; a 'sent' report, a late
# 'Buffered' after 'Success', or a report posted twice changes nothing.
# A message sent in parts (SMPP: 'message_ids', the SMSC's id of each) is
# delivered when each part's report said so; the first failed part fails it.
# Returns {'unknown'} | {'same', record} | {'changed', record as it was, with its text}.
REPORT = Script("""
local id = redis.call('HGET', KEYS[1], 'p:' .. ARGV[1]) or ARGV[1]
local raw = redis.call('HGET', KEYS[1], id)
if not raw then return {'unknown'} end
local rec = cjson.decode(raw)
if rec.status == 'delivered' or rec.reported or ARGV[2] == 'sent' then return {'same', raw} end
if ARGV[2] == 'delivered' and rec.message_ids and #rec.message_ids > 1 then
  -- one part of a long message (SMPP): delivered when every part is
  local parts = rec.delivered_parts or {}
  for _, p in ipairs(parts) do if p == ARGV[1] then return {'same', raw} end end
  table.insert(parts, ARGV[1])
  rec.delivered_parts = parts
  if #parts < #rec.message_ids then
    redis.call('HSET', KEYS[1], id, cjson.encode(rec))
    return {'same', raw}
  end
end
local text = rec.text_enc
rec.status, rec.updated_at, rec.reported, rec.text_enc = ARGV[2], tonumber(ARGV[4]), true, nil
if ARGV[3] ~= '' then rec.reason = ARGV[3] end
redis.call('HSET', KEYS[1], id, cjson.encode(rec))
rec.text_enc = text
return {'changed', cjson.encode(rec)}
""")


_ids = itertools.count(1)
_process = secrets.token_hex(5)  # ids of different processes never meet


_encode = msgspec.json.Encoder().encode


def new_id() -> str:
    """A message's own id (stable across the job's retries); cheap, for offer batches."""
    return f"sms-{_process}-{next(_ids):x}"  # the dash: never a 16-digit run, read as a NIK


def _record(message: dict, provider: str, status: str, now: float, vault, reason: str = "") -> dict:
    rec = {"id": message["id"], "to": message["to"], "from": message.get("from"),
           "provider": provider, "status": status, "kind": message.get("kind", "service"),
           "sent_at": message.get("sent_at"), "updated_at": now}
    if reason:
        rec["reason"] = reason
    if message.get("retry_of"):
        rec["retry_of"] = message["retry_of"]
    elif rec["kind"] != "offer" and status != "failed":
        rec["text_enc"] = vault.encrypt(message["text"])  # for the one retry a failure gets
    return rec


# KEYS[1] the subscriber's SMS records   ARGV[1] our id   ARGV[2] status (sent,
# failed, unknown)   ARGV[3] reason   ARGV[4] now   ARGV[5] JSON list of the
# SMSC's message ids (one a part)   ARGV[6] the record to start from if none is kept
# The SMSC answered the submit_sm of a queued message (SMPP): its ids are kept
# in the record, each mapped to ours for the receipts. Returns the record.
SUBMITTED = Script("""
local rec = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]) or ARGV[6])
local ids = cjson.decode(ARGV[5])
rec.status, rec.updated_at = ARGV[2], tonumber(ARGV[4])
if #ids > 0 then rec.message_ids = ids end
if ARGV[3] ~= '' then rec.reason = ARGV[3] end
if ARGV[2] ~= 'sent' then rec.text_enc = nil end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
for _, pid in ipairs(ids) do redis.call('HSET', KEYS[1], 'p:' .. pid, ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[7])
return cjson.encode(rec)
""")


def submitted(services, provider: str, message: dict, status: str, provider_ids: list[str],
              reason: str = "") -> dict:
    """The SMSC answered (or may have answered: ``unknown``) ``message``'s
    submit_sm: the record takes ``status`` and the SMSC's id of each part."""
    start = _encode(_record(message, provider, status, services.clock(), services.vault, reason))
    return json.loads(SUBMITTED(services.r, [keys.sms_records(message["to"])],
                                [message["id"], status, reason[:200], services.clock(),
                                 json.dumps(provider_ids), start, RECORD_DAYS * 86400]))


def sent(services, provider: str, messages: list[dict], provider_ids: list | None,
         status: str = "sent") -> None:
    """The provider accepted ``messages`` (with its own ids for them, if it gave
    any); ``status`` ``queued``: it will send them (SMPP)."""
    messages = [m for m in messages if m.get("id")]
    if not messages:
        return
    now = services.clock()
    commands = []
    for m, pid in zip(messages, provider_ids or [None] * len(messages)):
        # msgspec: an offer batch writes a record per message (json.dumps took a quarter of its time)
        key, record = keys.sms_records(m["to"]), _encode(_record(m, provider, status, now, services.vault))
        if pid and pid != m["id"]:  # reports will name the provider's id
            commands.append(("HSET", key, m["id"], record, f"p:{pid}", m["id"]))
        else:
            commands.append(("HSET", key, m["id"], record))
        commands.append(("EXPIRE", key, RECORD_DAYS * 86400))
    # Each command sets what it sets however often it is sent: store.batch's
    # light path (one round trip; one per node on a Redis Cluster).
    store.batch(services.r, commands)


def refused(services, provider: str, messages: list[dict], reason: str) -> None:
    """The provider did not take ``messages`` (the job's retry may still send them)."""
    now = services.clock()
    pipe = services.r.pipeline(transaction=False)
    for m in messages:
        if m.get("id"):
            key = keys.sms_records(m["to"])
            pipe.hset(key, m["id"], _encode(_record(m, provider, "failed", now, services.vault, reason)))
            pipe.expire(key, RECORD_DAYS * 86400)
    pipe.execute()


def report(services, provider_id: str, msisdn: str, status: str, reason: str) -> str:
    """Apply a delivery report; returns what became of it: unknown, same,
    sent, delivered, retried, or undelivered (failed for good)."""
    outcome, *rest = REPORT(services.r, [keys.sms_records(msisdn)],
                            [provider_id, status, reason[:200], services.clock()])
    if outcome != "changed":
        return outcome
    rec = json.loads(rest[0])
    if status == "delivered":
        metrics.sms(rec["provider"], "delivered")
        return "delivered"
    if status != "failed":
        return "sent"
    if rec.get("text_enc") and rec["kind"] != "offer" and not rec.get("retry_of"):
        retry = {"id": new_id(), "to": rec["to"], "from": rec["from"], "kind": rec["kind"],
                 "text": services.vault.decrypt(rec["text_enc"]), "retry_of": rec["id"]}
        services.sms.send_many([retry])
        metrics.sms(rec["provider"], "retried")
        return "retried"
    metrics.sms(rec["provider"], "undelivered")
    log.warning(json.dumps({"event": "sms_undelivered", "id": rec["id"], "to": mask(rec["to"]),
                            "kind": rec["kind"], "reason": rec.get("reason", ""),
                            "retry_of": rec.get("retry_of")}))
    return "undelivered"


def outbox(r, msisdn: str, console: list[dict]) -> tuple[list[dict], list[dict]]:
    """The outbox answer: what the console provider kept (``console``), each with
    its status; and the records of what a remote provider sent the number
    (without the text, which may be a voucher code)."""
    records = {k: json.loads(v) for k, v in r.hgetall(keys.sms_records(msisdn)).items()
               if not k.startswith("p:")}
    kept = []
    for m in console:
        rec = records.pop(m.get("id"), None) or {}
        kept.append({**m, **{k: rec[k] for k in ("status", "reason", "retry_of") if k in rec}})
    remote = []
    for rec in sorted(records.values(), key=lambda x: x["updated_at"]):
        if rec["provider"] != "console":
            rec.pop("text_enc", None)
            rec["updated_at"] = formats.iso(rec["updated_at"])
            remote.append(rec)
    return kept, remote
