"""Sending a campaign's offers: eligibility, once per subscriber, within the window."""
from __future__ import annotations

import json
from collections import Counter

from ussd_app.offers import campaigns, consents
from ussd_app.core import keys, store, subscribers, texts
from ussd_app.offers.campaigns import Campaign
from ussd_app.core.errors import Conflict
from ussd_app.core.formats import iso

SKIPS = ("opted_out", "ineligible", "already_offered", "blocked")
PROFILE_FIELDS = ("status", "credit_score", "attributes", "lang", "offers_optout")


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
                queued.append(services.sms.message(m, text, campaign.sender_id))
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
                schedule(r, messages, send_at)
                counts["scheduled"] += len(messages)
            bar.update(len(chunk))
    answer = {"sent": counts["sent"], "skipped": {k: counts[k] for k in SKIPS}}
    if send_at > now:
        answer.update(scheduled=counts["scheduled"], send_at=iso(send_at))
    return answer


def schedule(r, messages: list[dict], when: float) -> None:
    if messages:
        r.zadd(keys.SCHEDULED_SMS, {json.dumps(m, separators=(",", ":")): when for m in messages})


def flush(services, batch: int = 1000) -> int:
    """Send every scheduled SMS that is due (each once, whoever else flushes)."""
    r, now, sent = services.r, services.clock(), 0
    while True:
        due = r.zrangebyscore(keys.SCHEDULED_SMS, "-inf", now, start=0, num=batch)
        if not due:
            return sent
        pipe = r.pipeline(transaction=False)
        for m in due:
            pipe.zrem(keys.SCHEDULED_SMS, m)
        mine = [json.loads(m) for m, removed in zip(due, pipe.execute()) if removed]
        services.sms.send_many(mine)
        sent += len(mine)
