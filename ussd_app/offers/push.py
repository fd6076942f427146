"""Leads pushed to a partner's webhook (docs/operating.md: Lead push).

A campaign's institution may carry a webhook (``url``, ``secret``: encrypted
at rest). Each lead consented under it is POSTed there by a job (queued by
``consents.give``; one job id per lead, so one job, and a lock, so one
delivery in flight) as the leads answer of the pull API holding that one
lead, with ``X-Delivery-Id`` (the same for every attempt of that lead) and
``X-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>``.

- A 2xx marks the lead received exactly as the pull API does (``consents.RECEIVE``);
  after that it is never sent again.
- Anything else (an error status, a timeout, no connection) is recorded and
  retried by rq with exponential backoff (``consents.push_retry``) for 24 h,
  then the delivery is ``failed``.
- A lead withdrawn before its delivery is never sent (``withheld``).
- A worker killed mid-attempt leaves a marker (``keys.LEAD_PUSH_PENDING``);
  housekeeping queues that lead again once its lock has lapsed. The partner
  may then get the same delivery id twice (it had answered, we had not yet
  written it down): receivers de-duplicate by ``X-Delivery-Id``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time

import redis

from ussd_app.core import formats, http, keys, metrics
from ussd_app.core.queue import PARTNERS
from ussd_app.core.msisdn import mask
from ussd_app.core.queue import TryLater
from ussd_app.core.store import Script
from ussd_app.offers import campaigns, consents

log = logging.getLogger(__name__)

FINAL = ("delivered", "withheld", "failed")
GRACE = 60  # seconds past an attempt's end (or its retry) before a worker is deemed dead with it

# KEYS[1] lock   ARGV[1] the holder's token
RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")


class DeliveryFailed(TryLater):
    """The partner's webhook did not take the lead (rq retries the job)."""


def delivery_id(consent_id: str) -> str:
    """The same for every attempt to deliver one lead."""
    return "dlv-" + consent_id.removeprefix("cns-")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def record(r: redis.Redis, institution: str, consent_id: str) -> dict | None:
    raw = r.hget(keys.lead_deliveries(institution), consent_id)
    return json.loads(raw) if raw else None


def _save(r: redis.Redis, institution: str, rec: dict) -> None:
    r.hset(keys.lead_deliveries(institution), rec["consent_id"], json.dumps(rec, separators=(",", ":")))


def _marker(institution: str, campaign_id: str, msisdn: str, consent_id: str) -> str:
    return f"{institution}|{campaign_id}|{msisdn}|{consent_id}"


def deliver(services, campaign_id: str, msisdn: str, consent_id: str) -> str:
    """The job: one attempt to deliver one lead. Returns its outcome, or
    raises DeliveryFailed for rq to retry it later."""
    r, config = services.r, services.config
    campaign = campaigns.get(r, campaign_id)
    if campaign is None or "webhook" not in campaign.institution:
        return "no_webhook"
    inst = campaign.institution["id"]
    marker = _marker(inst, campaign_id, msisdn, consent_id)
    lock, token = keys.lead_push_lock(inst, consent_id), secrets.token_hex(8)
    # held for longer than an attempt can take (LEAD_PUSH_TIMEOUT, the whole call)
    if not r.set(lock, token, nx=True, px=int((2 * config.LEAD_PUSH_TIMEOUT + 5) * 1000)):
        return "in_flight"  # another worker is delivering it now
    try:
        rec = record(r, inst, consent_id) or {  # read under the lock: what the last attempt wrote
            "delivery_id": delivery_id(consent_id), "consent_id": consent_id, "campaign": campaign_id,
            "state": "pending", "attempts": []}
        if rec["state"] in FINAL:
            r.zrem(keys.LEAD_PUSH_PENDING, marker)
            return rec["state"]
        r.zadd(keys.LEAD_PUSH_PENDING, {marker: services.clock() + config.LEAD_PUSH_TIMEOUT + GRACE})
        _save(r, inst, rec)  # listed as pending from its first attempt on
        return _attempt(services, campaign, msisdn, rec, marker)
    finally:
        RELEASE(r, [lock], [token])


def _attempt(services, campaign, msisdn: str, rec: dict, marker: str) -> str:
    r, config, now = services.r, services.config, services.clock()
    inst, hook = campaign.institution["id"], campaign.institution["webhook"]
    consent = consents.consent_record(r, msisdn, rec["consent_id"])
    if consent is None or consent.get("withdrawn_at"):
        return _final(r, inst, rec, marker, "withheld", now)
    lead = consents.lead(consent, services.vault)
    lead["consented_at"] = formats.iso(lead["consented_at"])
    body = json.dumps({"leads": [lead], "next_cursor": None}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-Delivery-Id": rec["delivery_id"],
               "X-Signature": sign(services.vault.decrypt(hook["secret_enc"]), body),
               "User-Agent": "ussd-app lead push"}
    started, status, error = time.perf_counter(), None, None
    try:  # LEAD_PUSH_TIMEOUT bounds the whole call (a trickling answer too), not each read
        status = _client(config.LEAD_PUSH_TIMEOUT).post(hook["url"], body, headers, read_body=False).status
    except http.TimedOut:
        error = "timeout"
    except http.Unreachable as e:
        error = f"unreachable: {e}"
    rec["attempts"].append({"at": now, "status": status, "error": error,
                            "ms": round((time.perf_counter() - started) * 1000, 1)})
    if status is not None and 200 <= status < 300:
        if not consents.receive(r, msisdn, rec["consent_id"], services.clock()):
            rec["note"] = "withdrawn while it was being delivered"
        rec["delivered_at"] = services.clock()
        return _final(r, inst, rec, marker, "delivered", now)
    retries = consents.push_retry(config)
    if len(rec["attempts"]) > len(retries):
        return _final(r, inst, rec, marker, "failed", now)
    _save(r, inst, rec)
    wait = retries[len(rec["attempts"]) - 1]
    r.zadd(keys.LEAD_PUSH_PENDING, {marker: now + wait + config.LEAD_PUSH_TIMEOUT + GRACE})
    metrics.lead_delivery("failed")
    log.warning(json.dumps({"event": "lead_push_failed", "institution": inst, "delivery": rec["delivery_id"],
                            "msisdn": mask(msisdn), "status": status, "error": error,
                            "attempt": len(rec["attempts"]), "retry_in": wait}))
    raise DeliveryFailed(f"{inst} did not take lead {rec['delivery_id']}: {status or error}")


_clients: dict[float, http.Client] = {}


def _client(deadline: float) -> http.Client:
    """This process's client for webhooks (one per deadline)."""
    client = _clients.get(deadline)
    if client is None:
        client = _clients[deadline] = http.Client(deadline)
    return client


def _final(r: redis.Redis, inst: str, rec: dict, marker: str, state: str, now: float) -> str:
    rec["state"], rec["settled_at"] = state, now
    _save(r, inst, rec)
    r.zrem(keys.LEAD_PUSH_PENDING, marker)
    metrics.lead_delivery("gave_up" if state == "failed" else state)
    return state


def recover(services) -> int:
    """Queue again each lead whose delivery a dead worker left (its marker past
    due and no delivery in flight); returns how many."""
    r, now = services.r, services.clock()
    queued = 0
    for marker in r.zrangebyscore(keys.LEAD_PUSH_PENDING, "-inf", now):
        inst, campaign_id, msisdn, cid = marker.split("|")
        if r.exists(keys.lead_push_lock(inst, cid)):
            continue
        r.zadd(keys.LEAD_PUSH_PENDING, {marker: now + services.config.LEAD_PUSH_TIMEOUT + GRACE})
        services.jobs.enqueue(consents.PUSH_JOB, campaign_id, msisdn, cid, job_id=consents.push_job_id(cid),
                              retry=consents.push_retry(services.config), queue=PARTNERS)
        queued += 1
    return queued


def deliveries(r: redis.Redis, institution: str, cursor: int, limit: int) -> tuple[list[dict], int | None]:
    """The institution's lead deliveries after ``cursor``, in lead order (the
    pull API's sequence and cursor)."""
    rows = r.zrangebyscore(keys.lead_index(institution), f"({cursor}", "+inf",
                           start=0, num=limit, withscores=True)
    if not rows:
        return [], None
    found = r.hmget(keys.lead_deliveries(institution), [m.split("|")[1] for m, _ in rows])
    out = []
    for raw in found:
        if raw:
            rec = json.loads(raw)
            for t in ("delivered_at", "settled_at"):
                if t in rec:
                    rec[t] = formats.iso(rec[t])
            for a in rec["attempts"]:
                a["at"] = formats.iso(a["at"])
            out.append(rec)
    return out, (int(rows[-1][1]) if len(rows) == limit else None)
