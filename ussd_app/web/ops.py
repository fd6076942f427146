"""Operations: liveness and readiness."""
from flask import Blueprint, jsonify

import redis

from ussd_app.core import store
from ussd_app.web import services

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Redis answers, and how it keeps data over a restart (``aof``, ``rdb``, ``none``);
    in production, ``simulated`` names the simulated providers ALLOW_SIMULATED_PROVIDERS let
    it start with (a staging run)."""
    try:
        kept = store.persistence(services().r)
    except redis.RedisError as e:
        return jsonify(status="unavailable", redis="unavailable", error=f"redis: {type(e).__name__}"), 503
    config = services().config
    simulated = config.simulated if config.production else []
    said = dict(status="ok", redis="ok", persistence=kept, **({"simulated": simulated} if simulated else {}))
    if config.SMS_PROVIDER != "smpp":
        return jsonify(said)
    # SMS handed over while the bind is down wait in Redis: ready, and the bind said
    from ussd_app.sms import smpp

    try:
        up = smpp.bound(services().r)
    except redis.RedisError as e:
        return jsonify(status="unavailable", redis="unavailable", error=f"redis: {type(e).__name__}"), 503
    return jsonify(**said, smpp="bound" if up else "unbound")
