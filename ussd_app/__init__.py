"""ussd-app: the USSD and SMS self-service front of a loyalty programme and
of partner financial offers."""
from __future__ import annotations

import logging

from flask import Flask

from . import config as configuration

log = logging.getLogger(__name__)


def create_app(config: dict | None = None) -> Flask:
    """Build the app: configuration from the environment, then ``config``."""
    from .services import Services
    from .web import api, gateway, ops

    cfg = configuration.load(config)
    if not cfg.REDIS_URL and not cfg.JOBS_SYNC:
        cfg = configuration.load({**(config or {}), "JOBS_SYNC": True})
    if not cfg.ADMIN_TOKEN:
        log.warning("ADMIN_TOKEN is unset: the integration API is open (never in production)")
    app = Flask(__name__)
    app.config["USSD"] = cfg
    app.extensions["ussd"] = Services(cfg)
    app.register_blueprint(gateway.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    return app
