"""Every Redis key the service uses, named in one place.

All keys carry the prefix ``ussd:``. A subscriber's keys share the hash tag
``{msisdn}`` so that the multi-key Lua scripts touching them run on Redis
Cluster too. Global keys (indexes, the catalog) have no subscriber tag.
"""
from __future__ import annotations

PREFIX = "ussd"


def _sub(msisdn: str, what: str) -> str:
    return f"{PREFIX}:{{{msisdn}}}:{what}"


# -- USSD sessions (in the subscriber's slot, so a hop writes its session and
# the resume pointer in one script) ---------------------------------------------
def session(msisdn: str, session_id: str) -> str:
    """One JSON document per USSD session, expiring with the session; in the
    caller's slot, so a hop reads it with the caller's account on one node."""
    return f"{PREFIX}:{{{msisdn}}}:session:{session_id}"  # as _sub() does, inline: twice a hop


def resume(msisdn: str) -> str:
    """String '<last hop or drop time>|<closed 0/1>|<dialect>|<screen>|<session id>':
    the subscriber's latest session that left the main menu and did not end,
    which a plain redial may resume; expires with the resume window."""
    return _sub(msisdn, "resume")


# -- one subscriber (all in the slot of {msisdn}) ------------------------------
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


def sms_delivery(msisdn: str, message_id: str) -> str:
    """String 'sending' (a short lease) or 'accepted' (kept a week): one outbound
    SMS handed to a remote provider at most once, however often its job runs."""
    return _sub(msisdn, f"sms_out:{message_id}")


def fulfilling(msisdn: str, rid: str) -> str:
    """Lease held while a redemption is being fulfilled or finished: one worker at
    a time talks to the provider about it (expires if that worker dies)."""
    return _sub(msisdn, f"fulfilling:{rid}")


def sms_records(msisdn: str) -> str:
    """Hash: outbound message id -> JSON record (provider, status, reason);
    'p:<provider's message id>' -> our id (delivery reports name theirs)."""
    return _sub(msisdn, "sms_records")


# -- SMS over SMPP: one binder (``ussd-app smpp``), its keys in one slot --------
SMPP_QUEUE = f"{PREFIX}:{{smpp}}:queue"
"""List of JSON messages handed to the SMPP provider, waiting for the bind."""

SMPP_INFLIGHT = f"{PREFIX}:{{smpp}}:inflight"
"""List of JSON messages the binder took and is submitting (their submit_sm
may be unanswered): what a lost bind or a restart must settle."""

SMPP_LOCK = f"{PREFIX}:{{smpp}}:lock"
"""String: the token of the one ``ussd-app smpp`` process allowed to bind and
submit (a short lease it renews)."""

SMPP_BOUND = f"{PREFIX}:{{smpp}}:bound"
"""String '1' while the binder holds a bind (a short expiry it renews):
``/readyz`` and ``ussd_smpp_bound`` read it."""


# -- global -------------------------------------------------------------------
SUBSCRIBERS = f"{PREFIX}:subscribers"
"""Set of every known MSISDN, scanned in batches by jobs."""

REWARDS = f"{PREFIX}:rewards"
"""Set of every reward code."""

REWARDS_REVISION = f"{PREFIX}:{{catalog}}:rewards:revision"
"""A fresh random token whenever a reward's definition changes: processes keep
the definitions while it stays the same. In one hash slot with
:data:`CAMPAIGNS_REVISION`. On one server a hop reads both with the caller's
account (``ussd_app.services.Ahead``); on a Redis Cluster a screen reads them."""

ARCHIVE_LOCK = f"{PREFIX}:archive:lock"
"""The id of the archive run under way (with a TTL): one run at a time."""

ARCHIVE_LAST = f"{PREFIX}:archive:last"
"""When the last archive run started (epoch seconds): the worker runs one a day."""

PENDING_REDEMPTIONS = f"{PREFIX}:redemptions:pending"
"""Sorted set: '<msisdn>|<redemption id>|<reward>' scored by reservation time:
redemptions not yet finished (settled, notified, stock settled)."""

REDEMPTION_STATUSES = ("pending", "done", "failed", "needs_review")


def redemptions_index(status: str) -> str:
    """Sorted set of '<msisdn>|<redemption id>|<reward>' markers by status, scored
    by time: ``pending`` is :data:`PENDING_REDEMPTIONS`; ``needs_review`` holds
    the ones waiting for a person; ``done`` and ``failed`` the finished ones."""
    if status not in REDEMPTION_STATUSES:
        raise ValueError(status)
    return f"{PREFIX}:redemptions:{status}"


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


def reward_revision(code: str) -> str:
    """String: the reward's revision (a fresh token on every PUT), also in its
    definition: a quote names it, and the stock hold refuses another one."""
    return _reward(code, "revision")


def voucher_pool(code: str) -> str:
    """List of unused voucher codes uploaded for a reward, each encrypted
    (``services.vault``): for a reward without ``generate_codes``, its stock."""
    return _reward(code, "vouchers")


def voucher_claims(code: str) -> str:
    """Hash: redemption id -> JSON list of the (encrypted) codes it holds."""
    return _reward(code, "claims")


def voucher_digests(code: str) -> str:
    """Set: keyed hash (HMAC) of every code ever added to the pool: duplicates
    are found without keeping a code in clear."""
    return _reward(code, "voucher_digests")


# -- the USSD funnel (one hash slot, {funnel}: a hop updates a day's counters
# and the open sessions in one script) -------------------------------------------
FUNNEL_OPEN = f"{PREFIX}:{{funnel}}:open"
"""Sorted set: '<dialect>|<screen>|<msisdn>|<session id>' of every open session,
scored by its last hop: what has had no hop for a session's lifetime expired
silently (swept as a timeout)."""


def funnel_day(day: str) -> str:
    """Hash of one day's (WIB, ``YYYY-MM-DD``) counters: '<dialect>|<screen>|<outcome>'
    and '<dialect>|<screen>|~<seconds>' (the dwell histogram); expires."""
    return f"{PREFIX}:{{funnel}}:day:{day}"


# -- campaigns and leads ---------------------------------------------------------
CAMPAIGNS = f"{PREFIX}:campaigns"
"""Set of every campaign id."""

CAMPAIGNS_REVISION = f"{PREFIX}:{{catalog}}:campaigns:revision"
"""A fresh random token whenever a campaign is stored: processes keep the
campaigns they read while it stays the same."""


SCHEDULED_SMS = f"{PREFIX}:sms:scheduled"
"""Legacy: a sorted set of JSON offer SMS scored by when they may go out. Held
offer SMS are rq jobs now; the worker adopts any left here at start."""


def offer_code(code: str) -> str:
    """String: '<campaign id> <valid_until>' of the one live campaign holding offer
    ``code`` (``YA <code> <NIK>`` names it); expires when the campaign ends."""
    return f"{PREFIX}:offer_code:{code}"


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


def lead_deliveries(institution: str) -> str:
    """Hash: consent id -> JSON record of pushing that lead to the institution's
    webhook (state, attempts)."""
    return f"{PREFIX}:{{leads:{institution}}}:deliveries"


def lead_push_lock(institution: str, consent_id: str) -> str:
    """String, expiring: held while one delivery of the lead is in flight."""
    return f"{PREFIX}:{{leads:{institution}}}:pushing:{consent_id}"


LEAD_PUSH_PENDING = f"{PREFIX}:leads:push_pending"
"""Sorted set: '<institution>|<campaign>|<msisdn>|<consent id>' of leads being
pushed, scored by when, if nothing more was heard of it, a worker died with it."""


# -- partner institutions' API keys (one slot: {partners}) -----------------------
PARTNERS = f"{PREFIX}:{{partners}}:by_institution"
"""Hash: institution -> JSON {digest (SHA-256 of its key), created_at}."""

PARTNER_KEYS = f"{PREFIX}:{{partners}}:by_key"
"""Hash: SHA-256 of a partner key -> its institution."""
