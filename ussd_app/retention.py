"""Retention: a subscriber's points ledger and consent log keep
``RETENTION_DAYS`` (default 396, about 13 months) in Redis; older entries go
to JSON-lines files under ``ARCHIVE_DIR``, exactly once and in order
(``core/archive.py``), by ``ussd-app archive run`` or the worker's daily
housekeeping round.

The balance lives in the buckets, never in the ledger, so archiving moves no
point. An archived ``earn`` or ``redeem`` entry takes its idempotency key
with it (the hash grew by one field per earning, forever): a reference
repeated after the retention is a new one. The consent log is the proof of
consent: it leaves Redis only once its lines are on disk, and never without
an ``ARCHIVE_DIR``.
"""
from __future__ import annotations

import math

from ussd_app.core import archive, keys, subscribers
from ussd_app.core.errors import Conflict

DAY = 86400


def _ledger_drops(msisdn: str, entry: dict) -> list[tuple[str, str]]:
    if entry.get("type") in ("earn", "redeem") and entry.get("reference"):
        return [(keys.idempotency(msisdn), f"{entry['type']}:{entry['reference']}")]
    return []


LEDGER = archive.Kind("ledger", keys.ledger, time=lambda e: e.get("at", math.inf),
                      drops=_ledger_drops, points=lambda e: int(e.get("points") or 0))
CONSENT_LOG = archive.Kind("consent_log", keys.consent_log,
                           time=lambda e: e.get("at", e.get("consented_at", math.inf)))
KINDS = (LEDGER, CONSENT_LOG)


def run(services, batch: int = 1000) -> dict:
    """Archive every subscriber's entries older than the retention; returns counts."""
    config, r, now = services.config, services.r, services.clock()
    if not config.ARCHIVE_DIR:
        raise Conflict("ARCHIVE_DIR is unset: nothing is archived (the consent log "
                       "leaves Redis only into an archive)")
    cutoff = now - config.RETENTION_DAYS * DAY
    counts = {"subscribers": 0, "ledger": 0, "consent_log": 0, "recovered_files": 0}
    with archive.Run(r, config.ARCHIVE_DIR, now) as job:
        r.set(keys.ARCHIVE_LAST, repr(now))
        counts["recovered_files"] = job.recover(KINDS)
        with subscribers.progress(r, show=False) as bar:
            for chunk in subscribers.in_batches(r, batch):
                for kind in KINDS:
                    counts[kind.name] += job.archive(kind, chunk, cutoff)
                counts["subscribers"] += len(chunk)
                bar.update(len(chunk))
    return counts


def due(services, every: float = DAY) -> bool:
    """Whether a day has passed since the last run started (any process)."""
    last = services.r.get(keys.ARCHIVE_LAST)
    return last is None or services.clock() - float(last) >= every
