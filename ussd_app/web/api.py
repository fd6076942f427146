"""The integration API (JSON, bearer token): subscribers, points, outbox."""
from __future__ import annotations

import math

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from ussd_app.offers import campaigns, consents, push, sending as offers
from ussd_app.core import formats, subscribers
from ussd_app.loyalty import points, redemptions, rewards
from ussd_app.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from ussd_app.core.msisdn import normalize
from ussd_app.sms import providers, reports
from ussd_app.web import auth, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(auth.check)


@bp.errorhandler(BadRequest)
@bp.errorhandler(Unauthorized)
@bp.errorhandler(Forbidden)
@bp.errorhandler(NotFound)
@bp.errorhandler(Conflict)
def known_error(e):
    status = {BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409}[type(e)]
    return jsonify(error=str(e)), status


@bp.errorhandler(HTTPException)
def http_error(e):
    return jsonify(error=e.description.split(".")[0].lower()), e.code


def body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def bucket_json(b: points.Bucket) -> dict:
    return {"points": b.points,
            "expires_at": None if b.expires_at == math.inf else formats.iso(b.expires_at)}


def points_json(msisdn: str) -> dict:
    svc = services()
    view = points.view(svc.r, msisdn, svc.clock())
    nxt = view.next_expiry
    return {"msisdn": msisdn, "balance": view.balance,
            "buckets": [bucket_json(b) for b in view.buckets],
            "next_expiry": bucket_json(nxt) if nxt else None}


@bp.put("/subscribers/<msisdn>")
def put_subscriber(msisdn):
    profile = subscribers.put(services().r, normalize(msisdn), subscribers.validate(body()))
    return jsonify(profile.public())


@bp.get("/subscribers/<msisdn>")
def get_subscriber(msisdn):
    profile = subscribers.get(services().r, normalize(msisdn))
    if not profile.enrolled:
        raise NotFound("no such subscriber")
    return jsonify(profile.public())


def parse_earning(data: dict, now: float, config) -> tuple[int, str, str, float]:
    pts = data.get("points")
    if not isinstance(pts, int) or isinstance(pts, bool) or not 0 < pts <= 10_000_000:
        raise BadRequest("points must be a whole number from 1 to 10000000")
    source, reference = data.get("source"), data.get("reference")
    if not isinstance(source, str) or not source.strip() or len(source) > 64:
        raise BadRequest("source must be a non-empty string of at most 64 characters")
    if not isinstance(reference, str) or not reference.strip() or len(reference) > 128:
        raise BadRequest("reference must be a non-empty string of at most 128 characters")
    raw = data.get("expires_at")
    if raw is None:
        expires = points.default_expiry(now, config.POINTS_EXPIRY_POLICY, config.POINTS_EXPIRY_DAYS)
    else:
        try:
            expires = formats.parse_iso(raw) if isinstance(raw, str) else None
        except ValueError:
            expires = None
        if expires is None:
            raise BadRequest("expires_at must be an ISO 8601 time, e.g. 2026-12-31T23:59:00+07:00")
        if expires <= now:
            raise BadRequest("expires_at is in the past")
    return pts, source.strip(), reference.strip(), expires


@bp.post("/subscribers/<msisdn>/points")
def post_points(msisdn):
    svc = services()
    msisdn = normalize(msisdn)
    now = svc.clock()
    pts, source, reference, expires = parse_earning(body(), now, svc.config)
    created, balance = points.earn(svc.r, msisdn, pts, source, reference, expires, now)
    return jsonify(msisdn=msisdn, reference=reference, created=created, balance=balance), (
        201 if created else 200)


@bp.get("/subscribers/<msisdn>/points")
def get_points(msisdn):
    return jsonify(points_json(normalize(msisdn)))


@bp.get("/subscribers/<msisdn>/ledger")
def get_ledger(msisdn):
    msisdn = normalize(msisdn)
    entries = points.ledger(services().r, msisdn)
    for e in entries:
        e["at"] = formats.iso(e["at"])
        if e.get("expires_at"):
            e["expires_at"] = formats.iso(e["expires_at"])
    return jsonify(msisdn=msisdn, entries=entries)


@bp.get("/outbox")
def outbox():
    r, to = services().r, normalize(request.args.get("to"), "to")
    kept, remote = reports.outbox(r, to, providers.outbox(r, to))
    return jsonify(messages=kept, remote=remote)


# -- rewards ----------------------------------------------------------------------
@bp.put("/rewards/<code>")
def put_reward(code):
    reward = rewards.put(services().r, rewards.validate(code, body()))
    return jsonify(reward.public())


@bp.get("/rewards")
def list_rewards():
    return jsonify(rewards=[w.public() for w in rewards.catalog(services().r)])


@bp.get("/rewards/<code>")
def get_reward(code):
    reward = rewards.get(services().r, code)
    if reward is None:
        raise NotFound("no such reward")
    return jsonify(reward.public())


@bp.post("/rewards/<code>/vouchers")
def add_vouchers(code):
    svc = services()
    if rewards.get(svc.r, code) is None:
        raise NotFound("no such reward")
    codes = body().get("codes")
    if not isinstance(codes, list) or not all(isinstance(c, str) and 0 < len(c) <= 40 for c in codes):
        raise BadRequest("codes must be a list of voucher codes (strings of 1-40 characters)")
    return jsonify(reward=code.upper(), pool=rewards.add_vouchers(svc.r, code.upper(), codes)), 201


@bp.get("/subscribers/<msisdn>/redemptions")
def list_redemptions(msisdn):
    msisdn = normalize(msisdn)
    items = redemptions.history(services().r, msisdn)
    for rec in items:
        rec["at"] = formats.iso(rec["at"])
    return jsonify(msisdn=msisdn, redemptions=items)


# -- campaigns, offers, leads ------------------------------------------------------
@bp.post("/campaigns")
def post_campaign():
    svc = services()
    campaign = campaigns.validate(body(), svc.config.OFFER_SENDER_IDS.split(","), svc.vault,
                                  https_only=svc.config.production)
    if campaigns.exists(svc.r, campaign.id):
        raise Conflict(f"campaign {campaign.id} exists already")
    campaigns.put(svc.r, campaign)
    return jsonify(campaign.public()), 201


@bp.get("/campaigns")
def list_campaigns():
    return jsonify(campaigns=[c.public() for c in campaigns.every(services().r)])


@bp.get("/campaigns/<campaign_id>")
def get_campaign(campaign_id):
    campaign = campaigns.get(services().r, campaign_id)
    if campaign is None:
        raise NotFound("no such campaign")
    return jsonify(campaign.public())


@bp.post("/campaigns/<campaign_id>/offers")
def send_offers(campaign_id):
    svc = services()
    campaign = campaigns.get(svc.r, campaign_id)
    if campaign is None:
        raise NotFound("no such campaign")
    data = request.get_json(silent=True) or {}
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    msisdns = data.get("msisdns")
    if msisdns is not None:
        if not isinstance(msisdns, list) or not all(isinstance(m, str) for m in msisdns):
            raise BadRequest("msisdns must be a list of phone numbers")
        msisdns = list(dict.fromkeys(normalize(m, "msisdns") for m in msisdns))
    return jsonify(offers.send(svc, campaign, msisdns))


def page() -> tuple[str, int, int]:
    """``institution``, ``cursor`` and ``limit`` of a leads query."""
    institution = request.args.get("institution")
    if not institution:
        raise BadRequest("missing institution")
    try:
        cursor = int(request.args.get("cursor") or 0)
        limit = int(request.args.get("limit") or 100)
    except ValueError:
        raise BadRequest("cursor and limit must be whole numbers") from None
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be from 1 to 1000")
    return institution, cursor, limit


@bp.get("/leads")
def get_leads():
    svc = services()
    institution, cursor, limit = page()
    found, next_cursor = consents.leads(svc.r, svc.vault, institution, cursor, limit, svc.clock())
    for lead in found:
        lead["consented_at"] = formats.iso(lead["consented_at"])
    return jsonify(leads=found, next_cursor=str(next_cursor) if next_cursor else None)


@bp.get("/leads/deliveries")
def lead_deliveries():
    """Each lead pushed to the institution's webhook: its attempts and outcome."""
    found, next_cursor = push.deliveries(services().r, *page())
    return jsonify(deliveries=found, next_cursor=str(next_cursor) if next_cursor else None)


@bp.get("/subscribers/<msisdn>/consents")
def consent_log(msisdn):
    """The consent log (the proof), with the NIK and raw inputs masked."""
    msisdn = normalize(msisdn)
    entries = consents.log(services().r, msisdn)
    for e in entries:
        for secret in ("nik_enc", "raw_input_enc"):
            if secret in e:
                e[secret] = "(encrypted)"
    return jsonify(msisdn=msisdn, entries=entries)
