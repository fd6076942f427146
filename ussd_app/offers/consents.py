"""Offers held by a subscriber, consent, decline, opt-out, and the leads that
consent produces (docs/offers-and-privacy.md).

The subscriber's side lives in their hash slot (offers, consents, an
append-only consent log) and changes only through the scripts below; an
institution's lead index lives in the institution's slot. A lead reaches a
partner only through :func:`leads`, which re-checks each consent atomically
(withdrawn: withheld; else marked received, with the time).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import redis

from ussd_app.offers import campaigns
from ussd_app.core import keys, metrics, queue, store, subscribers, texts
from ussd_app.offers.campaigns import Campaign
from ussd_app.core.store import Script

SHARED_FIELDS = ["msisdn", "credit_score", "nik"]
PUSH_JOB = "ussd_app.offers.push.deliver"  # by name: push builds on this module

# KEYS[1] offers  KEYS[2] profile   ARGV[1] campaign id  ARGV[2] offer JSON
# Returns 'ok', 'blocked', 'opted_out' or 'already_offered'.
OFFER = Script("""
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'blocked' then return 'blocked' end
if redis.call('HGET', KEYS[2], 'offers_optout') == '1' then return 'opted_out' end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 'already_offered' end
return 'ok'
""")

# KEYS[1] offers  KEYS[2] consents  KEYS[3] consent log  KEYS[4] profile
# ARGV[1] campaign id  ARGV[2] consent id  ARGV[3] now  ARGV[4] valid until
# ARGV[5] consent JSON (also appended to the log)
# An open offer, or one whose consent was withdrawn, takes a consent; a
# withdrawn consent stays as it is (the proof) and the fresh one gets a new id.
# Returns {'ok'|'already', consent id} or {'no_offer'|'opted_out'|'closed'|'expired'},
# or {'stale'} when ARGV[2] names the withdrawn consent (read again, derive anew).
CONSENT = Script("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'no_offer'} end
local offer = cjson.decode(raw)
if offer.status == 'consented' then
  -- offers recorded before withdrawals marked them: the consent itself tells
  local c = redis.call('HGET', KEYS[2], offer.consent_id)
  if not (c and cjson.decode(c).withdrawn_at) then return {'already', offer.consent_id} end
  offer.status, offer.withdrawn_at = 'withdrawn', cjson.decode(c).withdrawn_at
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(offer))
end
if redis.call('HGET', KEYS[4], 'offers_optout') == '1' then return {'opted_out'} end
if offer.status ~= 'open' and offer.status ~= 'withdrawn' then return {'closed'} end
if tonumber(ARGV[3]) >= tonumber(ARGV[4]) then return {'expired'} end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {'stale'} end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
redis.call('RPUSH', KEYS[3], ARGV[5])
offer.status, offer.consent_id, offer.consented_at = 'consented', ARGV[2], tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(offer))
return {'ok', ARGV[2]}
""", durable=True)

# KEYS[1] offers  KEYS[2] consent log   ARGV[1] campaign id  ARGV[2] log JSON
# Returns 'ok' or the offer's status ('' when there is none).
DECLINE = Script("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return '' end
local offer = cjson.decode(raw)
if offer.status ~= 'open' then return offer.status end
offer.status = 'declined'
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(offer))
redis.call('RPUSH', KEYS[2], ARGV[2])
return 'ok'
""", durable=True)

# KEYS[1] profile  KEYS[2] offers  KEYS[3] consents  KEYS[4] consent log
# ARGV[1] now  ARGV[2] opt-out record JSON (without withdrawals)
# Stops every later offer, closes the open ones and withdraws each consent whose
# lead the institution has not received (one withdrawal record each).
# Returns {offers closed, consents withdrawn}.
OPT_OUT = Script("""
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'offers_optout', '1')
redis.call('RPUSH', KEYS[4], ARGV[2])
local closed, withdrawn = 0, 0
local offers = redis.call('HGETALL', KEYS[2])
for i = 1, #offers, 2 do
  local o = cjson.decode(offers[i + 1])
  if o.status == 'open' then
    o.status = 'closed'
    redis.call('HSET', KEYS[2], offers[i], cjson.encode(o))
    closed = closed + 1
  end
end
local consents = redis.call('HGETALL', KEYS[3])
for i = 1, #consents, 2 do
  local c = cjson.decode(consents[i + 1])
  if not c.received_at and not c.withdrawn_at then
    c.withdrawn_at = now
    redis.call('HSET', KEYS[3], consents[i], cjson.encode(c))
    local held = redis.call('HGET', KEYS[2], c.campaign)
    if held then
      local o = cjson.decode(held)
      if o.consent_id == c.id then
        o.status, o.withdrawn_at = 'withdrawn', now
        redis.call('HSET', KEYS[2], c.campaign, cjson.encode(o))
      end
    end
    redis.call('RPUSH', KEYS[4], cjson.encode({type = 'withdrawal', consent_id = c.id,
      campaign = c.campaign, institution = c.institution, at = now, reason = 'opt-out'}))
    withdrawn = withdrawn + 1
  end
end
return {closed, withdrawn}
""", durable=True)

# KEYS[1] profile  KEYS[2] consent log   ARGV[1] opt-in record JSON
# Offers may come again; the log says so. (The inbound SMS it answers is
# handled once per message id, so a resend appends nothing twice.)
OPT_IN = Script("""
redis.call('HSET', KEYS[1], 'offers_optout', '0')
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
""", durable=True)

# KEYS[1] consents  ARGV[1] consent id  ARGV[2] now
# The consent, marked received now (first time), unless withdrawn (then false).
RECEIVE = Script("""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local c = cjson.decode(raw)
if c.withdrawn_at then return false end
if not c.received_at then
  c.received_at = tonumber(ARGV[2])
  raw = cjson.encode(c)
  redis.call('HSET', KEYS[1], ARGV[1], raw)
end
return raw
""")

# KEYS[1] lead index  KEYS[2] sequence hash   ARGV[1] member  ARGV[2] consent id
# Adds the lead once; returns its sequence number.
INDEX_LEAD = Script("""
local seq = redis.call('HGET', KEYS[2], ARGV[2])
if seq then return tonumber(seq) end
seq = redis.call('HINCRBY', KEYS[2], '__next__', 1)
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], seq)
return seq
""")


def consent_id(msisdn: str, campaign_id: str, after: str | None = None) -> str:
    """A consent's id: one per subscriber and campaign, and a new one ``after``
    a withdrawn consent (the same on every retry of that fresh consent)."""
    seed = f"{msisdn}|{campaign_id}" + (f"|{after}" if after else "")
    return "cns-" + hashlib.sha256(seed.encode()).hexdigest()[:20]


def _next_id(msisdn: str, campaign_id: str, offer: dict | None) -> str:
    """The id a consent to ``offer`` (as last read) would take."""
    offer = offer or {}
    if offer.get("status") == "consented":
        return offer["consent_id"]  # answered 'already' (or 'stale', if withdrawn since)
    return consent_id(msisdn, campaign_id, offer.get("consent_id"))


def _json(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def offer(r: redis.Redis, msisdn: str, campaign: Campaign, text: str, now: float) -> str:
    """Record an open offer once per campaign; 'ok' or why not (see :data:`OFFER`)."""
    (reply,) = store.roundtrip(r, offer_command(msisdn, campaign, text, now))
    return reply


def offer_command(msisdn: str, campaign: Campaign, text: str, now: float) -> store.ScriptCommand:
    """:func:`offer` as a command, for a batch over :func:`store.roundtrip`."""
    record = {"campaign": campaign.id, "code": campaign.code, "status": "open",
              "offered_at": now, "text": text, "sender": campaign.sender_id}
    return OFFER.command([keys.offers(msisdn), keys.profile(msisdn)], [campaign.id, _json(record)])


@dataclass(frozen=True)
class Holdings:
    """Every offer a subscriber received (campaign id -> offer), their
    campaigns, and whether the subscriber stopped offers."""
    offers: dict[str, dict]
    campaigns: dict[str, Campaign]
    opted_out: bool


OPTOUT = "offers_optout"  # the profile's field: '1' once the subscriber stopped offers
HOLDINGS_HASHES = (keys.offers,)  # the subscriber's hash :func:`holdings` reads whole


def holdings(r: redis.Redis, msisdn: str, kept: store.Kept, read: tuple | None = None) -> Holdings:
    """A subscriber's offers, their campaigns and the opt-out, in one round
    trip; none where ``read`` holds them as read with the session (the
    offers as HGETALL answers, the :data:`OPTOUT` field, the campaigns'
    revision token)."""
    raw, optout, revision = read or store.roundtrip(r, ("HGETALL", keys.offers(msisdn)),
                                                    ("HGET", keys.profile(msisdn), OPTOUT),
                                                    ("GET", keys.CAMPAIGNS_REVISION))
    return _holdings(r, kept, raw, optout, revision)


@dataclass(frozen=True)
class Attempt:
    """A consent attempt as counted, and what its answer acts on as read with the count."""
    over: bool  # past the hour's limit: nothing more is done
    holdings: Holdings
    credit_score: int | None  # what a consent records


def attempt(r: redis.Redis, msisdn: str, per_hour: int, kept: store.Kept) -> Attempt:
    """Count a consent attempt against ``per_hour`` and read what its answer
    acts on (:func:`holdings` and the credit score), in one round trip: what
    either channel does first with a typed NIK."""
    # No MULTI needed: every call sets the hour's expiry if the key has none
    # (NX), so one lost with a dropped connection is set by the next attempt.
    key = keys.consent_attempts(msisdn)
    count, _, raw, revision, profile = store.roundtrip(
        r, ("INCR", key), ("EXPIRE", key, 3600, "NX"), ("HGETALL", keys.offers(msisdn)),
        ("GET", keys.CAMPAIGNS_REVISION), ("HGETALL", keys.profile(msisdn)))
    profile = store.pairs(profile)
    return Attempt(count > per_hour, _holdings(r, kept, raw, profile.get(OPTOUT), revision),
                   subscribers.from_hash(msisdn, profile).credit_score)


def _holdings(r: redis.Redis, kept: store.Kept, raw: list, optout, revision) -> Holdings:
    offers = {cid: json.loads(v) for cid, v in store.pairs(raw).items()}
    return Holdings(offers, campaigns.kept(r, offers, revision, kept), optout == "1")


@dataclass(frozen=True)
class Proof:
    """What the subscriber saw and typed, and where (docs/offers-and-privacy.md: the consent log)."""
    channel: str  # sms | ussd
    reference: str  # message id or session id
    text_shown: str
    raw_input_enc: str  # encrypted: it holds the NIK
    lang: str


def consent(r: redis.Redis, msisdn: str, campaign: Campaign, nik_enc: str, credit_score,
            proof: Proof, now: float, offer: dict | None = None) -> tuple[str, str | None]:
    """Record consent and index the lead; returns (status, consent id).

    ``offer`` is the subscriber's offer as the caller read it (read here when
    None): after a withdrawn consent, the fresh one takes a new id."""
    if offer is None:
        offer = _offer(r, msisdn, campaign.id)
    status, cid = _consent(r, msisdn, campaign, nik_enc, credit_score, proof, now,
                           _next_id(msisdn, campaign.id, offer))
    if status == "stale":  # withdrawn between the caller's read and now: once more
        status, cid = _consent(r, msisdn, campaign, nik_enc, credit_score, proof, now,
                               _next_id(msisdn, campaign.id, _offer(r, msisdn, campaign.id)))
    return ("closed", None) if status == "stale" else (status, cid)


def _offer(r: redis.Redis, msisdn: str, campaign_id: str) -> dict | None:
    raw = r.hget(keys.offers(msisdn), campaign_id)
    return json.loads(raw) if raw else None


def _consent(r, msisdn, campaign, nik_enc, credit_score, proof, now, cid) -> tuple[str, str | None]:
    # The index entry goes first (both in one round trip, in order): a crash
    # after it leaves an entry the leads API skips (no consent); a crash before
    # it loses nothing. Both act once per consent id.
    _, (status, *rest) = store.roundtrip(r, *consent_commands(msisdn, campaign, nik_enc, credit_score,
                                                              proof, now, cid))
    return status, (rest[0] if rest else None)


def consent_commands(msisdn: str, campaign: Campaign, nik_enc: str, credit_score, proof: Proof,
                     now: float, cid: str) -> tuple[store.ScriptCommand, store.ScriptCommand]:
    """A consent under id ``cid`` as its two scripts' commands, in the order
    they are sent: the lead's index entry, then the consent (its status first)."""
    inst = campaign.institution["id"]
    record = {
        "type": "consent", "id": cid, "msisdn": msisdn, "campaign": campaign.id,
        "institution": inst, "institution_name": campaign.institution["name"],
        "product": campaign.product,
        "purpose": f"credit assessment by {campaign.institution['name']} for {campaign.product}",
        "fields": SHARED_FIELDS, "consent_text": campaign.text("consent_text", proof.lang),
        "consent_version": campaign.consent_version, "text_shown": proof.text_shown,
        "channel": proof.channel, "reference": proof.reference, "raw_input_enc": proof.raw_input_enc,
        "nik_enc": nik_enc, "credit_score": credit_score, "lang": proof.lang, "consented_at": now}
    return (INDEX_LEAD.command([keys.lead_index(inst), keys.lead_seq(inst)], [f"{msisdn}|{cid}", cid]),
            CONSENT.command([keys.offers(msisdn), keys.consents(msisdn), keys.consent_log(msisdn),
                             keys.profile(msisdn)],
                            [campaign.id, cid, now, campaign.valid_until, _json(record)]))


def give(services, msisdn: str, campaign: Campaign, nik_enc: str, proof: Proof,
         offer: dict | None, score: int | None) -> str:
    """Consent (either channel) with the subscriber's credit score as the
    caller read it with the offers in this answer (:func:`attempt`);
    on success the confirmation SMS goes out from the campaign's sender ID.
    ``offer``: the subscriber's offer as the caller read it (see :func:`consent`)."""
    r = services.r
    status, cid = consent(r, msisdn, campaign, nik_enc, score, proof, services.clock(), offer)
    if status == "ok":
        metrics.consent_event("consent")
        if "webhook" in campaign.institution:  # the lead goes to the partner too (offers.push)
            # under the id the consent was recorded with: a fresh consent after a
            # withdrawn one has its own (the withdrawn one's job would be withheld)
            services.jobs.enqueue(PUSH_JOB, campaign.id, msisdn, cid, job_id=push_job_id(cid),
                                  retry=push_retry(services.config), queue=queue.PARTNERS)
        services.sms.send(msisdn, texts.t(
            proof.lang, "sms.consent_ok", institution=campaign.institution["name"],
            product=campaign.product,
            support=campaign.institution.get("support") or services.config.SUPPORT_CONTACT),
            campaign.sender_id)
    return status


def push_job_id(cid: str) -> str:
    """One lead, one push job (and so one delivery in flight), whoever queues it."""
    return f"push-{cid}"


def push_retry(config) -> tuple[int, ...]:
    """A lead push's retries: from LEAD_PUSH_BACKOFF seconds, doubling, at most an hour apart, for 24 h."""
    return queue.backoff(config.LEAD_PUSH_BACKOFF)


def decline(r: redis.Redis, msisdn: str, campaign: Campaign, channel: str, reference: str,
            now: float) -> str:
    entry = {"type": "decline", "campaign": campaign.id, "institution": campaign.institution["id"],
             "channel": channel, "reference": reference, "at": now}
    status = DECLINE(r, [keys.offers(msisdn), keys.consent_log(msisdn)], [campaign.id, _json(entry)])
    metrics.consent_event("decline", status == "ok")
    return status


def opt_out(services, msisdn: str, channel: str, reference: str, raw_input_enc: str | None,
            lang: str | None = None) -> tuple[int, int]:
    """Stop all offers and confirm it by SMS, from whichever channel (the same
    SMS for STOP and the menu); returns (offers closed, consents withdrawn).

    ``raw_input_enc``: what the subscriber sent, encrypted (an SMS may hold a
    NIK: ``OFF 3171...``); None from a menu, which records ``input: menu``.
    ``lang``: the confirmation's language (default: the subscriber's)."""
    r, config = services.r, services.config
    entry = {"type": "optout", "channel": channel, "reference": reference, "at": services.clock()}
    if raw_input_enc:
        entry["raw_input_enc"] = raw_input_enc
    else:
        entry["input"] = "menu"
    closed, withdrawn = OPT_OUT(r, [keys.profile(msisdn), keys.offers(msisdn), keys.consents(msisdn),
                                    keys.consent_log(msisdn)], [entry["at"], _json(entry)])
    metrics.consent_event("optout")
    metrics.consent_event("withdrawal", int(withdrawn))
    lang = lang or subscribers.language(r, msisdn) or texts.DEFAULT
    services.sms.send(msisdn, texts.t(lang, "sms.opted_out_withdrawn" if withdrawn else "sms.opted_out",
                                      withdrawn=withdrawn, short_code=config.SMS_SHORT_CODE))
    return int(closed), int(withdrawn)


def opt_in(r: redis.Redis, msisdn: str, channel: str, reference: str, now: float) -> None:
    OPT_IN(r, [keys.profile(msisdn), keys.consent_log(msisdn)],
           [_json({"type": "optin", "channel": channel, "reference": reference, "at": now})])
    metrics.consent_event("optin")


def log(r: redis.Redis, msisdn: str) -> list[dict]:
    return [json.loads(x) for x in r.lrange(keys.consent_log(msisdn), 0, -1)]


def leads(r: redis.Redis, vault, institution: str, cursor: int, limit: int, now: float
          ) -> tuple[list[dict], int | None]:
    """Consented leads after ``cursor``, oldest first, each marked received."""
    rows = r.zrangebyscore(keys.lead_index(institution), f"({cursor}", "+inf",
                           start=0, num=limit, withscores=True)
    if not rows:
        return [], None
    # One round trip per node (RECEIVE answers the same when sent again).
    marked = store.batch(r, [RECEIVE.command([keys.consents(m)], [cid, now])
                             for m, cid in (member.split("|") for member, _ in rows)])
    out = [lead(json.loads(raw), vault) for raw in marked
           if raw]  # none: withdrawn before it was received, or never consented
    last = int(rows[-1][1])
    return out, (last if len(rows) == limit else None)


def lead(c: dict, vault) -> dict:
    """What a partner gets of a consent: exactly these fields (docs/offers-and-privacy.md: leads)."""
    return {"msisdn": c["msisdn"], "credit_score": c["credit_score"], "nik": vault.decrypt(c["nik_enc"]),
            "campaign": c["campaign"], "consented_at": c["consented_at"], "consent_id": c["id"]}


def consent_record(r: redis.Redis, msisdn: str, cid: str) -> dict | None:
    (raw,) = store.roundtrip(r, ("HGET", keys.consents(msisdn), cid))
    return json.loads(raw) if raw else None


def standing(r: redis.Redis, msisdn: str, offer: dict | None) -> dict | None:
    """The consent given to ``offer`` while it stands (not withdrawn), or None:
    its ``received_at`` says whether the institution has the lead yet."""
    if not offer or offer.get("status") != "consented":
        return None
    c = consent_record(r, msisdn, offer["consent_id"])
    return c if c and not c.get("withdrawn_at") else None


def receive(r: redis.Redis, msisdn: str, cid: str, now: float) -> bool:
    """Mark the lead received by its institution, as the pull API does; False
    if it was withdrawn meanwhile."""
    return bool(RECEIVE(r, [keys.consents(msisdn)], [cid, now]))
