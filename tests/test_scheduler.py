"""One scheduler: rq's, run by the worker. Held offer SMS and housekeeping are
rq jobs scheduled in Redis: a worker restart loses none, and each runs once."""
import json
import time

import pytest

from waiting import wait_for
from ussd_app import jobs
from ussd_app.core import keys
from ussd_app.loyalty import rewards
from ussd_app.offers import sending

M = "+6281100000009"


@pytest.fixture
def config(config):
    return {**config, "JOBS_SYNC": False}  # jobs wait for a worker, as in production


def outbox(services, to=M):
    return [json.loads(m)["text"] for m in services.r.lrange(keys.outbox(to), 0, -1)]


def test_held_offer_sms_survive_a_worker_restart_and_go_out_once(services, processes):
    sending.hold(services, "kta-nov", [services.sms.message(M, "tawaran", "GeneRate")],
                 services.clock() + 3)
    first = processes.worker()
    assert wait_for(lambda: services.jobs.connection.keys("rq:scheduler:*"), 20)  # its rq scheduler runs
    processes.stop(first)  # a deploy: SIGTERM before the SMS is due
    assert outbox(services) == []
    processes.worker()
    assert wait_for(lambda: outbox(services), 30) == ["tawaran"]
    time.sleep(1.5)  # a second copy would have gone out by now
    assert outbox(services) == ["tawaran"]
    held = services.jobs.queue.scheduled_job_registry.get_job_ids()
    assert [j for j in held if not j.startswith("housekeeping-")] == []


def test_housekeeping_runs_on_rqs_scheduler_one_round_at_a_time(services, processes):
    w = rewards.put(services.r, rewards.validate("PULSA10", {
        "name": "Pulsa 10rb", "category": "pulsa", "points": 100, "stock": 2, "fulfilment": "airtime"}))
    # a web process died between holding stock and debiting points, long ago
    services.r.zadd(keys.PENDING_REDEMPTIONS, {f"{M}|rid1|PULSA10": 0})
    assert rewards.RESERVE(services.r, *rewards.reserve_args(w, "rid1", 1, w.revision)) == 1
    processes.worker("--every", "1")
    processes.worker("--every", "1")
    assert wait_for(lambda: not services.r.zcard(keys.PENDING_REDEMPTIONS), 30)
    assert rewards.get(services.r, "PULSA10").stock == 2
    registry = services.jobs.queue.scheduled_job_registry
    for _ in range(5):  # two workers, rounds every second: never two rounds waiting
        assert len([j for j in registry.get_job_ids() if j.startswith("housekeeping-")]) <= 1
        time.sleep(0.5)


def test_a_slot_is_scheduled_once_however_often_asked(services):
    assert jobs.schedule_housekeeping(services, 60) in (True, False)
    assert jobs.schedule_housekeeping(services, 60) is False
    ids = services.jobs.queue.scheduled_job_registry.get_job_ids()
    assert len([j for j in ids if j.startswith("housekeeping-60-")]) == 1


def test_the_old_sorted_set_is_adopted_at_start(services):
    services.r.zadd(keys.SCHEDULED_SMS, {json.dumps(services.sms.message(M, "lama", "GeneRate")): 1})
    jobs.start(services)
    assert not services.r.exists(keys.SCHEDULED_SMS)
    held = [services.jobs.queue.fetch_job(j) for j in services.jobs.queue.scheduled_job_registry.get_job_ids()]
    released = [j for j in held if j.func_name == sending.RELEASE_JOB]
    assert len(released) == 1 and released[0].args[0][0]["text"] == "lama"
    jobs.work(services, burst=True)  # due long ago: the burst worker's scheduler queues it
    assert outbox(services) == ["lama"]


def test_housekeeping_goes_before_a_backlog(services):
    """A round due while jobs wait (a campaign's SMS, fulfilments retried
    after an outage) runs next, not after them: recovery and lead pushes are
    not held back by the backlog they are there to settle."""
    jobs.schedule_housekeeping(services, 1)
    backlog = [f"sms-backlog-{i}" for i in range(3)]
    for job_id in backlog:
        services.jobs.enqueue("ussd_app.sms.outbound.deliver", services.sms.message(M, "antre", "POIN"),
                              job_id=job_id)
    time.sleep(1.1)  # the round's slot has begun
    jobs.work(services, burst=True)
    rounds = [j for j in services.jobs.queue.finished_job_registry.get_job_ids() if j.startswith("housekeeping-1-")]
    assert len(rounds) == 1
    fetch = services.jobs.queue.fetch_job
    assert all(fetch(rounds[0]).ended_at <= fetch(j).started_at for j in backlog)
