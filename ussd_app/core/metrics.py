"""Prometheus metrics: every series the service exports, defined here once, so
that every room counts with one line (``metrics.sms("console", "sent")``)
without importing upwards.

Several processes count (the web server's workers and ``ussd-app worker``), so
the counts live in prometheus_client's multiprocess files: each process writes
its own file under ``PROMETHEUS_MULTIPROC_DIR`` and a scrape
(:func:`render`) adds them up. The processes of one deployment must see the
same directory and no other deployment's: by default
``<tmp>/ussd-app-metrics-<uid>-<id>``, the id derived from what a deployment's
processes share and another's do not (:func:`deployment_dir`: the working
directory, ``REDIS_URL`` and ``JOBS_REDIS_URL``). ``ussd-app serve`` (the
Procfile's web command) empties it of earlier runs' files before the server
forks its workers (:func:`start_deployment`). It is chosen here, before
prometheus_client is imported, because that library picks its storage at
import time.

``METRICS=0`` turns every call into nothing (``bench/`` measures what they cost).
"""
from __future__ import annotations

import bisect
import functools
import glob
import hashlib
import logging
import os
import tempfile
import threading
import time

from ussd_app.core import ticker

log = logging.getLogger(__name__)

ENABLED = os.environ.get("METRICS", "1") != "0"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"



def deployment_dir(environ=os.environ, cwd: str | None = None) -> str:
    """The default directory: one per deployment (its processes share the
    working directory and Redis; another deployment on the host has its own
    Redis or directory), never one per user as before (a fresh server showed
    the counts of every earlier run on the host)."""
    ident = "\0".join((cwd or os.getcwd(), environ.get("REDIS_URL") or "",
                       environ.get("JOBS_REDIS_URL") or ""))
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"ussd-app-metrics-{os.getuid()}-{digest}")


def start_deployment(directory: str | None = None) -> int:
    """Empty the directory of earlier runs: every file whose process is gone
    (a live process's file stays: it is still counting). Called by
    ``ussd-app serve`` before the web server forks its workers; the number of
    files removed."""
    directory = directory or os.environ.get(MULTIPROC_DIR)
    removed = 0
    for path in glob.glob(os.path.join(directory, "*_*.db")) if directory else ():
        try:
            pid = int(os.path.basename(path)[:-3].rsplit("_", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid() or not _alive(pid):  # ours: a dead process's (this one writes none)
            try:
                os.remove(path)
                removed += 1
            except FileNotFoundError:  # another starting process removed it
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


if ENABLED:
    os.environ.setdefault(MULTIPROC_DIR, deployment_dir())
    os.makedirs(os.environ[MULTIPROC_DIR], exist_ok=True)
    from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
    from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
    from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

    class CountedHistogram:
        """A histogram written as two counters (its sum, and its observations
        per bucket, not cumulative) and shown as a histogram at a scrape
        (:class:`_Histograms`): the flusher adds many observations at once
        through ``Counter.inc``, which prometheus_client's ``Histogram``
        offers no public way to do (its ``observe`` takes one value)."""

        def __init__(self, name: str, doc: str, labels: list[str], bounds: list[float]):
            self.name, self.doc, self.labels, self.bounds = name, doc, labels, bounds
            self.les = ["+Inf" if b == float("inf") else repr(float(b)) for b in bounds]
            self.sum = Counter(f"{name}_summed", f"{doc} (sum; shown in {name})", labels)
            self.buckets = Counter(f"{name}_observed", f"{doc} (per bucket; shown in {name})",
                                   [*labels, "le"])

        def family(self, sums, buckets):
            """The histogram from the two counters' families as a scrape reads them."""
            family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
            summed = {tuple(s.labels[n] for n in self.labels): s.value for s in sums.samples
                      if s.name.endswith("_total")}
            counts: dict = {}
            for sample in buckets.samples:
                if sample.name.endswith("_total"):
                    values = tuple(sample.labels[n] for n in self.labels)
                    counts.setdefault(values, {})[sample.labels["le"]] = sample.value
            for values in sorted(set(summed) | set(counts)):
                held, total, cumulative = counts.get(values, {}), 0.0, []
                for le in self.les:
                    total += held.get(le, 0.0)
                    cumulative.append((le, total))
                family.add_metric(list(values), cumulative, summed.get(values, 0.0))
            return family

    class _Histograms:
        """Every process's counts (prometheus_client's multiprocess collector),
        each :class:`CountedHistogram`'s two counters shown as the histogram."""

        def __init__(self, histograms: list):
            self.collector = multiprocess.MultiProcessCollector(None)
            self.histograms = histograms

        def collect(self):
            found, held = {}, {}
            for h in self.histograms:
                found[f"{h.name}_summed"] = found[f"{h.name}_observed"] = h
            for family in self.collector.collect():
                h = found.get(family.name)
                if h is None:
                    yield family
                else:
                    held[family.name] = family
            for h in self.histograms:
                empty = HistogramMetricFamily(h.name, h.doc, labels=h.labels)
                yield h.family(held.get(f"{h.name}_summed", empty), held.get(f"{h.name}_observed", empty))

    HOP_BOUNDS = [.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, float("inf")]
    REDIS_BOUNDS = [.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 2, float("inf")]
    HOPS = Counter("ussd_hops_total", "USSD hops answered, by dialect, screen shown and outcome "
                   "(con: awaits input, end: final screen, error: the hop failed)",
                   ["dialect", "screen", "outcome"])
    HOP_SECONDS = CountedHistogram("ussd_hop_seconds", "Time the app took to answer a hop",
                                   ["dialect"], HOP_BOUNDS)
    REDIS_SECONDS = CountedHistogram("ussd_redis_roundtrip_seconds",
                                     "Redis round trips of the hop path (store.roundtrip), in seconds",
                                     [], REDIS_BOUNDS)
    SMS = Counter("ussd_sms_total", "Outbound SMS by provider and result (sent, failed: at the "
                  "provider's API; delivered, undelivered: its delivery reports; retried)",
                  ["provider", "result"])
    SMPP_SUBMIT_BOUNDS = [.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, float("inf")]
    SMPP_SUBMIT_SECONDS = CountedHistogram("ussd_smpp_submit_seconds", "SMPP submit_sm to its "
                                           "submit_sm_resp, in seconds", [], SMPP_SUBMIT_BOUNDS)
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
                        # the histogram's two counters (CountedHistogram), once for many observations
                        histogram, labels = key
                        done = done or [0] * len(now)
                        if now[0] != done[0]:
                            _child(histogram.sum, labels).inc(now[0] - done[0])
                        for le, n, before in zip(histogram.les, now[1:], done[1:]):
                            if n != before:
                                _child(histogram.buckets, (*labels, le)).inc(n - before)
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


def smpp_submit(seconds: float) -> None:
    """One submit_sm answered after ``seconds``."""
    if ENABLED:
        _flusher.tally().observe((SMPP_SUBMIT_SECONDS, ()), SMPP_SUBMIT_BOUNDS, seconds)


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
    """Queue depth, read from Redis at each scrape (a gauge no process owns),
    added up over the queues (``ussd`` and ``ussd-partners``)."""

    def __init__(self, queues):
        self.queues = queues

    def collect(self):
        qs = self.queues
        for name, what, count in (
                ("ussd_jobs_queued", "Jobs waiting for a worker", lambda q: q.count),
                ("ussd_jobs_scheduled", "Jobs scheduled for later (retries, held offer SMS, "
                 "housekeeping)", lambda q: q.scheduled_job_registry.count),
                ("ussd_jobs_started", "Jobs running now", lambda q: q.started_job_registry.count),
                ("ussd_jobs_failed", "Jobs that ran out of retries (rq's failed registry)",
                 lambda q: q.failed_job_registry.count)):
            yield GaugeMetricFamily(name, what, value=sum(count(q) for q in qs))


class _Gauges:
    """Gauges read at each scrape: ``gauges()`` gives (name, help, value) each."""

    def __init__(self, gauges):
        self.gauges = gauges

    def collect(self):
        for name, what, value in self.gauges():
            yield GaugeMetricFamily(name, what, value=value)


_flusher = _Flusher()  # written at exit too, with every writer of the ticker


def render(queues, gauges=None) -> bytes:
    """Every process's counts added up, and the queues' depth (and ``gauges``,
    see :class:`_Gauges`): the scrape's body."""
    if not ENABLED:
        return b"# metrics are off (METRICS=0)\n"
    _flusher.flush()
    registry = CollectorRegistry()
    registry.register(_Histograms([HOP_SECONDS, REDIS_SECONDS, SMPP_SUBMIT_SECONDS]))
    registry.register(_Queue(queues))
    if gauges is not None:
        registry.register(_Gauges(gauges))
    return generate_latest(registry)
