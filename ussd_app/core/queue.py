"""The job queue every part is handed (on ``Services``): rq, bound to this
process's services.

A job is named by its function's dotted path and is called with the services
first, then its arguments: ``fulfil(services, msisdn, rid)``. So a domain
enqueues its own work without importing the registry (``ussd_app.jobs``), and
no job reaches for a module global to find its Redis.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any

import redis
import rq
from rq import Retry

QUEUE = "ussd"
RETRY = (5, 30, 120, 600, 1800)  # seconds between an unknown outcome's attempts


class ServicesJob(rq.job.Job):
    """An rq job that passes the services of its queue to the function."""
    services: Any = None

    def _execute(self):
        return self.func(self.services, *self.args, **self.kwargs)


class Jobs:
    """The queue of one ``Services``; with ``sync`` (the embedded demo) jobs run at once."""

    def __init__(self, services, connection: redis.Redis, sync: bool):
        self.connection = connection
        self.job_class = type("BoundJob", (ServicesJob,), {"services": services})
        self.queue = rq.Queue(QUEUE, connection=connection, is_async=not sync,
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
                retry: tuple[int, ...] | None = RETRY) -> None:
        """Queue ``func(services, *args)``; ``job_id`` makes a second enqueue
        of the same work replace, not add, a job."""
        held = getattr(self._held, "jobs", None)
        if held is not None:
            held.append((func, args, {"job_id": job_id, "retry": retry}))
            return
        # Queued jobs go out in one round trip (rq alone makes two); a job run at
        # once saves its own outcome, which a later pipeline would overwrite.
        pipe = None if self.sync else self.connection.pipeline()
        self.queue.enqueue_call(func, args=args, job_id=job_id, pipeline=pipe,
                                retry=Retry(max=len(retry), interval=list(retry)) if retry else None)
        if pipe is not None:
            pipe.execute()
