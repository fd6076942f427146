"""Sending a campaign's offers: eligibility, once per subscriber, within the window.

Offer SMS the window does not allow now are held as rq jobs scheduled at its
next opening (rq's scheduler, which the worker runs, queues them then): kept
in Redis, so a restart loses none, and checked against the window again when
they run.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter

from ussd_app.offers import campaigns, consents
from ussd_app.core import keys, store, subscribers, texts
from ussd_app.offers.campaigns import Campaign
from ussd_app.core.errors import Conflict
from ussd_app.core.formats import iso

SKIPS = ("opted_out", "ineligible", "already_offered", "blocked")
PROFILE_FIELDS = ("status", "credit_score", "attributes", "lang", "offers_optout")
RELEASE_JOB = "ussd_app.offers.sending.release"


def sms_text(config, campaign: Campaign, lang: str) -> str:
    """The offer SMS: the institution's message, the consent text, how to answer."""
    return " ".join([campaign.text("message", lang), campaign.text("consent_text", lang),
                     texts.t(lang, "offers.sms_how", code=campaign.code, short_code=config.SMS_SHORT_CODE)])


def _classify(campaign: Campaign, raw: list) -> str | None:
    status, score, attributes, _, optout = raw
    if status is None:
        return "ineligible"  # not a known subscriber
    if status == "blocked":
        return "blocked"
    if optout == "1":
        return "opted_out"
    attrs = json.loads(attributes) if attributes else {}
    if not campaigns.eligible(campaign, int(score) if score else None, attrs):
        return "ineligible"
    return None


def send(services, campaign: Campaign, msisdns: list[str] | None = None, batch: int = 1000,
         progress: bool = False) -> dict:
    """Offer ``campaign`` to ``msisdns`` (or every subscriber), at most once each.

    Two round trips per batch (per node, on a cluster): read the profiles,
    then record the offers (the script re-checks opt-out and blocking
    atomically) and queue the SMS; both over :func:`store.batch`, lighter
    than redis-py's pipelines (far lighter on a cluster).
    """
    r, config, now = services.r, services.config, services.clock()
    if not campaign.open(now):
        raise Conflict("campaign is not running now (see valid_from and valid_until)")
    send_at = services.window.next_open(now)
    counts = Counter()
    text_in = {lang: sms_text(config, campaign, lang) for lang in texts.LANGUAGES}
    chunks = ([msisdns[i:i + batch] for i in range(0, len(msisdns), batch)] if msisdns is not None
              else subscribers.in_batches(r, batch))
    total = len(msisdns) if msisdns is not None else None
    with subscribers.progress(r, total, show=progress) as bar:
        for chunk in chunks:
            profiles = store.batch(r, [("HMGET", keys.profile(m), *PROFILE_FIELDS) for m in chunk])
            commands, queued = [], []
            for m, raw in zip(chunk, profiles):
                skip = _classify(campaign, raw)
                if skip:
                    counts[skip] += 1
                    continue
                text = text_in.get(raw[3] or texts.DEFAULT, text_in[texts.DEFAULT])
                commands.append(consents.offer_command(m, campaign, text, now))
                queued.append({**services.sms.message(m, text, campaign.sender_id,
                                                      message_id=f"offer:{campaign.id}:{m}"),
                               "kind": "offer"})
            messages = []
            for msg, result in zip(queued, store.batch(r, commands)):
                if result == "ok":
                    messages.append(msg)
                else:
                    counts[result] += 1
            counts["sent"] += len(messages)
            if send_at <= now:
                services.sms.send_many(messages)
            else:
                hold(services, campaign.id, messages, send_at)
                counts["scheduled"] += len(messages)
            bar.update(len(chunk))
    answer = {"sent": counts["sent"], "skipped": {k: counts[k] for k in SKIPS}}
    if send_at > now:
        answer.update(scheduled=counts["scheduled"], send_at=iso(send_at))
    return answer


def hold(services, campaign_id: str, messages: list[dict], when: float) -> None:
    """Send ``messages`` at ``when``: one job, once (its id names the batch and the time)."""
    if not messages:
        return
    batch = hashlib.sha256("|".join(m["to"] for m in messages).encode()).hexdigest()[:16]
    services.jobs.enqueue_at(when, RELEASE_JOB, messages, job_id=f"offers-{campaign_id}-{batch}-{int(when)}")


def release(services, messages: list[dict]) -> None:
    """The job: send held offer SMS, or hold them again when the window is
    closed now (a holiday added since, a worker that was down)."""
    now = services.clock()
    when = services.window.next_open(now)
    if when > now:
        hold(services, "held", messages, when)
    else:
        services.sms.send_many(messages)


def adopt_legacy(services) -> int:
    """Hold, as jobs, offer SMS an earlier version left in its own sorted set
    (``keys.SCHEDULED_SMS``); the worker does this at start. Returns how many."""
    r = services.r
    held = r.zrange(keys.SCHEDULED_SMS, 0, -1, withscores=True)
    by_time: dict[float, list[str]] = {}
    for raw, when in held:
        by_time.setdefault(when, []).append(raw)
    for when, raws in by_time.items():
        hold(services, "legacy", [json.loads(m) for m in raws], when)  # once per batch and time
        r.zrem(keys.SCHEDULED_SMS, *raws)
    return len(held)
