"""The job queue every part is handed (on ``Services``): rq, bound to this
process's services.

A job is named by its function's dotted path and is called with the services
first, then its arguments: ``fulfil(services, msisdn, rid)``. So a domain
enqueues its own work without importing the registry (``ussd_app.jobs``), and
no job reaches for a module global to find its Redis.
"""
from __future__ import annotations

import functools
import json
import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import redis
import rq
from rq import Retry
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import JobStatus

from ussd_app.core import logs, metrics

log = logging.getLogger("ussd_app.jobs")

QUEUE = "ussd"  # subscribers' SMS, offer SMS, housekeeping
# Calls to parties outside, each bounded by its deadline (core/http): partner
# webhooks (lead push) and the fulfilment provider. A queue of their own, worked
# by a worker process of its own in the Procfile, so that a slow partner never
# holds the worker that sends subscribers' SMS (issue 19.8).
PARTNERS = "ussd-partners"
RETRY = (5, 30, 120, 600, 1800)  # seconds between an unknown outcome's attempts


def backoff(first: int, cap: int = 3600, total: int = 24 * 3600) -> tuple[int, ...]:
    """Retry intervals doubling from ``first`` seconds, each at most ``cap``,
    until they add up to ``total``."""
    intervals, step = [], max(1, first)
    while sum(intervals) < total:
        intervals.append(step)
        step = min(step * 2, cap)
    return tuple(intervals)


class TryLater(Exception):
    """An outcome the design expects (a provider's unknown outcome, a lease
    another worker holds, a partner that did not take a lead yet): rq runs
    the job again after its retry interval, and the worker logs one WARNING
    line without a traceback while retries remain (``jobs.Worker``)."""


class ServicesJob(rq.job.Job):
    """An rq job that passes the services of its queue to the function, runs
    with the request id of the request that enqueued it (job meta), and logs
    one line and counts one run (``ussd_jobs_total``) per attempt.

    Through rq's public ``Job`` API only: ``func`` (what rq calls with the
    job's args) is the function with the services bound first, and
    ``perform`` (what rq's worker and a synchronous queue call to run a job)
    is wrapped for the log line and the count."""
    services: Any = None

    @property
    def func(self):
        func = super().func
        return None if func is None else functools.partial(func, self.services)

    def perform(self):
        rid = logs.request_id.set((self.meta or {}).get("request_id"))
        jid = logs.job_id.set(self.id)
        started, outcome = time.perf_counter(), "failed"
        try:
            result = super().perform()
            outcome = "ok"
            return result
        finally:
            metrics.job(self.func_name, outcome)
            if log.isEnabledFor(logging.INFO):
                log.info(json.dumps({"event": "job", "func": self.func_name, "outcome": outcome,
                                     "ms": round((time.perf_counter() - started) * 1000, 2)}))
            logs.job_id.reset(jid)
            logs.request_id.reset(rid)


class Jobs:
    """The queue of one ``Services``; with ``sync`` (the embedded demo) jobs run at once."""

    def __init__(self, services, connection: redis.Redis, sync: bool):
        self.connection = connection
        self.job_class = type("BoundJob", (ServicesJob,), {"services": services})
        self.queue = rq.Queue(QUEUE, connection=connection, is_async=not sync,
                              job_class=self.job_class)
        self.partners = rq.Queue(PARTNERS, connection=connection, is_async=not sync,
                                 job_class=self.job_class)
        self._held = threading.local()

    @property
    def sync(self) -> bool:
        return not self.queue.is_async

    @contextmanager
    def after(self):
        """Jobs that would run at once (``sync``) inside this block run when it
        ends instead, as a worker would run them after the request: the
        subscriber reads "being processed" before "delivered"."""
        if not self.sync or getattr(self._held, "jobs", None) is not None:
            yield
            return
        self._held.jobs = []
        try:
            yield
        finally:
            held, self._held.jobs = self._held.jobs, None
            for func, args, kwargs in held:
                self.enqueue(func, *args, **kwargs)

    def enqueue(self, func: str, *args, job_id: str | None = None,
                retry: tuple[int, ...] | None = RETRY, queue: str = QUEUE) -> None:
        """Queue ``func(services, *args)``; ``job_id`` makes a second enqueue
        of the same work replace, not add, a job. ``queue``: :data:`PARTNERS`
        for a call to a party outside."""
        held = getattr(self._held, "jobs", None)
        if held is not None:
            held.append((func, args, {"job_id": job_id, "retry": retry, "queue": queue}))
            return
        # Queued jobs go out in one round trip (rq alone makes two); a job run at
        # once saves its own outcome, which a later pipeline would overwrite.
        pipe = None if self.sync else self.connection.pipeline()
        (self.partners if queue == PARTNERS else self.queue).enqueue_call(func, args=args, job_id=job_id, pipeline=pipe, meta=_meta(),
                                retry=Retry(max=len(retry), interval=list(retry)) if retry else None)
        if pipe is not None:
            pipe.execute()

    def enqueue_many(self, func: str, calls: list[tuple[tuple, str | None]],
                     retry: tuple[int, ...] | None = RETRY, batch: int = 500) -> None:
        """Queue ``func(services, *args)`` for each ``(args, job_id)`` of ``calls``,
        one job each, ``batch`` jobs a round trip."""
        if self.sync:
            for args, job_id in calls:
                self.enqueue(func, *args, job_id=job_id, retry=retry)
            return
        again = Retry(max=len(retry), interval=list(retry)) if retry else None
        for i in range(0, len(calls), batch):
            pipe = self.connection.pipeline()
            self.queue.enqueue_many([rq.Queue.prepare_data(func, args=args, job_id=job_id, retry=again,
                                                           meta=_meta())
                                     for args, job_id in calls[i:i + batch]], pipeline=pipe)
            pipe.execute()

    def waiting(self, job_id: str) -> bool:
        """Whether job ``job_id`` will run without anyone queueing it again: it
        is in the queue, scheduled (a retry's backoff) or deferred."""
        try:
            job = self.job_class.fetch(job_id, connection=self.connection)
            status = job.get_status()
        except (NoSuchJobError, InvalidJobOperation):  # none, or its hash expired in between
            return False
        if status == JobStatus.QUEUED:
            queue = self.partners if job.origin == PARTNERS else self.queue
            return queue.get_job_position(job_id) is not None
        return status in (JobStatus.SCHEDULED, JobStatus.DEFERRED)

    def drop(self, job_id: str) -> None:
        """Forget job ``job_id`` (finished, failed or lost), so it can be queued afresh."""
        try:
            job = self.job_class.fetch(job_id, connection=self.connection)
        except NoSuchJobError:
            return
        try:
            job.delete()
        except ValueError:
            # rq's index of the job's runs names a run whose record is gone: a
            # lost worker's run record expires 60 s before its entry in that
            # index, and rq 3.0 refuses to delete the job in between. Forget
            # the index; the runs' records expire by themselves.
            self.connection.delete(job.execution_registry.key)
            job.delete()

    def retries_left(self) -> int:
        """Retries rq will still make of the job running now if it raises (0 in
        sync mode, which never retries, and outside a job)."""
        job = None if self.sync else rq.get_current_job()
        return (job.retries_left or 0) if job is not None else 0

    def enqueue_at(self, when: float, func: str, *args, job_id: str,
                   retry: tuple[int, ...] | None = RETRY, at_front: bool = False) -> bool:
        """Have rq's scheduler (run by the worker) queue ``func(services, *args)``
        at ``when`` (epoch seconds); it is kept in Redis until then, so a
        restart loses nothing. The first job of an id wins: False when one
        with ``job_id`` exists already (scheduled, queued, or just run).
        ``at_front``: then ahead of the jobs waiting."""
        try:
            self.queue.enqueue_at(datetime.fromtimestamp(when, timezone.utc), func, *args,
                                  job_id=job_id, meta=_meta(), unique=True, at_front=at_front,
                                  retry=Retry(max=len(retry), interval=list(retry)) if retry else None)
        except DuplicateJobError:
            return False
        return True


def _meta() -> dict | None:
    """What a job carries from the request that enqueued it: its id, for the logs."""
    rid = logs.request_id.get()
    return {"request_id": rid} if rid else None
