"""Prometheus metrics: every series the service exports, defined here once, so
that every room counts with one line (``metrics.sms("console", "sent")``)
without importing upwards.

Several processes count (the web server's workers and ``ussd-app worker``), so
the counts live in prometheus_client's multiprocess files: each process writes
its own file under ``PROMETHEUS_MULTIPROC_DIR`` and a scrape
(:func:`render`) adds them up. Every process of one host must see the same
directory (default ``<tmp>/ussd-app-metrics-<uid>``); empty it before the
processes start (a deploy's release step). It is chosen here, before
prometheus_client is imported, because that library picks its storage at
import time.

``METRICS=0`` turns every call into nothing (``bench/`` measures what they cost).
"""
from __future__ import annotations

import atexit
import bisect
import functools
import logging
import os
import tempfile
import threading
import time

from ussd_app.core import ticker

log = logging.getLogger(__name__)

ENABLED = os.environ.get("METRICS", "1") != "0"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

if ENABLED:
    os.environ.setdefault(MULTIPROC_DIR, os.path.join(tempfile.gettempdir(),
                                                      f"ussd-app-metrics-{os.getuid()}"))
    os.makedirs(os.environ[MULTIPROC_DIR], exist_ok=True)
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
    from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
    from prometheus_client.core import GaugeMetricFamily

    HOP_BOUNDS = [.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, float("inf")]
    REDIS_BOUNDS = [.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 2, float("inf")]
    HOPS = Counter("ussd_hops_total", "USSD hops answered, by dialect, screen shown and outcome "
                   "(con: awaits input, end: final screen, error: the hop failed)",
                   ["dialect", "screen", "outcome"])
    HOP_SECONDS = Histogram("ussd_hop_seconds", "Time the app took to answer a hop", ["dialect"],
                            buckets=HOP_BOUNDS)
    REDIS_SECONDS = Histogram("ussd_redis_roundtrip_seconds",
                              "Redis round trips of the hop path (store.roundtrip), in seconds",
                              buckets=REDIS_BOUNDS)
    SMS = Counter("ussd_sms_total", "Outbound SMS by provider and result (sent, failed: at the "
                  "provider's API; delivered, undelivered: its delivery reports; retried)",
                  ["provider", "result"])
    REDEMPTIONS = Counter("ussd_redemptions_total", "Redemptions settled, by outcome "
                          "(done, refunded, needs_review)", ["outcome"])
    CONSENTS = Counter("ussd_consent_events_total", "Consent log events (consent, decline, "
                       "optout, withdrawal, optin)", ["event"])
    LEAD_DELIVERIES = Counter("ussd_lead_deliveries_total", "Lead push attempts by outcome "
                              "(delivered, failed, withheld, gave_up)", ["outcome"])
    JOBS = Counter("ussd_jobs_total", "Background job runs by function and outcome (ok, failed)",
                   ["func", "outcome"])
else:
    CONTENT_TYPE = "text/plain; charset=utf-8"


class _Tally:
    """One thread's counts so far (only that thread writes them).

    Writing prometheus_client's multiprocess files costs a lock, a pid check
    and a struct write per increment, two per observation: a hop's counts
    and timings were 8% of its instructions (bench/hop_cost.py). So a call
    adds to its thread's plain dicts, and one flusher per process writes what
    changed every second (and at a scrape, and at exit): a scrape
    may miss another process's last second, a ``kill -9`` loses at most that.
    Each thread has its own tally, so no count is lost to a race and the hot
    path takes no lock.
    """
    __slots__ = ("thread", "counts", "observed")

    def __init__(self):
        self.thread = threading.current_thread()
        self.counts: dict = {}  # (counter, labels) -> count so far
        self.observed: dict = {}  # (histogram, labels) -> [sum, count per bucket...] so far

    def add(self, key: tuple, amount: float = 1) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0) + amount

    def observe(self, key: tuple, bounds: list, amount: float) -> None:
        held = self.observed.get(key)
        if held is None:
            held = self.observed[key] = [0.0] * (len(bounds) + 1)
        held[0] += amount
        held[1 + bisect.bisect_left(bounds, amount)] += 1


class _Flusher:
    """Writes every tally's changes of this process to its multiprocess file,
    each second from the process's ticker (:mod:`ussd_app.core.ticker`)."""

    def __init__(self):
        self.local = threading.local()
        self.reset()
        os.register_at_fork(after_in_child=self.reset)
        ticker.every_second(self.flush)  # the process's one ticker (the funnel's counts too)

    def reset(self) -> None:
        """A fresh start (in a forked child, what it inherited was its parent's
        to write, and its lock may have been held by a thread that is gone)."""
        self.lock = threading.Lock()
        self.tallies: list[_Tally] = []
        self.written: dict = {}  # (tally, key) -> what was written of it
        self.local.__dict__.clear()

    def tally(self) -> _Tally:
        """This thread's tally (its first: registered)."""
        tally = getattr(self.local, "tally", None)
        if tally is None:
            tally = self.local.tally = _Tally()
            with self.lock:
                self.tallies.append(tally)
        return tally

    def flush(self) -> None:
        with self.lock:
            for tally in list(self.tallies):
                for key, total in list(tally.counts.items()):
                    done = self.written.get((tally, key), 0)
                    if total != done:
                        _child(*key).inc(total - done)
                        self.written[tally, key] = total
                for key, now in list(tally.observed.items()):
                    now = list(now)
                    done = self.written.get((tally, key))
                    if done != now:
                        # what Histogram.observe() writes, once for many observations
                        child = _child(*key)
                        for value, n, before in zip([child._sum, *child._buckets], now,
                                                    done or [0] * len(now)):
                            if n != before:
                                value.inc(n - before)
                        self.written[tally, key] = now
                if not tally.thread.is_alive():  # written for the last time
                    self.tallies.remove(tally)
                    self.written = {k: v for k, v in self.written.items() if k[0] is not tally}


_children: dict = {}


def _child(metric, labels: tuple):
    """``metric.labels(*labels)``, kept (the flusher's lookups)."""
    child = _children.get((metric, labels))
    if child is None:
        child = _children[metric, labels] = metric.labels(*labels) if labels else metric
    return child


def hop(dialect: str, screen: str | None, end: bool, started: float) -> None:
    """One hop answered: ``started`` is its ``time.perf_counter()`` at arrival."""
    if ENABLED:
        tally = _flusher.tally()
        tally.add((HOPS, (dialect, screen or "-", "end" if end else "con")))
        tally.observe((HOP_SECONDS, (dialect,)), HOP_BOUNDS, time.perf_counter() - started)


def hop_failed(dialect: str) -> None:
    """A hop that raised (the phone got the polite error screen)."""
    if ENABLED:
        _flusher.tally().add((HOPS, (dialect, "-", "error")))


def timed_redis(func):
    """Wraps ``store.roundtrip``: each call observed in ``ussd_redis_roundtrip_seconds``."""
    if not ENABLED:
        return func
    clock, key = time.perf_counter, (REDIS_SECONDS, ())

    @functools.wraps(func)
    def timed(*args):
        start = clock()
        try:
            return func(*args)
        finally:
            _flusher.tally().observe(key, REDIS_BOUNDS, clock() - start)
    return timed


def sms(provider: str, result: str, n: int = 1) -> None:
    if ENABLED and n:
        _flusher.tally().add((SMS, (provider, result)), n)


def redemption(outcome: str) -> None:
    if ENABLED:
        _flusher.tally().add((REDEMPTIONS, (outcome,)))


def consent_event(event: str, n: int = 1) -> None:
    if ENABLED and n:
        _flusher.tally().add((CONSENTS, (event,)), n)


def lead_delivery(outcome: str) -> None:
    if ENABLED:
        _flusher.tally().add((LEAD_DELIVERIES, (outcome,)))


def job(func: str, outcome: str) -> None:
    if ENABLED:
        _flusher.tally().add((JOBS, (func.rsplit(".", 1)[-1], outcome)))


class _Queue:
    """Queue depth, read from Redis at each scrape (a gauge no process owns)."""

    def __init__(self, queue):
        self.queue = queue

    def collect(self):
        q = self.queue
        for name, what, count in (
                ("ussd_jobs_queued", "Jobs waiting for a worker", q.count),
                ("ussd_jobs_scheduled", "Jobs scheduled for later (retries, held offer SMS, "
                 "housekeeping)", q.scheduled_job_registry.count),
                ("ussd_jobs_started", "Jobs running now", q.started_job_registry.count),
                ("ussd_jobs_failed", "Jobs that ran out of retries (rq's failed registry)",
                 q.failed_job_registry.count)):
            yield GaugeMetricFamily(name, what, value=count)


_flusher = _Flusher()
atexit.register(_flusher.flush)


def render(queue) -> bytes:
    """Every process's counts added up, and the queue's depth: the scrape's body."""
    if not ENABLED:
        return b"# metrics are off (METRICS=0)\n"
    _flusher.flush()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_Queue(queue))
    return generate_latest(registry)
