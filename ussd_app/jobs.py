"""The job registry: the worker process and its periodic housekeeping.

It may import every domain; no domain imports it back (each enqueues its own
work on ``services.jobs``, by the job function's dotted path).

Everything timed runs on rq's scheduler, which the worker starts: retries,
held offer SMS (``offers.sending.hold``), and housekeeping, a job that does
what rq cannot know about (redemptions a crash left pending, lead deliveries a
killed worker left) and then schedules its next round.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import redis
import rq
from redis.backoff import ExponentialBackoff

from ussd_app import retention
from ussd_app.core.errors import Conflict
from ussd_app.core import store
from ussd_app.core.queue import PARTNERS, QUEUE, TryLater
from ussd_app.loyalty import redemptions
from ussd_app.offers import push, sending
from ussd_app.ussd import hop

log = logging.getLogger(__name__)

HOUSEKEEPING_JOB = "ussd_app.jobs.housekeeping"
EVERY = 30  # seconds between housekeeping rounds


def housekeeping(services, every: int = EVERY) -> dict:
    """The job: settle redemptions a crash left pending, queue again lead
    deliveries a killed worker left, count silently expired USSD sessions as
    timeouts, once a day (with ARCHIVE_DIR) archive what is older than the
    retention, then schedule the next round."""
    try:
        services.funnel.sweep(services.clock(), hop.lifetime(services.config))
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
    asks, each slot runs once; it is queued ahead of the jobs waiting (a backlog
    does not hold back the recovery it may need). False when that slot was
    scheduled already."""
    slot = int(time.time() // every) + 1
    return services.jobs.enqueue_at(slot * every, HOUSEKEEPING_JOB, every,
                                    job_id=f"housekeeping-{every}-{slot}", retry=None, at_front=True)


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


# How long the worker's Redis commands wait for a lost server (a restart, a
# failover): a job in flight finishes its bookkeeping instead of failing half-way.
WORKER_PATIENCE = 60.0
RESTART = ExponentialBackoff(cap=30.0, base=0.5)  # 1 s doubling up to 30 s between rq workers


def be_patient(services) -> None:
    """Let this process's Redis commands wait :data:`WORKER_PATIENCE` for a lost server
    (the job queue's own Redis too, with a cluster: JOBS_REDIS_URL)."""
    store.be_patient(services.r, WORKER_PATIENCE)
    store.be_patient(services.raw, WORKER_PATIENCE)
    if services.jobs.connection is not services.raw:
        store.be_patient(services.jobs.connection, WORKER_PATIENCE)


class Worker(rq.SimpleWorker):
    """rq's worker, knowing whether it was asked to stop (SIGTERM, SIGINT),
    and making sure housekeeping is scheduled at each of rq's maintenance
    rounds (every minute, idle or busy): each round schedules the next, so
    a queue's Redis that lost its data (a restart without it, a failover, an
    operator emptying it) would otherwise have stopped housekeeping for good."""
    stop_requested = False
    every = EVERY

    def request_stop(self, signum, frame):
        self.stop_requested = True
        super().request_stop(signum, frame)

    @property
    def dequeue_timeout(self) -> int:
        return min(super().dequeue_timeout, self.maintenance_interval)  # idle: rq's 405 s

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        schedule_housekeeping(self.job_class.services, self.every)

    def handle_exception(self, job, *exc_info):
        """rq's handling of a job that raised, which logs it as ERROR with its
        traceback; an outcome the design expects (:class:`TryLater`) that rq
        will run again is one WARNING line instead. The last attempt's, or
        any other exception, is rq's as before."""
        error = exc_info[1]
        if isinstance(error, TryLater) and (job.retries_left or 0) > 0:
            log.warning(json.dumps({"event": "job_retried", "func": job.func_name.rsplit(".", 1)[-1],
                                    "job": job.id, "error": f"{type(error).__name__}: {error}"[:300],
                                    "retries_left": job.retries_left}))
            return
        super().handle_exception(job, *exc_info)


_FORKER = {"pid": 0, "watched": False}


def _forking() -> None:
    _FORKER["pid"] = os.getpid()  # copied into the child as it is forked


def _with_parent() -> None:
    """In a child this process forked (rq's scheduler, a ``ForkProcess``):
    end when the parent does. The kernel sends SIGTERM when it dies
    (``PR_SET_PDEATHSIG`` through pyprctl); rq's scheduler takes SIGTERM as
    its stop, releasing its lock. Without pyprctl (not Linux), a thread
    watches the parent instead. A parent gone before this ran: SIGTERM now."""
    parent = _FORKER["pid"]
    try:
        import pyprctl

        pyprctl.set_pdeathsig(signal.SIGTERM)
    except (ImportError, OSError):
        def watch():
            while os.getppid() == parent:
                time.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)
        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def children_go_with_me() -> None:
    """Have every child this process forks from now on end when it ends
    (rq's scheduler outlived a ``kill -9`` of its worker, holding the
    scheduler lock: issue 19.9). Once per process."""
    if not _FORKER["watched"]:
        _FORKER["watched"] = True
        os.register_at_fork(before=_forking, after_in_child=_with_parent)


def work(services, burst: bool = False, stop: threading.Event | None = None, every: int = EVERY,
         queues: tuple[str, ...] = (QUEUE, PARTNERS)) -> None:
    """Run a worker on this process's services until stopped (or idle, with
    ``burst``), taking jobs from ``queues`` in their order (default: both, the
    subscribers' first; the Procfile runs one worker for each).

    rq's work loop quits on any Redis error it meets outside a job (its
    heartbeat, its scheduler, recording its own death), so a Redis restart
    would end the process; here a new rq worker starts after a backoff, until
    a signal (or ``stop``) asks it to stop. Its commands wait out a short
    outage first (:data:`WORKER_PATIENCE`), so a job in flight finishes.
    """
    stop = stop or threading.Event()
    be_patient(services)
    children_go_with_me()
    failures = 0
    while not stop.is_set():
        worked = [services.jobs.partners if name == PARTNERS else services.jobs.queue for name in queues]
        worker = Worker(worked, connection=services.jobs.connection,
                        job_class=services.jobs.job_class, maintenance_interval=60)
        worker.every = every
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
