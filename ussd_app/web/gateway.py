"""Routes the gateways call: ``POST /ussd`` and ``POST /sms/inbound``."""
from __future__ import annotations

import hmac
import json
import logging
import time
from urllib.parse import unquote_plus

from flask import Blueprint, Response, request

from ussd_app.core import metrics, texts
from ussd_app.ussd import hop as ussd
from ussd_app.core.errors import BadRequest, Unauthorized
from ussd_app.gateways import africastalking as dialect
from ussd_app.ussd.types import Reply
from ussd_app.core.msisdn import mask
from ussd_app.sms import keywords
from ussd_app.web import services

bp = Blueprint("gateway", __name__)
log = logging.getLogger("ussd_app.hops")

URLENCODED = "application/x-www-form-urlencoded"
MAX_BODY = 8192  # a hop or an SMS notification is a few hundred bytes at most


@bp.before_request
def check_token():
    token = services().config.GATEWAY_TOKEN
    if token:
        given = request.headers.get("X-Gateway-Token") or request.args.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("missing or wrong gateway token")
    if request.method == "POST" and request.mimetype not in (URLENCODED, "multipart/form-data"):
        raise BadRequest("body must be form-encoded (application/x-www-form-urlencoded)")


def form() -> dict[str, str]:
    """The request's form fields (the first value of each).

    A gateway's urlencoded body is a few dozen bytes: it is read and decoded
    here directly, at a third of the instructions of werkzeug's general form
    parser (bench/hop_cost.py); anything else (multipart, no length) goes
    through ``request.form``.
    """
    env = request.environ
    length = env.get("CONTENT_LENGTH")
    if request.mimetype != URLENCODED or not length:
        return request.form.to_dict()
    if not length.isdigit() or int(length) > MAX_BODY:
        raise BadRequest(f"body must be at most {MAX_BODY} bytes with a valid Content-Length")
    fields = {}
    for pair in env["wsgi.input"].read(int(length)).decode("utf-8", "replace").split("&"):
        name, _, value = pair.partition("=")
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name:
            fields.setdefault(name, value)
    return fields


@bp.errorhandler(BadRequest)
def bad_request(e):
    return Response(str(e), 400, mimetype="text/plain")


@bp.errorhandler(Unauthorized)
def unauthorized(e):
    return Response(str(e), 401, mimetype="text/plain")


@bp.errorhandler(Exception)
def failure(e):
    """Never a stack trace on a phone: a failed hop ends politely (and is logged)."""
    log.exception("hop failed")
    if request.path == "/ussd":
        metrics.hop_failed("africastalking")
        return Response(dialect.render(Reply(texts.t(texts.DEFAULT, "error.unavailable"), end=True)),
                        200, content_type=dialect.CONTENT_TYPE)
    return Response("internal error", 500, mimetype="text/plain")


@bp.post("/ussd")
def ussd_hop():
    started = time.perf_counter()
    req = dialect.parse_ussd(form())
    reply, before, after = ussd.hop(services(), req)
    metrics.hop("africastalking", after, reply.end, started)
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": "ussd_hop", "session": req.session_id,
                             "msisdn": mask(req.msisdn), "before": before, "after": after,
                             "end": reply.end,
                             "ms": round((time.perf_counter() - started) * 1000, 2)}))
    return Response(dialect.render(reply), 200, content_type=dialect.CONTENT_TYPE)


@bp.post("/sms/inbound")
def sms_inbound():
    sms = dialect.parse_sms(form())
    keywords.handle(services(), sms)
    log.info(json.dumps({"event": "sms_inbound", "id": sms.message_id, "from": mask(sms.sender)}))
    return Response("", 200, mimetype="text/plain")
