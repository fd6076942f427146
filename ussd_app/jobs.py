"""Background jobs on rq: work that must not run inside a USSD hop.

The worker process (``ussd-app worker``) and the web process bind the same
services here; with ``JOBS_SYNC`` (the embedded demo) jobs run at once.
"""
from __future__ import annotations

import logging
import threading

import rq
from rq import Retry

log = logging.getLogger(__name__)
QUEUE = "ussd"
_services = None


def bind(services) -> None:
    """Make ``services`` the ones jobs in this process use."""
    global _services
    _services = services


def current():
    """The services jobs in this process use."""
    return _services


def queue(services) -> rq.Queue:
    return rq.Queue(QUEUE, connection=services.raw, is_async=not services.config.JOBS_SYNC)


def enqueue(services, func, *args, job_id: str | None = None) -> None:
    q = queue(services)
    # Queued jobs go out in one round trip (rq alone makes two); a job run at
    # once saves its own outcome, which a later pipeline would overwrite.
    pipe = services.raw.pipeline() if q.is_async else None
    q.enqueue_call(func, args=args, job_id=job_id, pipeline=pipe,
                   retry=Retry(max=5, interval=[5, 30, 120, 600, 1800]))
    if pipe is not None:
        pipe.execute()


def deliver_sms(messages: list[dict]) -> None:
    current().sms.provider.deliver_many(messages)


def housekeeping(services, every: float, stop: threading.Event | None = None) -> threading.Thread:
    """Every ``every`` seconds (until ``stop`` is set): flush due offer SMS,
    settle stuck redemptions."""
    from ussd_app.offers import sending as offers
    from ussd_app.loyalty import redemptions

    stop = stop or threading.Event()

    def loop():
        while not stop.is_set():
            try:
                offers.flush(services)
                redemptions.recover(services, older_than=300)
            except Exception:  # keep the loop alive; the next round retries
                log.exception("housekeeping round failed")
            stop.wait(every)

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread


def work(services, burst: bool = False) -> None:
    """Run a worker on this process's services until stopped (or idle, with ``burst``)."""
    bind(services)
    worker = rq.SimpleWorker([queue(services)], connection=services.raw)
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
