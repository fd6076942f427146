"""Partner keys (admin token only): ``POST /api/v1/partners`` makes one (shown
once), ``GET`` lists who has one, ``DELETE /api/v1/partners/<institution>`` revokes it."""
from __future__ import annotations

from flask import Blueprint, jsonify

from ussd_app.core import formats
from ussd_app.core.errors import NotFound
from ussd_app.offers import partners
from ussd_app.web import api, auth, services

bp = Blueprint("partners", __name__, url_prefix="/api/v1/partners")
bp.before_request(auth.check)  # errors: the app's one handler answers in JSON


@bp.post("")
def add():
    svc = services()
    institution = partners.institution_id(api.body().get("institution"))
    return jsonify(institution=institution, key=partners.add(svc.r, institution, svc.clock())), 201


@bp.get("")
def every():
    found = partners.every(services().r)
    for p in found:
        p["created_at"] = formats.iso(p["created_at"])
    return jsonify(partners=found)


@bp.delete("/<institution>")
def revoke(institution):
    institution = partners.institution_id(institution)  # never echoes what is not an id
    if not partners.revoke(services().r, institution):
        raise NotFound(f"{institution} has no key")
    return jsonify(institution=institution, revoked=True)
