"""The composition root's per-app resources, handed to every layer: Redis,
config, the job queue, SMS, the vault, the menu engine, and the functions the
USSD machinery is given instead of importing a domain."""
from __future__ import annotations

import time
from functools import cache

from ussd_app.core import pii, store
from ussd_app.core.config import Config
from ussd_app.core.queue import Jobs
from ussd_app.loyalty import points
from ussd_app.offers import window
from ussd_app.sms import providers
from ussd_app.sms.outbound import Outbound
from ussd_app.ussd.engine import Engine
from ussd_app.ussd.funnel import Counts


@cache
def engine() -> Engine:
    """The menu engine, built once per process from ``menus``."""
    import menus

    return Engine(menus.screens(), menus.MAIN)


class Services:
    def __init__(self, config: Config, clock=time.time):
        self.config = config
        self.clock = clock
        self.window = window.parse_window(config.OFFER_SEND_WINDOW, config.OFFER_HOLIDAYS)
        wait = {"wait_replicas": config.REDIS_WAIT_REPLICAS,
                "wait_timeout_ms": config.REDIS_WAIT_TIMEOUT_MS}
        self.r = store.connect(config.REDIS_URL, **wait)
        self.raw = store.connect(config.REDIS_URL, decode=False)
        jobs = self.raw if not config.JOBS_REDIS_URL else store.connect(config.JOBS_REDIS_URL, decode=False)
        self.jobs = Jobs(self, jobs, sync=config.JOBS_SYNC)
        self.vault = pii.Vault(config.PII_KEY)
        self.sms = Outbound(self, providers.build(config, self.r, self.vault))
        self.kept = store.Kept()  # this process's copies of the catalog and campaigns
        self.accounts = points.Accounts()
        self.funnel = Counts(self.r)  # this process's funnel counts, written each second
        self.engine = engine()
