"""``/simulator``: a phone in the browser (never served in production).

The page talks only to the small JSON relay below, which calls this app's own
gateway routes (``/ussd``, ``/sms/inbound``) and reads the outbox, adding the
gateway and admin tokens on the server: the browser never holds them.
``/simulator/graph`` draws the menu graph.
"""
from __future__ import annotations

import math
import time
import uuid

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from ussd_app.core import formats, gsm7, subscribers
from ussd_app.core.errors import BadRequest
from ussd_app.core.msisdn import normalize
from ussd_app.loyalty import points
from ussd_app.offers import consents
from ussd_app.scenarios import record, wire
from ussd_app.scenarios.play import screen_warnings, split_dial
from ussd_app.scenarios.schema import ScenarioError
from ussd_app.web import menu_graph, services

bp = Blueprint("simulator", __name__, url_prefix="/simulator", template_folder="templates",
               static_folder="static/simulator", static_url_path="/static")

DIALECTS = ("africastalking",)
MAX_TEXT = 200


def dialects() -> tuple[str, ...]:
    """The dialects the page offers: the gateways' registry when there is one."""
    from ussd_app import gateways

    found = getattr(gateways, "DIALECTS", None) or getattr(gateways, "REGISTRY", None)
    return tuple(n for n in (found or DIALECTS) if n in RELAYED) or DIALECTS


class Relay:
    """This app's own routes, called in-process with the server's tokens."""

    def __init__(self):
        cfg = services().config
        self.http = current_app.test_client()
        self.gateway = {"X-Gateway-Token": cfg.GATEWAY_TOKEN} if cfg.GATEWAY_TOKEN else {}
        self.admin = {"Authorization": f"Bearer {cfg.ADMIN_TOKEN}"} if cfg.ADMIN_TOKEN else {}

    def ussd_africastalking(self, session_id: str, msisdn: str, text: str, code: str):
        return self.http.post("/ussd", headers=self.gateway, data={
            "sessionId": session_id, "serviceCode": code, "phoneNumber": msisdn, "text": text})

    def end_africastalking(self, session_id: str, msisdn: str, code: str, reason: str, **session):
        return self.http.post(wire.EVENTS_PATH, headers=self.gateway,
                              data=wire.africastalking_end(session_id, msisdn, code, reason, **session))

    def sms(self, sender: str, text: str):
        return self.http.post("/sms/inbound", headers=self.gateway, data={
            "from": sender, "to": services().config.SMS_SHORT_CODE, "text": text,
            "id": uuid.uuid4().hex, "date": time.strftime("%Y-%m-%d %H:%M:%S")})

    def outbox(self, msisdn: str):
        return self.http.get("/api/v1/outbox", query_string={"to": msisdn}, headers=self.admin)


RELAYED = {"africastalking"}


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
                           dialects=dialects(), msisdn="081234567890")


@bp.get("/graph")
def graph():
    engine = services().engine
    return render_template("simulator/graph.html", svg=menu_graph.svg(engine),
                           screens=len(engine.screens), edges=len(menu_graph.edges(engine)))


@bp.get("/graph.svg")
def graph_svg():
    return Response(menu_graph.svg(services().engine), mimetype="image/svg+xml")


# -- the relay -----------------------------------------------------------------------
def _hop(relay: Relay, dialect: str, session: str, msisdn: str, text: str, code: str) -> dict:
    started = time.perf_counter()
    resp = getattr(relay, f"ussd_{dialect}")(session, msisdn, text, code)
    ms = (time.perf_counter() - started) * 1000
    body = resp.get_data(as_text=True)
    limit = services().config.USSD_MAX_CHARS
    screen = body[4:] if body[:4] in ("CON ", "END ") else body
    return {"status": resp.status_code, "body": body, "screen": screen, "session": session,
            "end": resp.status_code != 200 or not body.startswith("CON "), "code": code, "text": text,
            "length": gsm7.length(screen) if gsm7.fits(screen) else None, "limit": limit,
            "warnings": screen_warnings(body, limit) if resp.status_code == 200 else [],
            "ms": round(ms, 1)}


@bp.post("/api/dial")
def api_dial():
    data = _body()
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    dialled = _text(data, "dialled", required=False) or services().config.USSD_SERVICE_CODE
    code, text = split_dial(dialled, services().config.USSD_SERVICE_CODE)
    return jsonify(_hop(Relay(), _dialect(data), uuid.uuid4().hex, msisdn, text, code))


@bp.post("/api/ussd")
def api_ussd():
    data = _body()
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    return jsonify(_hop(Relay(), _dialect(data), _text(data, "session"), msisdn,
                        _text(data, "text", required=False), _text(data, "code")))


@bp.post("/api/end")
def api_end():
    data = _body()
    reason = data.get("reason")
    if reason not in ("hangup", "timeout"):
        raise BadRequest("reason must be hangup or timeout")
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    hops = data.get("hops")
    resp = getattr(Relay(), f"end_{_dialect(data)}")(
        _text(data, "session"), msisdn, _text(data, "code"), reason,
        text=_text(data, "text", required=False), last_reply=str(data.get("last") or "")[:500],
        hops=hops if isinstance(hops, int) and not isinstance(hops, bool) else 0)
    return jsonify(ended=True, notified=wire.told(resp.status_code))


@bp.post("/api/sms")
def api_sms():
    data = _body()
    msisdn = normalize(_text(data, "msisdn"), "msisdn")
    resp = Relay().sms(msisdn, _text(data, "text"))
    if resp.status_code != 200:
        return jsonify(error=f"/sms/inbound answered {resp.status_code}"), 502
    return jsonify(sent=True)


@bp.get("/api/inbox")
def api_inbox():
    msisdn = normalize(request.args.get("msisdn"), "msisdn")
    resp = Relay().outbox(msisdn)
    if resp.status_code != 200:
        return jsonify(error=f"the outbox answered {resp.status_code}"), 502
    return jsonify(msisdn=msisdn, messages=resp.get_json()["messages"])


@bp.post("/api/snapshot")
def api_snapshot():
    """The caller's state as a recording starts: what its replay recreates."""
    svc = services()
    msisdn = normalize(_text(_body(), "msisdn"), "msisdn")
    profile = subscribers.get(svc.r, msisdn)
    now = svc.clock()
    view = points.view(svc.r, msisdn, now)
    held = consents.holdings(svc.r, msisdn, svc.kept)
    offers = [cid for cid, o in held.offers.items()
              if o.get("status") == "open" and cid in held.campaigns and held.campaigns[cid].open(now)]
    return jsonify(msisdn=msisdn, enrolled=profile.enrolled, status=profile.status,
                   credit_score=profile.credit_score, attributes=profile.attributes,
                   language=profile.lang, offers=sorted(offers),
                   points=[{"points": b.points,
                            "expires_at": None if b.expires_at == math.inf else formats.iso(b.expires_at)}
                           for b in view.buckets])


@bp.post("/api/scenario")
def api_scenario():
    """The recorded session as a scenario file."""
    data = _body()
    snapshot, steps = data.get("snapshot"), data.get("steps")
    if not isinstance(snapshot, dict) or not isinstance(steps, list) or not all(
            isinstance(s, dict) for s in steps):
        raise BadRequest("snapshot must be an object and steps a list of objects")
    scenario = record.scenario(snapshot, steps, services().config.USSD_SERVICE_CODE,
                               dialect=_dialect(data))
    try:
        text = record.to_yaml(scenario, dialects())
    except ScenarioError as e:
        raise BadRequest("nothing to save yet: " + e.problems[0][1]) from None
    name = f"recorded-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    return jsonify(yaml=text, filename=name)
