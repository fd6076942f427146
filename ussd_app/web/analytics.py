"""Analytics (integration API, same bearer token): where subscribers drop off."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ussd_app.core import formats
from ussd_app.core.errors import BadRequest
from ussd_app.gateways import DIALECTS
from ussd_app.ussd import funnel, hop
from ussd_app.web import auth, services

bp = Blueprint("analytics", __name__, url_prefix="/api/v1/analytics")
bp.before_request(auth.check)  # errors: the app's one handler answers in JSON


def window(args, now: float) -> tuple[float, float, str | None]:
    """``from``, ``to`` (ISO 8601; default: today, WIB) and ``dialect`` of a funnel query."""
    def when(name: str, default: float) -> float:
        value = args.get(name)
        if not value:
            return default
        try:
            return formats.parse_iso(value)
        except ValueError:
            raise BadRequest(f"{name} must be an ISO 8601 time") from None
    start = when("from", (now + funnel.WIB_OFFSET) // 86400 * 86400 - funnel.WIB_OFFSET)
    end = when("to", now)
    if end < start:
        raise BadRequest("to must not be before from")
    dialect = args.get("dialect") or None
    if dialect is not None and dialect not in DIALECTS:
        raise BadRequest(f"dialect must be one of {', '.join(DIALECTS)}")
    return start, end, dialect


def funnel_report(svc, start: float, end: float, dialect: str | None) -> dict:
    """Silently expired sessions swept first, then the table."""
    swept = svc.funnel.sweep(svc.clock(), hop.lifetime(svc.config))
    try:
        rows = funnel.report(svc.r, start, end, dialect)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    return {"from": formats.iso(start), "to": formats.iso(end), "dialect": dialect,
            "days": funnel.days(start, end), "swept": swept, "screens": [r.public() for r in rows]}


@bp.get("/funnel")
def get_funnel():
    svc = services()
    return jsonify(funnel_report(svc, *window(request.args, svc.clock())))
