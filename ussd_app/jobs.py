"""The job registry: the worker process and its periodic housekeeping.

It may import every domain; no domain imports it back (each enqueues its own
work on ``services.jobs``, by the job function's dotted path).
"""
from __future__ import annotations

import logging
import threading

import rq

from ussd_app import retention
from ussd_app.core.errors import Conflict
from ussd_app.loyalty import redemptions
from ussd_app.offers import sending

log = logging.getLogger(__name__)


def housekeeping(services, every: float, stop: threading.Event | None = None) -> threading.Thread:
    """Every ``every`` seconds (until ``stop`` is set): flush due offer SMS,
    settle stuck redemptions; once a day, with ARCHIVE_DIR, archive what is
    older than the retention."""
    stop = stop or threading.Event()

    def loop():
        while not stop.is_set():
            try:
                sending.flush(services)
                redemptions.recover(services, older_than=300)
                if services.config.ARCHIVE_DIR and retention.due(services):
                    log.info("archive run: %s", retention.run(services))
            except Conflict:
                pass  # another process is archiving
            except Exception:  # keep the loop alive; the next round retries
                log.exception("housekeeping round failed")
            stop.wait(every)

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread


def work(services, burst: bool = False) -> None:
    """Run a worker on this process's services until stopped (or idle, with ``burst``)."""
    worker = rq.SimpleWorker([services.jobs.queue], connection=services.jobs.connection,
                             job_class=services.jobs.job_class)
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
