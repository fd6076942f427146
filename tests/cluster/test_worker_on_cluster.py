"""The worker on a Redis Cluster, as a process of its own, its job queue on a
plain Redis (JOBS_REDIS_URL): offer SMS held for the sending window,
housekeeping, lead pushes (retried, and after a worker killed mid-delivery),
and what the worker does when the queue's Redis loses its data."""
import pytest

from test_push import (  # noqa: F401  (collected here too, on the cluster)
    consented, offered, receiver, test_no_second_delivery_after_a_worker_is_killed_mid_delivery,
    test_retries_after_a_500_and_a_timeout_through_rq)
from test_scheduler import (  # noqa: F401
    test_held_offer_sms_survive_a_worker_restart_and_go_out_once,
    test_housekeeping_runs_on_rqs_scheduler_one_round_at_a_time)
from ussd_app import jobs


@pytest.fixture
def config(config):
    # jobs wait for a worker, as in production; lead pushes retried within seconds (as test_push)
    return {**config, "JOBS_SYNC": False, "LEAD_PUSH_TIMEOUT": 1.0, "LEAD_PUSH_BACKOFF": 1}


def housekeeping(services) -> list[str]:
    return [j for j in services.jobs.queue.scheduled_job_registry.get_job_ids()
            if j.startswith("housekeeping-")]


def test_housekeeping_resumes_after_the_queues_redis_lost_its_schedule(services):
    """Each round schedules the next; the queue's own Redis restarted without
    its data (or emptied by hand) took the next round with it, and housekeeping
    (pending redemptions, lead pushes, the funnel, the archive) stopped until
    the worker restarted. rq's maintenance, which every worker runs, schedules
    it again."""
    jobs.start(services)
    assert housekeeping(services)
    services.jobs.connection.flushdb()
    jobs.work(services, burst=True)  # a worker's maintenance round, then nothing to do
    assert housekeeping(services)


def test_the_workers_job_queue_waits_for_its_redis_as_long_as_its_jobs_do(config, tmp_path, free_port):
    """The worker waits up to a minute for a lost Redis, so a job in flight
    finishes its bookkeeping (docs/operating.md). With a cluster the queue has a Redis of
    its own (JOBS_REDIS_URL), which kept the web's 5 s: a job queueing its SMS
    while that Redis restarted failed half-way."""
    import shutil
    import subprocess
    import threading

    from ussd_app import create_app

    app = create_app({**config, "JOBS_REDIS_URL": f"redis://127.0.0.1:{free_port}/0"})
    services = app.extensions["ussd"]
    started = []

    def start():  # the queue's Redis is back 6 s later (longer than a web request waits)
        started.append(subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(free_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL))
    timer = threading.Timer(6.0, start)
    try:
        jobs.be_patient(services)
        timer.start()
        services.jobs.enqueue("ussd_app.sms.outbound.deliver", {"to": "+6281100000009"}, job_id="sms-1")
        assert services.jobs.waiting("sms-1")
    finally:
        timer.cancel()
        timer.join()
        services.r.close()
        services.raw.close()
        services.jobs.connection.close()
        for proc in started:
            proc.terminate()
            proc.wait(10)
