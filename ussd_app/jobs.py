"""The job registry: the worker process and its periodic housekeeping.

It may import every domain; no domain imports it back (each enqueues its own
work on ``services.jobs``, by the job function's dotted path).

Everything timed runs on rq's scheduler, which the worker starts: retries,
held offer SMS (``offers.sending.hold``), and housekeeping, a job that does
what rq cannot know about (redemptions a crash left pending, lead deliveries a
killed worker left) and then schedules its next round.
"""
from __future__ import annotations

import logging
import time

import rq

from ussd_app import retention
from ussd_app.core.errors import Conflict
from ussd_app.loyalty import redemptions
from ussd_app.offers import push, sending
from ussd_app.ussd import funnel, hop

log = logging.getLogger(__name__)

HOUSEKEEPING_JOB = "ussd_app.jobs.housekeeping"
EVERY = 30  # seconds between housekeeping rounds


def housekeeping(services, every: int = EVERY) -> dict:
    """The job: settle redemptions a crash left pending, queue again lead
    deliveries a killed worker left, count silently expired USSD sessions as
    timeouts, once a day (with ARCHIVE_DIR) archive what is older than the
    retention, then schedule the next round."""
    try:
        funnel.sweep(services.r, services.clock(), hop.lifetime(services.config))
        if services.config.ARCHIVE_DIR and retention.due(services):
            try:
                log.info("archive run: %s", retention.run(services))
            except Conflict:
                pass  # another process is archiving
        return {**redemptions.recover(services, older_than=300), "lead_pushes": push.recover(services)}
    finally:
        schedule_housekeeping(services, every)


def schedule_housekeeping(services, every: int = EVERY) -> bool:
    """Schedule the round of the next ``every``-second slot (real time): its
    job id names the slot, so however many workers start, or a round that also
    asks, each slot runs once. False when that slot was scheduled already."""
    slot = int(time.time() // every) + 1
    return services.jobs.enqueue_at(slot * every, HOUSEKEEPING_JOB, every,
                                    job_id=f"housekeeping-{every}-{slot}", retry=None)


def start(services, every: int = EVERY) -> None:
    """What a worker does before it works: adopt offer SMS an earlier version
    held in its own sorted set, queue again lead deliveries a killed worker
    left (rq's scheduler may wait for the dead one's lock to lapse), and make
    sure housekeeping is scheduled."""
    adopted = sending.adopt_legacy(services)
    if adopted:
        log.warning("held %d offer SMS of the old scheduler as jobs", adopted)
    push.recover(services)
    schedule_housekeeping(services, every)


def work(services, burst: bool = False) -> None:
    """Run a worker on this process's services until stopped (or idle, with ``burst``)."""
    worker = rq.SimpleWorker([services.jobs.queue], connection=services.jobs.connection,
                             job_class=services.jobs.job_class)
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
