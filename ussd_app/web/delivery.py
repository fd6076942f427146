"""``POST /sms/delivery``: the SMS provider's delivery reports (Africa's
Talking form: ``id``, ``status``, ``phoneNumber``, ``failureReason``), with
the gateways' token. Each updates the outbound message's record (see
``sms.reports``); a report for a message we do not know is answered 200 and
logged, so the provider does not post it again."""
from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, request

from ussd_app.core.errors import BadRequest
from ussd_app.core.msisdn import mask, normalize
from ussd_app.sms import reports
from ussd_app.web import gateway, services

bp = Blueprint("delivery", __name__)
bp.before_request(gateway.check_token)  # errors: plain text, as every /sms route (web.gateway)
log = logging.getLogger("ussd_app.sms")


@bp.post("/sms/delivery")
def delivery_report():
    form = gateway.form(request.environ)
    provider_id, raw = (form.get("id") or "").strip(), (form.get("status") or "").strip()
    if not provider_id or len(provider_id) > 100:
        raise BadRequest("id must be the provider's message id")
    status = reports.STATUSES.get(raw.lower())
    if status is None:
        raise BadRequest("status must be one of " + ", ".join(
            ["Sent", "Submitted", "Buffered", "Success", "Failed", "Rejected", "Expired", "AbsentSubscriber"]))
    msisdn = normalize(form.get("phoneNumber"), "phoneNumber")
    reason = (form.get("failureReason") or (raw if status == "failed" else "")).strip()
    outcome = reports.report(services(), provider_id, msisdn, status, reason)
    log.info(json.dumps({"event": "sms_delivery_report", "id": provider_id[:100], "to": mask(msisdn),
                         "status": status, "outcome": outcome}))
    return Response("OK", 200, mimetype="text/plain")
