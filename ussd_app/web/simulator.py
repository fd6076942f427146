"""``/simulator``: a phone in the browser (never served in production).

The page talks only to the small JSON relay below, which calls this app's own
gateway routes (``/ussd``, ``/sms/inbound``) and reads the outbox, adding the
gateway and admin tokens on the server: the browser never holds them.
``/simulator/graph`` draws the menu graph.
"""
from __future__ import annotations

import json
import math
import time
import uuid

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from ussd_app import demo
from ussd_app.core import formats, gsm7, keys, subscribers
from ussd_app.core.errors import BadRequest
from ussd_app.core.msisdn import normalize
from ussd_app.gateways import DIALECTS
from ussd_app.loyalty import points, redemptions, rewards
from ussd_app.offers import campaigns, consents
from ussd_app.scenarios import record, wire
from ussd_app.scenarios.play import screen_warnings, split_dial
from ussd_app.scenarios.given import Given, GivenError
from ussd_app.scenarios.schema import Scenario, ScenarioError
from ussd_app.web import menu_graph, services

bp = Blueprint("simulator", __name__, url_prefix="/simulator", template_folder="templates",
               static_folder="static/simulator", static_url_path="/static")

MAX_TEXT = 200
SCREEN_SECONDS = 20  # what a gateway typically waits for one answer (the phone shows it counting down)


def dialects() -> tuple[str, ...]:
    """The dialects the page offers: every gateway of the registry."""
    return tuple(DIALECTS)


class Relay:
    """This app's own routes, called in-process with the server's tokens, in
    the form each gateway sends (scenarios.wire: the dialect's own encoder)."""

    def __init__(self):
        cfg = services().config
        self.http = current_app.test_client()
        self.gateway = {"X-Gateway-Token": cfg.GATEWAY_TOKEN} if cfg.GATEWAY_TOKEN else {}
        self.admin = {"Authorization": f"Bearer {cfg.ADMIN_TOKEN}"} if cfg.ADMIN_TOKEN else {}

    def post(self, request):
        path, content_type, body = request
        if content_type == "application/x-www-form-urlencoded":
            return self.http.post(path, headers=self.gateway, data=body)
        return self.http.post(path, headers=self.gateway, content_type=content_type,
                              data=body if isinstance(body, str) else json.dumps(body))

    def sms(self, sender: str, text: str):
        return self.http.post("/sms/inbound", headers=self.gateway, data={
            "from": sender, "to": services().config.SMS_SHORT_CODE, "text": text,
            "id": uuid.uuid4().hex, "date": time.strftime("%Y-%m-%d %H:%M:%S")})

    def outbox(self, msisdn: str):
        return self.http.get("/api/v1/outbox", query_string={"to": msisdn}, headers=self.admin)


@bp.errorhandler(BadRequest)
def bad_request(e):
    return jsonify(error=str(e)), 400


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _text(data: dict, name: str, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT or (required and not value.strip()):
        raise BadRequest(f"{name} must be a text of at most {MAX_TEXT} characters")
    return value.strip()


def _dialect(data: dict) -> str:
    d = data.get("dialect") or "africastalking"
    if d not in dialects():
        raise BadRequest(f"dialect must be one of {', '.join(dialects())}")
    return d


# -- pages ---------------------------------------------------------------------------
@bp.get("")
def phone():
    cfg = services().config
    return render_template("simulator/phone.html", code=cfg.USSD_SERVICE_CODE,
                           limit=cfg.USSD_MAX_CHARS, short_code=cfg.SMS_SHORT_CODE,
                           dialects=dialects(), msisdn="081234567890",
                           session_seconds=cfg.USSD_SESSION_TTL, screen_seconds=SCREEN_SECONDS)


@bp.get("/graph")
def graph():
    engine = services().engine
    return render_template("simulator/graph.html", svg=menu_graph.svg(engine),
                           screens=len(engine.screens), edges=len(menu_graph.edges(engine)))


@bp.get("/graph.svg")
def graph_svg():
    return Response(menu_graph.svg(services().engine), mimetype="image/svg+xml")


# -- the relay -----------------------------------------------------------------------
def _hop(dialect: str, session: str, msisdn: str, text: str, code: str, first: bool) -> dict:
    request = wire.hop(dialect, session, msisdn, code, text, first)
    started = time.perf_counter()
    resp = Relay().post(request)
    ms = (time.perf_counter() - started) * 1000
    body = resp.get_data(as_text=True)
    screen, ended = wire.shown(dialect, resp.status_code, resp.content_type, body)
    phone = wire.phone_text(screen, ended)
    if ended and resp.status_code == 200:  # Africa's Talking's word that it is over (Success)
        notice = wire.end(dialect, session, msisdn, code, text, "completed")
        if notice is not None:
            Relay().post(notice)
    limit = services().config.USSD_MAX_CHARS
    return {"status": resp.status_code, "body": body, "screen": screen, "phone": phone,
            "session": session, "end": ended, "code": code, "text": text, "dialect": dialect,
            "sent": request[2] if isinstance(request[2], str) else json.dumps(request[2]),
            "length": gsm7.length(screen) if gsm7.fits(screen) else None, "limit": limit,
            "warnings": screen_warnings(phone, limit) if resp.status_code == 200 else [],
            "ms": round(ms, 1)}


@bp.post("/api/dial")
def api_dial():
    data = _body()
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    dialled = _text(data, "dialled", required=False) or services().config.USSD_SERVICE_CODE
    code, text = split_dial(dialled, services().config.USSD_SERVICE_CODE)
    return jsonify(_hop(_dialect(data), uuid.uuid4().hex, msisdn, text, code, True))


@bp.post("/api/ussd")
def api_ussd():
    data = _body()
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    return jsonify(_hop(_dialect(data), _text(data, "session"), msisdn,
                        _text(data, "text", required=False), _text(data, "code"), False))


@bp.post("/api/end")
def api_end():
    """The gateway's own signal for a hang-up or a time-out (none for a
    gateway that sends none: the session then simply gets no further hop)."""
    data = _body()
    reason = data.get("reason")
    if reason not in ("hangup", "timeout"):
        raise BadRequest("reason must be hangup or timeout")
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    request = wire.end(_dialect(data), _text(data, "session"), msisdn, _text(data, "code"),
                       _text(data, "text", required=False), reason)
    if request is None:
        return jsonify(ended=True, notified=None, sent=None)
    resp = Relay().post(request)
    return jsonify(ended=True, notified=wire.told(resp.status_code), path=request[0],
                   sent=request[2] if isinstance(request[2], str) else json.dumps(request[2]))


@bp.post("/api/sms")
def api_sms():
    data = _body()
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    resp = Relay().sms(msisdn, _text(data, "text"))
    if resp.status_code != 200:
        return jsonify(error=f"/sms/inbound answered {resp.status_code}"), 502
    return jsonify(sent=True)


def segments(text: str) -> int:
    """How many SMS ``text`` takes: GSM-7 160 septets alone, 153 a part when
    split; otherwise UCS-2, 70 characters alone, 67 a part."""
    size, single, part = ((gsm7.length(text), gsm7.SMS_SEPTETS, gsm7.PART_SEPTETS) if gsm7.fits(text)
                          else (len(text.encode("utf-16-le")) // 2, 70, 67))
    return 1 if size <= single else math.ceil(size / part)


@bp.get("/api/inbox")
def api_inbox():
    msisdn = normalize(request.args.get("msisdn"), "msisdn")
    resp = Relay().outbox(msisdn)
    if resp.status_code != 200:
        return jsonify(error=f"the outbox answered {resp.status_code}"), 502
    messages = [dict(m, segments=segments(m.get("text") or "")) for m in resp.get_json()["messages"]]
    return jsonify(msisdn=msisdn, messages=messages)


@bp.post("/api/snapshot")
def api_snapshot():
    """The caller's state as a recording starts: what its replay recreates.
    The recording starts from a clean state for the number: a dropped session
    it might have resumed is forgotten (the replay's fresh number has none)."""
    svc = services()
    msisdn = normalize(_text(_body(), "msisdn"), "msisdn")
    svc.r.delete(keys.resume(msisdn))
    profile = subscribers.get(svc.r, msisdn)
    now = svc.clock()
    view = points.view(svc.r, msisdn, now)
    held = consents.holdings(svc.r, msisdn, svc.kept)
    offers = [cid for cid, o in held.offers.items()
              if o.get("status") == "open" and cid in held.campaigns and held.campaigns[cid].open(now)]
    given = {cid: o["status"] for cid, o in held.offers.items()
             if o.get("status") in ("consented", "withdrawn") and cid in held.campaigns}
    notes = []  # what a replay cannot recreate (nothing today: stopped offers are given: opted_out)
    return jsonify(msisdn=msisdn, taken_at=formats.iso(now), enrolled=profile.enrolled,
                   status=profile.status, credit_score=profile.credit_score,
                   attributes=profile.attributes, language=profile.lang,
                   offers=sorted({*offers, *given}), consents=dict(sorted(given.items())), notes=notes,
                   opted_out=held.opted_out,
                   points=[{"points": b.points,
                            "expires_at": None if b.expires_at == math.inf else formats.iso(b.expires_at)}
                           for b in view.buckets])


class Local:
    """The integration API in-process with the admin token, as ``given:`` calls it."""

    def __init__(self):
        self.relay = Relay()

    def api(self, method: str, path: str, body=None):
        resp = self.relay.http.open(path, method=method, json=body, headers=self.relay.admin)
        data = resp.get_json(silent=True)
        return resp.status_code, data if isinstance(data, dict) else {}

    def outbox(self, msisdn: str) -> list[dict]:
        return (self.relay.outbox(msisdn).get_json(silent=True) or {}).get("messages", [])


def fresh_subscriber(now: float) -> dict:
    """What a fresh subscriber gets: the demo's first subscriber's profile and
    points (some expiring in 5 days), and every open offer it is eligible for."""
    svc = services()
    profile = {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}}
    offers = [c.id for c in campaigns.every(svc.r)
              if c.open(now) and campaigns.eligible(c, profile["credit_score"], profile["attributes"])
              and c.id == demo.campaign(now)["id"]]
    return {**profile, "points": [{"points": 2500, "expires_at": "+5d"}, {"points": 10000}],
            "offers": offers}


@bp.post("/api/fresh")
def api_fresh():
    """A new test number (unused, from the scenarios' range) with the data a
    journey needs, so nothing an earlier run left on a number leaks into a test."""
    svc = services()
    spec = fresh_subscriber(svc.clock())
    scenario = Scenario(path="fresh subscriber", name="fresh subscriber", steps=[],
                        given={"subscribers": {"fresh": spec}})
    try:
        names = Given(Local(), scenario, clock=svc.clock).create()
    except GivenError as e:
        return jsonify(error=str(e)), 502
    return jsonify(msisdn=names.values["fresh"], points=sum(p["points"] for p in spec["points"]),
                   offers=spec["offers"])


def _pooled_redeemed(snapshot: dict) -> dict[str, int]:
    """How many codes of each pooled voucher reward the caller redeemed since
    the recording began: its replay adds as many fresh codes to that pool."""
    svc = services()
    try:
        msisdn = normalize(str(snapshot.get("msisdn") or ""), "msisdn")
        since = formats.parse_iso(str(snapshot.get("taken_at") or ""))
    except (BadRequest, ValueError):
        return {}
    used: dict[str, int] = {}
    for rec in redemptions.history(svc.r, msisdn):
        reward = rewards.get(svc.r, rec["reward"]) if float(rec.get("at") or 0) >= since - 1 else None
        if reward is not None and reward.pooled:
            used[reward.code] = used.get(reward.code, 0) + int(rec.get("quantity") or 1)
    return used


@bp.post("/api/scenario")
def api_scenario():
    """The recorded session as a scenario file."""
    data = _body()
    snapshot, steps = data.get("snapshot"), data.get("steps")
    if not isinstance(snapshot, dict) or not isinstance(steps, list) or not all(
            isinstance(s, dict) for s in steps):
        raise BadRequest("snapshot must be an object and steps a list of objects")
    scenario = record.scenario(snapshot, steps, services().config.USSD_SERVICE_CODE,
                               dialect=_dialect(data), vouchers=_pooled_redeemed(snapshot))
    try:
        text = record.to_yaml(scenario, dialects())
    except ScenarioError as e:
        raise BadRequest("nothing to save yet: " + e.problems[0][1]) from None
    name = f"recorded-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    return jsonify(yaml=text, filename=name)
