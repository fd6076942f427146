"""Retention: a subscriber's points ledger and consent log keep
``RETENTION_DAYS`` (default 396, about 13 months) in Redis; older entries go
to JSON-lines files under ``ARCHIVE_DIR``, exactly once and in order
(``core/archive.py``), by ``ussd-app archive run`` or the worker's daily
housekeeping round.

The balance lives in the buckets, never in the ledger, so archiving moves no
point. An archived ``earn`` or ``redeem`` entry takes its idempotency key
with it (the hash grew by one field per earning, forever): a reference
repeated after the retention is a new one. An archived ``redeem`` entry
takes its redemption record into its line once the redemption is settled
(done or failed; without the voucher code it delivered); a pending one keeps
it, and every later entry, in Redis. The consent log is the proof of
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


def _redemption(msisdn: str, entry: dict) -> tuple[str, str] | None:
    if entry.get("type") == "redeem" and entry.get("redemption"):
        return keys.redemptions(msisdn), entry["redemption"]
    return None


def _settled(record: dict) -> dict | None:
    """A redemption record leaves with its entry once settled (never a voucher code)."""
    if record.get("status") not in ("done", "failed"):
        return None
    return {k: v for k, v in record.items() if k != "delivered"}


LEDGER = archive.Kind("ledger", keys.ledger, time=lambda e: e.get("at", math.inf),
                      drops=_ledger_drops, attach=_redemption, settled=_settled,
                      points=lambda e: int(e.get("points") or 0))
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
