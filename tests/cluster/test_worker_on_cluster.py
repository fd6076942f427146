"""The worker on a Redis Cluster, its job queue on a plain Redis of its own
(JOBS_REDIS_URL): what the worker does when that Redis loses its data."""
import pytest

from ussd_app import jobs


@pytest.fixture
def config(config):
    return {**config, "JOBS_SYNC": False}  # jobs wait for a worker, as in production


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
