"""The worker process carries on when Redis goes away: its rq worker is
started again with backoff, and its housekeeping keeps going."""
import time

import redis
from redis.backoff import NoBackoff

from ussd_app import create_app, jobs
from ussd_app.core import keys

from test_store import RedisProcess, close


def test_the_rq_worker_starts_again_after_losing_redis(services, monkeypatch):
    runs = []

    def work(self, **kwargs):
        runs.append(self)
        if len(runs) == 1:  # rq's loop quit on a Redis error, then failed to record its death
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        if len(runs) == 2:  # it quit again ("found an unhandled exception, quitting...")
            return False
        self.stop_requested = True  # SIGTERM: a warm shutdown
        return True

    monkeypatch.setattr(jobs.Worker, "work", work)
    monkeypatch.setattr(jobs, "RESTART", NoBackoff())
    jobs.work(services)
    assert len(runs) == 3 and len({id(w) for w in runs}) == 3  # a new rq worker each time


def test_a_burst_worker_is_not_started_again(services, monkeypatch):
    runs = []
    monkeypatch.setattr(jobs.Worker, "work", lambda self, **kw: runs.append(kw) or False)
    jobs.work(services, burst=True)
    assert len(runs) == 1


def test_the_worker_waits_out_a_redis_restart(tmp_path, free_port):
    server = RedisProcess(tmp_path, free_port)
    app = create_app({"REDIS_URL": server.url, "USSD_APP_ENV": "test"})
    try:
        services = app.extensions["ussd"]
        jobs.be_patient(services)
        services.r.set("ussd:test:worker", "1")
        server.restart_after(1.5)  # longer than the web's patience, shorter than the worker's
        assert services.r.get("ussd:test:worker") == "1"
        assert services.raw.get("ussd:test:worker") == b"1"
    finally:
        close(app)
        server.stop()


def test_housekeeping_carries_on_after_a_redis_restart(tmp_path, free_port):
    """Housekeeping is a job on rq's scheduler; a round that meets a Redis
    restart waits it out and does its work (the worker's own restart after a
    lost Redis: test_the_worker_waits_out_a_redis_restart, tests/faults)."""
    server = RedisProcess(tmp_path, free_port)
    app = create_app({"REDIS_URL": server.url, "USSD_APP_ENV": "test"})
    try:
        services = app.extensions["ussd"]
        jobs.be_patient(services)
        # Left by a crash long ago: a marker with no redemption behind it.
        services.r.zadd(keys.PENDING_REDEMPTIONS, {"+6281234567890|r1|PULSA5": time.time() - 3600})
        server.restart_after(0.5)
        time.sleep(0.2)
        jobs.housekeeping(services, every=3600)
        assert services.r.zcard(keys.PENDING_REDEMPTIONS) == 0, "housekeeping stopped with Redis"
    finally:
        close(app)
        server.stop()


def test_a_job_whose_run_record_expired_is_dropped(services):
    """rq keeps a run in a job's index of runs 60 s after the run's record
    expires (a worker lost mid-job, as in a Redis restart): recovery must
    still drop the job and queue it afresh (CI's restart fault test hit it)."""
    from ussd_app.core.queue import Jobs

    queue = Jobs(services, services.raw, sync=False)
    queue.enqueue("ussd_app.jobs.housekeeping", job_id="fulfil-lost")
    job = queue.job_class.fetch("fulfil-lost", connection=services.raw)
    services.raw.zadd(job.execution_registry.key, {"a-run-whose-record-expired": time.time() + 600})
    queue.drop("fulfil-lost")
    assert not services.raw.exists(job.key, job.execution_registry.key)
    assert not queue.waiting("fulfil-lost")


def test_a_job_whose_hash_expires_while_asked_about_is_not_waiting(services, monkeypatch):
    from ussd_app.core.queue import Jobs

    queue = Jobs(services, services.raw, sync=False)
    queue.enqueue("ussd_app.jobs.housekeeping", job_id="fulfil-expiring")
    fetch = queue.job_class.fetch

    def expiring(job_id, connection):  # the hash expires between rq's two reads
        job = fetch(job_id, connection=connection)
        connection.delete(job.key)
        return job

    monkeypatch.setattr(queue.job_class, "fetch", staticmethod(expiring))
    assert not queue.waiting("fulfil-expiring")
