"""Who may call the integration API (``/api/v1``).

The operator's ``ADMIN_TOKEN`` reaches everything. A partner institution's
key (``offers.partners``) reads only its own leads and lead deliveries:
another institution's, or any other endpoint, is 403. Without ``ADMIN_TOKEN``
(development only) the API is open, but a partner key is still held to its
own reads.
"""
from __future__ import annotations

import hmac

from flask import request

from ussd_app.core.errors import Forbidden, Unauthorized
from ussd_app.offers import partners
from ussd_app.web import services

PARTNER_READS = frozenset({"api.get_leads", "api.lead_deliveries"})
"""The endpoints a partner key may call (GET, with its own ``institution``)."""


def bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def check() -> None:
    """Let the request through, or raise Unauthorized (no known token) or
    Forbidden (a partner key beyond its own reads)."""
    svc = services()
    admin, token = svc.config.ADMIN_TOKEN, bearer()
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return
    institution = partners.institution_of(svc.r, token) if token else None
    if institution is None:
        if admin:
            raise Unauthorized("missing or wrong bearer token")
        return  # the open development API
    if request.method != "GET" or request.endpoint not in PARTNER_READS:
        raise Forbidden("a partner key reads only its own leads and lead deliveries")
    if request.args.get("institution") != institution:
        raise Forbidden(f"this key reads only institution={institution}")
