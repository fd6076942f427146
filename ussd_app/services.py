"""The composition root's per-app resources, handed to every layer: Redis,
config, the job queue, SMS, the vault, the menu engine, and the functions the
USSD machinery is given instead of importing a domain."""
from __future__ import annotations

import time
from functools import cache

from ussd_app.core import cluster, keys, pii, store
from ussd_app.core.config import Config
from ussd_app.core.queue import Jobs
from ussd_app.loyalty import points
from ussd_app.offers import consents, window
from ussd_app.sms import providers
from ussd_app.sms.outbound import Outbound
from ussd_app.ussd.engine import Engine
from ussd_app.ussd.funnel import Counts


class Ahead:
    """What the busiest screens read, read with the session (``ussd.types.Ahead``):
    the revision tokens of the catalog and the campaigns (reward lists, offer
    screens), and a subscriber's offers and opt-out (every offer screen), all
    in the account's round trip (:meth:`accounts`, :meth:`strings`). Two keys, a
    field and a hash a hop, where a round trip of their own would cost those
    screens more than all of them (docs/benchmark.md)."""

    @staticmethod
    def accounts() -> points.Accounts:
        return points.Accounts(fields=(consents.OPTOUT,), hashes=consents.HOLDINGS_HASHES)

    @staticmethod
    def strings(msisdn: str) -> tuple[str, ...]:
        return keys.REWARDS_REVISION, keys.CAMPAIGNS_REVISION

    @staticmethod
    def parse(account: points.Points, values: list) -> dict:
        (rewards, campaigns), (optout, offers) = values, account.also[:2]
        return {"rewards": rewards, "holdings": (offers, optout, campaigns)}


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
        # On a Redis Cluster the keys read ahead live on other nodes than the
        # session's (a round trip each): there, screens read them themselves.
        self.ahead = None if cluster.is_cluster(self.r) else Ahead()
        self.accounts = self.ahead.accounts() if self.ahead else points.Accounts()
        self.funnel = Counts(self.r)  # this process's funnel counts, written each second
        self.engine = engine()
