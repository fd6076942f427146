"""Routes the gateways call: ``POST /ussd`` and ``POST /sms/inbound``."""
from __future__ import annotations

import hmac
import json
import logging
import time

from flask import Blueprint, Response, request

from .. import texts, ussd
from ..errors import BadRequest, Unauthorized
from ..gateways import africastalking as dialect
from ..gateways.types import Reply
from ..msisdn import mask
from ..sms import keywords
from . import services

bp = Blueprint("gateway", __name__)
log = logging.getLogger("ussd_app.hops")


@bp.before_request
def check_token():
    token = services().config.GATEWAY_TOKEN
    if token:
        given = request.headers.get("X-Gateway-Token") or request.args.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("missing or wrong gateway token")
    if request.method == "POST" and request.mimetype not in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        raise BadRequest("body must be form-encoded (application/x-www-form-urlencoded)")


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
        return Response(dialect.render(Reply(texts.t(texts.DEFAULT, "error.unavailable"), end=True)),
                        200, content_type=dialect.CONTENT_TYPE)
    return Response("internal error", 500, mimetype="text/plain")


@bp.post("/ussd")
def ussd_hop():
    started = time.perf_counter()
    req = dialect.parse_ussd(request.form)
    reply, before, after = ussd.hop(services(), req)
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": "ussd_hop", "session": req.session_id,
                             "msisdn": mask(req.msisdn), "before": before, "after": after,
                             "end": reply.end,
                             "ms": round((time.perf_counter() - started) * 1000, 2)}))
    return Response(dialect.render(reply), 200, content_type=dialect.CONTENT_TYPE)


@bp.post("/sms/inbound")
def sms_inbound():
    sms = dialect.parse_sms(request.form)
    keywords.handle(services(), sms)
    log.info(json.dumps({"event": "sms_inbound", "id": sms.message_id, "from": mask(sms.sender)}))
    return Response("", 200, mimetype="text/plain")
