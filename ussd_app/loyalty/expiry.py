"""Expiry jobs over every subscriber, in batches, without holding them all in memory."""
from __future__ import annotations

from ussd_app.core import formats, keys, store, subscribers, texts
from ussd_app.loyalty import points
from ussd_app.loyalty.points import EXPIRE


def expire_all(services, batch: int = 1000) -> tuple[int, int]:
    """Run the expire script for every subscriber, pipelined per batch."""
    r, now = services.r, services.clock()
    total = count = 0
    EXPIRE.load(r)
    with subscribers.progress(r) as bar:
        for chunk in subscribers.in_batches(r, batch):
            pipe = r.pipeline(transaction=False)
            for msisdn in chunk:
                EXPIRE.queue(pipe, [keys.buckets(msisdn), keys.bucket_points(msisdn),
                                    keys.ledger(msisdn), keys.counters(msisdn)], [now])
            total += sum(int(x) for x in pipe.execute())
            count += len(chunk)
            bar.update(len(chunk))
    return total, count


def notify_all(services, days: int, batch: int = 1000) -> int:
    """One SMS per bucket expiring within ``days``, never twice for a bucket."""
    r, now = services.r, services.clock()
    horizon = now + days * 86400
    sent = 0
    with subscribers.progress(r) as bar:
        for chunk in subscribers.in_batches(r, batch):
            views = [points.view_commands(msisdn, now) for msisdn in chunk]
            replies = iter(store.batch(r, [command for view in views for command in view]))
            due = []  # (msisdn, language, bucket) expiring within the horizon
            for msisdn, view in zip(chunk, views):
                account = points.parse_view([next(replies) for _ in view])
                if account.status == "active":
                    due += [(msisdn, account.lang or texts.DEFAULT, b) for b in account.buckets
                            if b.expires_at <= horizon]
            if due:
                # SADD answers 1 only the first time: each warning goes out once.
                pipe = r.pipeline(transaction=False)
                for msisdn, _, bucket in due:
                    pipe.sadd(keys.expiry_notices(msisdn), bucket.id)
                messages = [services.sms.message(msisdn, texts.t(
                    lang, "sms.hangus", points=formats.points(bucket.points, lang),
                    date=formats.wib(bucket.expires_at)))
                    for (msisdn, lang, bucket), first in zip(due, pipe.execute()) if first]
                services.sms.send_many(messages)
                sent += len(messages)
            bar.update(len(chunk))
    return sent
