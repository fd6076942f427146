"""Every Redis key the service uses, named in one place.

All keys carry the prefix ``ussd:``. A subscriber's keys share the hash tag
``{msisdn}`` so that the multi-key Lua scripts touching them run on Redis
Cluster too. Global keys (indexes, the catalog) have no subscriber tag.
"""
from __future__ import annotations

PREFIX = "ussd"


def _sub(msisdn: str, what: str) -> str:
    return f"{PREFIX}:{{{msisdn}}}:{what}"


# -- one subscriber (all in the slot of {msisdn}) ------------------------------
def session(msisdn: str, session_id: str) -> str:
    """One JSON document per USSD session, expiring with the session; in the
    caller's slot, so a hop reads it with the caller's account on one node."""
    return f"{PREFIX}:{{{msisdn}}}:session:{session_id}"  # as _sub() does, inline: twice a hop


def profile(msisdn: str) -> str:
    """Hash: status, credit_score, attributes (JSON), lang."""
    return _sub(msisdn, "profile")


def buckets(msisdn: str) -> str:
    """Sorted set: bucket id scored by its expiry (epoch seconds; inf = never)."""
    return _sub(msisdn, "buckets")


def bucket_points(msisdn: str) -> str:
    """Hash: bucket id -> points still in it."""
    return _sub(msisdn, "bucket_points")


def ledger(msisdn: str) -> str:
    """List of JSON ledger entries; only ever appended to."""
    return _sub(msisdn, "ledger")


def idempotency(msisdn: str) -> str:
    """Hash: idempotency key -> the JSON result of the operation it guarded."""
    return _sub(msisdn, "idem")


def counters(msisdn: str) -> str:
    """Hash: sequence counters (bucket ids, ledger ids) of one subscriber."""
    return _sub(msisdn, "seq")


def monthly_redemptions(msisdn: str, month: str) -> str:
    """Hash: reward code -> quantity redeemed in month ``YYYY-MM``."""
    return _sub(msisdn, f"monthly:{month}")


def redemptions(msisdn: str) -> str:
    """Hash: redemption id -> JSON redemption record."""
    return _sub(msisdn, "redemptions")


def expiry_notices(msisdn: str) -> str:
    """Set: bucket ids whose expiry warning SMS has been sent."""
    return _sub(msisdn, "expiry_notices")


def sms_pending(msisdn: str) -> str:
    """Hash: a pending SMS confirmation (e.g. TUKAR awaiting YA)."""
    return _sub(msisdn, "sms_pending")


def sms_seen(msisdn: str, message_id: str) -> str:
    """Marker that an inbound SMS was handled (gateways may post it twice)."""
    return _sub(msisdn, f"sms_seen:{message_id}")


def offers(msisdn: str) -> str:
    """Hash: campaign id -> JSON offer (status open|consented|declined|closed, ...)."""
    return _sub(msisdn, "offers")


def consents(msisdn: str) -> str:
    """Hash: consent id -> JSON consent (the lead's data; received/withdrawn times)."""
    return _sub(msisdn, "consents")


def consent_log(msisdn: str) -> str:
    """List of JSON records: consents, declines, withdrawals, opt-outs, opt-ins.
    Only ever appended to: the proof of what the subscriber agreed to."""
    return _sub(msisdn, "consent_log")


def archive(msisdn: str) -> str:
    """Hash: per archived list (``ledger``, ``consent_log``) the entries moved to
    the archive files, ``<list>:before`` (the cutoff), ``<list>:points`` and
    ``<list>:trims`` (the last trims: run:from:to, what sealing a file checks)."""
    return _sub(msisdn, "archive")


def consent_attempts(msisdn: str) -> str:
    """Counter of consent attempts in the current hour (rate limit)."""
    return _sub(msisdn, "consent_attempts")


def outbox(msisdn: str) -> str:
    """List of JSON messages the console SMS provider 'sent' to this number."""
    return _sub(msisdn, "outbox")


# -- global -------------------------------------------------------------------
SUBSCRIBERS = f"{PREFIX}:subscribers"
"""Set of every known MSISDN, scanned in batches by jobs."""

REWARDS = f"{PREFIX}:rewards"
"""Set of every reward code."""

REWARDS_REVISION = f"{PREFIX}:rewards:revision"
"""A fresh random token whenever a reward's definition changes: processes keep
the definitions while it stays the same."""

ARCHIVE_LOCK = f"{PREFIX}:archive:lock"
"""The id of the archive run under way (with a TTL): one run at a time."""

ARCHIVE_LAST = f"{PREFIX}:archive:last"
"""When the last archive run started (epoch seconds): the worker runs one a day."""

PENDING_REDEMPTIONS = f"{PREFIX}:redemptions:pending"
"""Sorted set: '<msisdn>|<redemption id>' scored by reservation time."""


def reward(code: str) -> str:
    """Hash: the reward's definition (JSON fields)."""
    return f"{PREFIX}:reward:{code}"


# A reward's stock keys share the hash tag {reward:<code>}, so its stock
# scripts run on Redis Cluster too.
def _reward(code: str, what: str) -> str:
    return f"{PREFIX}:{{reward:{code}}}:{what}"


def reward_stock(code: str) -> str:
    """String: units left (absent = unlimited)."""
    return _reward(code, "stock")


def reward_reservations(code: str) -> str:
    """Hash: redemption id -> 'held|used|released:<qty>' (never deleted: idempotency)."""
    return _reward(code, "reservations")


def voucher_pool(code: str) -> str:
    """List of unused voucher codes uploaded for a reward."""
    return _reward(code, "vouchers")


def voucher_claims(code: str) -> str:
    """Hash: redemption id -> the voucher code it received."""
    return _reward(code, "claims")


# -- campaigns and leads ---------------------------------------------------------
CAMPAIGNS = f"{PREFIX}:campaigns"
"""Set of every campaign id."""

CAMPAIGNS_REVISION = f"{PREFIX}:campaigns:revision"
"""A fresh random token whenever a campaign is stored: processes keep the
campaigns they read while it stays the same."""

OFFER_CODES = f"{PREFIX}:offer_codes"
"""Hash: offer code -> campaign id (the latest campaign using the code)."""

SCHEDULED_SMS = f"{PREFIX}:sms:scheduled"
"""Sorted set: JSON outbound message scored by when it may go out (offer window)."""


def campaign(campaign_id: str) -> str:
    """Hash: the campaign's definition (JSON) and counters."""
    return f"{PREFIX}:campaign:{campaign_id}"


# One institution's lead index shares the hash tag {leads:<institution>}.
def lead_index(institution: str) -> str:
    """Sorted set: '<msisdn>|<consent id>' scored by a per-institution sequence."""
    return f"{PREFIX}:{{leads:{institution}}}:index"


def lead_seq(institution: str) -> str:
    """Hash: consent id -> its sequence in the index; field '' holds the counter."""
    return f"{PREFIX}:{{leads:{institution}}}:seq"
