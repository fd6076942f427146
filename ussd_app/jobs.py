"""The job registry: the worker process and its periodic housekeeping.

It may import every domain; no domain imports it back (each enqueues its own
work on ``services.jobs``, by the job function's dotted path).
"""
from __future__ import annotations

import logging
import signal
import threading
import time

import redis
import rq
from redis.backoff import ExponentialBackoff

from ussd_app.core import store
from ussd_app.loyalty import redemptions
from ussd_app.offers import sending

log = logging.getLogger(__name__)


def housekeeping(services, every: float, stop: threading.Event | None = None) -> threading.Thread:
    """Every ``every`` seconds (until ``stop`` is set): flush due offer SMS,
    settle stuck redemptions."""
    stop = stop or threading.Event()

    def loop():
        while not stop.is_set():
            try:
                sending.flush(services)
                redemptions.recover(services, older_than=300)
            except Exception:  # keep the loop alive; the next round retries
                log.exception("housekeeping round failed")
            stop.wait(every)

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread


# How long the worker's Redis commands wait for a lost server (a restart, a
# failover): a job in flight finishes its bookkeeping instead of failing half-way.
WORKER_PATIENCE = 60.0
RESTART = ExponentialBackoff(cap=30.0, base=0.5)  # 1 s doubling up to 30 s between rq workers


def be_patient(services) -> None:
    """Let this process's Redis commands wait :data:`WORKER_PATIENCE` for a lost server."""
    store.be_patient(services.r, WORKER_PATIENCE)
    store.be_patient(services.raw, WORKER_PATIENCE)


class Worker(rq.SimpleWorker):
    """rq's worker, knowing whether it was asked to stop (SIGTERM, SIGINT)."""
    stop_requested = False

    def request_stop(self, signum, frame):
        self.stop_requested = True
        super().request_stop(signum, frame)


def work(services, burst: bool = False, stop: threading.Event | None = None) -> None:
    """Run a worker on this process's services until stopped (or idle, with ``burst``).

    rq's work loop quits on any Redis error it meets outside a job (its
    heartbeat, its scheduler, recording its own death), so a Redis restart
    would end the process; here a new rq worker starts after a backoff, until
    a signal (or ``stop``) asks it to stop. Its commands wait out a short
    outage first (:data:`WORKER_PATIENCE`), so a job in flight finishes.
    """
    stop = stop or threading.Event()
    be_patient(services)
    failures = 0
    while not stop.is_set():
        worker = Worker([services.jobs.queue], connection=services.jobs.connection,
                        job_class=services.jobs.job_class, maintenance_interval=60)
        started = time.monotonic()
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
            why = "its work loop ended"
        except (redis.ConnectionError, redis.TimeoutError) as e:
            why = f"{type(e).__name__}: {e}"
        if burst or worker.stop_requested:
            return
        failures = 1 if time.monotonic() - started > 60 else failures + 1
        pause = RESTART.compute(failures)
        log.warning("rq worker stopped (%s); starting a new one in %.0f s", why, pause)
        _pause(stop, pause)


def _pause(stop: threading.Event, seconds: float) -> None:
    """Wait ``seconds``; SIGTERM or SIGINT meanwhile (rq's handlers went with
    its worker) sets ``stop``."""
    if threading.current_thread() is not threading.main_thread():
        stop.wait(seconds)
        return
    before = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop.wait(seconds)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
