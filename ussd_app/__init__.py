"""ussd-app: the USSD and SMS self-service front of a loyalty programme and
of partner financial offers."""
from __future__ import annotations

import logging
import os
from importlib import resources

from flask import Flask

from ussd_app.core import config as configuration, store, texts

log = logging.getLogger(__name__)


def menu_texts(lang: str) -> str:
    """``menus/texts/<lang>.yaml``: what core's texts show (core reads nothing above it)."""
    return resources.files("menus").joinpath("texts", f"{lang}.yaml").read_text("utf-8")


# At start-up: every entry point (the app, the commands, ussd-sim, the worker, the
# tests) imports this package before any module below it can ask for a text.
texts.register(menu_texts)


def create_app(config: dict | None = None) -> Flask:
    """Build the app: configuration from the environment, then ``config``."""
    from ussd_app.services import Services
    from ussd_app.web import (analytics, api, delivery, errors, gateway, metrics, ops, partners,
                              request_ids, simulator)

    cfg = configuration.load(config)
    if not cfg.REDIS_URL:
        # The embedded one-process demo: no worker runs, so jobs run at once, and
        # offers are not held for the sending window unless it is set explicitly.
        demo = {"JOBS_SYNC": True}
        if "OFFER_SEND_WINDOW" not in os.environ and "OFFER_SEND_WINDOW" not in (config or {}):
            demo["OFFER_SEND_WINDOW"] = "always"
        cfg = configuration.load({**(config or {}), **demo})
    if not cfg.ADMIN_TOKEN:
        log.warning("ADMIN_TOKEN is unset: the integration API is open (never in production)")
    app = Flask(__name__)
    app.config["USSD"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = api.MAX_BODY  # the largest body any route needs
    errors.install(app)  # one handler: JSON, or the gateway's own form, by path
    services = app.extensions["ussd"] = Services(cfg)
    if cfg.JOBS_REDIS_URL and cfg.JOBS_REDIS_URL != cfg.REDIS_URL:
        store.require_plain(services.jobs.connection)
    if cfg.production:  # refuse a Redis that would lose confirmed redemptions on a restart
        store.require_durable(services.r, cfg.ALLOW_VOLATILE_REDIS)
        if cfg.JOBS_REDIS_URL and cfg.JOBS_REDIS_URL != cfg.REDIS_URL:
            store.require_durable(services.jobs.connection, cfg.ALLOW_VOLATILE_REDIS, "JOBS_REDIS_URL")
    gateway.install(app)  # a hop is answered before Flask's own handling
    request_ids.install(app)
    app.register_blueprint(gateway.bp)
    app.register_blueprint(delivery.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(analytics.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(partners.bp)
    if not cfg.production:
        app.register_blueprint(simulator.bp)  # a phone in the browser, for QA and demos
    return app
