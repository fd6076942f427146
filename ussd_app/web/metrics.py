"""``GET /metrics``: the Prometheus scrape (bearer METRICS_TOKEN or ADMIN_TOKEN)."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request

from ussd_app.core import metrics
from ussd_app.core.errors import Unauthorized
from ussd_app.web import services

bp = Blueprint("metrics", __name__)


@bp.before_request
def check_token():
    config = services().config
    tokens = [t for t in (config.METRICS_TOKEN, config.ADMIN_TOKEN) if t]
    if not tokens:
        return  # open, like the API, outside production only (production needs ADMIN_TOKEN)
    given = request.headers.get("Authorization", "").encode()
    if not any(hmac.compare_digest(given, f"Bearer {t}".encode()) for t in tokens):
        raise Unauthorized("missing or wrong bearer token (METRICS_TOKEN or ADMIN_TOKEN)")


@bp.errorhandler(Unauthorized)
def unauthorized(e):
    return jsonify(error=str(e)), 401


@bp.get("/metrics")
def scrape():
    s = services()
    gauges = None
    if s.config.SMS_PROVIDER == "smpp":
        from ussd_app.sms import smpp

        gauges = smpp.gauges(s.r)
    return Response(metrics.render([s.jobs.queue, s.jobs.partners], gauges), 200,
                    content_type=metrics.CONTENT_TYPE)
