"""The per-app resources every layer is handed: Redis, config, SMS, engine."""
from __future__ import annotations

import time
from functools import cache

from ussd_app import jobs
from ussd_app.core import pii, store
from ussd_app.core.config import Config
from ussd_app.ussd.engine import Engine
from ussd_app.sms import providers
from ussd_app.sms.outbound import Outbound


@cache
def engine() -> Engine:
    """The menu engine, built once per process from ``menus``."""
    import menus

    return Engine(menus.screens(), menus.MAIN)


class Services:
    def __init__(self, config: Config, clock=time.time):
        self.config = config
        self.clock = clock
        self.r = store.connect(config.REDIS_URL)
        self.raw = store.connect(config.REDIS_URL, decode=False)
        self.sms = Outbound(self, providers.build(config, self.r))
        self.vault = pii.Vault(config.PII_KEY)
        self.engine = engine()
        jobs.bind(self)
