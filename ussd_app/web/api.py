"""The integration API (JSON, bearer token): subscribers, points, outbox."""
from __future__ import annotations

import json
import math
from typing import Annotated, Literal

from flask import Blueprint, jsonify, request

from ussd_app.offers import campaigns, consents, push, sending as offers
from ussd_app.core import archive, bodies, digits, formats, keys, subscribers
from ussd_app.core.bodies import Meta
from ussd_app.loyalty import points, redemptions, rewards
from ussd_app.core.errors import BadRequest, Conflict, NotFound
from ussd_app.core.msisdn import normalize
from ussd_app.sms import providers, reports
from ussd_app.web import auth, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_BODY = 1024 * 1024  # a voucher pool of ~20,000 codes, or ~50,000 listed MSISDNs
MAX_DEPTH = 16  # the deepest body the API takes (a campaign's eligibility) needs 5

bp.before_request(auth.check)  # errors: the app's one handler answers in JSON


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError("a number out of range")
    return value


def _depth(value) -> int:
    """How deeply ``value`` nests lists and objects (without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        todo.extend((x, level + 1) for x in item)
    return deepest


def body(optional: bool = False) -> dict:
    """The request's JSON object (``{}`` for an empty body when ``optional``).

    Bodies larger (``MAX_CONTENT_LENGTH``) or deeper than the API needs are
    refused with 400 before they reach a view; NaN, Infinity and 1e999 are no numbers.
    """
    raw = request.get_data(cache=True)
    if optional and not raw.strip():
        return {}
    if not request.is_json:
        raise BadRequest("body must be a JSON object (Content-Type: application/json)")
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise BadRequest(f"body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # also bad UTF-8 and numbers of over 4,300 digits
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise BadRequest(f"body is nested deeper than {MAX_DEPTH} levels")
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


class Earning(bodies.Body):
    """A POST body of points earned."""
    points: Annotated[int, Meta(ge=1, le=10_000_000, description="a whole number from 1 to 10000000")]
    source: Annotated[str, bodies.text(64)]
    reference: Annotated[str, bodies.text(128)]
    expires_at: Annotated[str, Meta(max_length=64, description="an ISO 8601 time, e.g. "
                                                             "2026-12-31T23:59:00+07:00")] | None = None


def parse_earning(data: dict, now: float, config) -> tuple[int, str, str, float]:
    got = bodies.decode(data, Earning)
    if got.expires_at is None:
        expires = points.default_expiry(now, config.POINTS_EXPIRY_POLICY, config.POINTS_EXPIRY_DAYS)
    else:
        try:
            expires = formats.parse_iso(got.expires_at)
        except (ValueError, OverflowError):
            raise BadRequest("expires_at must be an ISO 8601 time, e.g. 2026-12-31T23:59:00+07:00") from None
        if expires <= now:
            raise BadRequest("expires_at is in the past")
        if not formats.near(expires, now):
            raise BadRequest(f"expires_at must be within {formats.NEAR_YEARS} years of now")
    return got.points, got.source, got.reference, expires


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
    return jsonify(msisdn=msisdn, entries=entries, **archive.summary(services().r, msisdn, "ledger"))


@bp.get("/outbox")
def outbox():
    r, to = services().r, normalize(request.args.get("to"), "to")
    kept, remote = reports.outbox(r, to, providers.outbox(r, to))
    return jsonify(messages=kept, remote=remote)


# -- rewards ----------------------------------------------------------------------
@bp.put("/rewards/<code>")
def put_reward(code):
    reward = rewards.put(services().r, rewards.validate(code, body(), services().clock()))
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


class Vouchers(bodies.Body):
    codes: rewards.VoucherCodes


@bp.post("/rewards/<code>/vouchers")
def add_vouchers(code):
    """Add codes to a voucher reward's pool (encrypted at rest, each once ever)."""
    svc = services()
    reward = rewards.get(svc.r, code)
    if reward is None:
        raise NotFound("no such reward")
    if reward.fulfilment != "voucher":
        raise BadRequest("vouchers can be added only to a reward with fulfilment voucher")
    codes = bodies.decode(body(), Vouchers).codes
    added = rewards.add_vouchers(svc.r, svc.vault, reward.code, codes)
    return jsonify(added), 201 if added["added"] else 200


@bp.get("/subscribers/<msisdn>/redemptions")
def list_redemptions(msisdn):
    msisdn = normalize(msisdn)
    items = redemptions.history(services().r, msisdn)
    for rec in items:
        _times(rec)
    return jsonify(msisdn=msisdn, redemptions=items)


def _times(rec: dict) -> dict:
    for k in ("at", "settled_at", "review_at"):
        if rec.get(k) is not None:
            rec[k] = formats.iso(rec[k])
    return rec


@bp.get("/redemptions")
def redemptions_by_status():
    """Redemptions in one status, across subscribers (needs_review: for a person)."""
    status = request.args.get("status")
    if status not in keys.REDEMPTION_STATUSES:
        raise BadRequest("status must be one of " + ", ".join(keys.REDEMPTION_STATUSES))
    cursor, limit = cursor_and_limit()
    items, next_cursor = redemptions.listing(services().r, status, cursor, limit)
    return jsonify(redemptions=[_times(rec) for rec in items],
                   next_cursor=str(next_cursor) if next_cursor else None)


class Settlement(bodies.Body):
    outcome: Literal["done", "refund"]
    reference: Annotated[str, bodies.text(64)] | None = None


@bp.post("/redemptions/<rid>/settle")
def settle_redemption(rid):
    """A person settles a needs_review redemption: {"outcome": "done"|"refund", "reference"?}."""
    got = bodies.decode(body(), Settlement)
    outcome, reference = got.outcome, got.reference
    rec = redemptions.settle_review(services(), rid, outcome, reference)
    if rec is None:
        raise NotFound("no redemption awaiting review with that id")
    rec = _times(redemptions.public(rec))
    return jsonify(rec)


# -- campaigns, offers, leads ------------------------------------------------------
@bp.post("/campaigns")
def post_campaign():
    svc = services()
    campaign = campaigns.validate(body(), svc.config.OFFER_SENDER_IDS.split(","), svc.clock(), svc.vault,
                                  https_only=svc.config.production, default_support=svc.config.SUPPORT_CONTACT)
    if campaigns.exists(svc.r, campaign.id):
        raise Conflict(f"campaign {campaign.id} exists already")
    campaigns.put(svc.r, campaign, svc.clock())
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


class Audience(bodies.Body):
    """Whom to offer a campaign: the MSISDNs listed, else every eligible subscriber."""
    msisdns: Annotated[list[str], Meta(description="a list of phone numbers")] | None = None


@bp.post("/campaigns/<campaign_id>/offers")
def send_offers(campaign_id):
    svc = services()
    campaign = campaigns.get(svc.r, campaign_id)
    if campaign is None:
        raise NotFound("no such campaign")
    msisdns = bodies.decode(body(optional=True), Audience).msisdns
    if msisdns is not None:
        msisdns = list(dict.fromkeys(normalize(m, "msisdns") for m in msisdns))
    return jsonify(offers.send(svc, campaign, msisdns))


def page() -> tuple[str, int, int]:
    """``institution``, ``cursor`` and ``limit`` of a leads query."""
    institution = request.args.get("institution")
    if not institution:
        raise BadRequest("missing institution")
    return (institution, *cursor_and_limit())


def cursor_and_limit() -> tuple[int, int]:
    """A page's ``cursor`` and ``limit``: ASCII digits only (int() reads '３'
    and '٣'), and bounded (Redis takes a 64-bit index; a longer one answered 500)."""
    cursor = digits.number(request.args.get("cursor") or "0", 0, 2**53)
    limit = digits.number(request.args.get("limit") or "100", 1, 1000)
    if cursor is None:
        raise BadRequest("cursor must be a whole number (the next_cursor of the previous page)")
    if limit is None:
        raise BadRequest("limit must be a whole number from 1 to 1000")
    return cursor, limit


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
        if e.get("input") not in (None, "menu", "ussd-menu"):
            e["input"] = "(withheld)"  # an opt-out logged in clear before inputs were encrypted
    return jsonify(msisdn=msisdn, entries=entries,
                   **archive.summary(services().r, msisdn, "consent_log"))
