"""Faults under traffic, each on the whole service started as the Procfile does
(faultstack.py): Redis restarted or killed, the worker killed, a web worker
killed, the fulfilment provider timing out. After each, the promises hold
(Promises.check): every redemption confirmed to a subscriber is in the ledger
exactly once, each balance is the sum of its ledger, none is left pending
after the recovery, the provider is never called again for an outcome it
confirmed, and every confirmed consent is logged and passed on exactly once.
"""
import os
import signal
import time
from pathlib import Path

import pytest
from rq.scheduler import RQScheduler

from faultstack import Promises, Traffic, children, summary, wait_for


def settle_and_check(stack, traffic) -> dict:
    promises = Promises(stack, traffic)
    promises.settle()
    counts = promises.check()
    print(summary(traffic.attempts), counts)
    return counts


def test_a_redis_restart_loses_nothing_confirmed(stack):
    """SHUTDOWN (Redis syncs its AOF and closes every client), then the same
    AOF again: every process waits it out and carries on."""
    stack.provider.mode = "slow"  # fulfilment in flight when Redis goes
    with Traffic(stack) as traffic:
        time.sleep(3)
        stack.redis.shutdown()
        time.sleep(1)
        stack.redis.start()
        stack.wait_ready(15)
        time.sleep(3)
    stack.provider.mode = "ok"
    for worker in (stack.worker, stack.partners):
        assert worker.alive, f"the {worker.name} worker died with Redis\n{worker.tail()}"
    settle_and_check(stack, traffic)


@pytest.mark.appendfsync("always")
def test_redis_killed_loses_nothing_confirmed(stack):
    """kill -9 of Redis: with appendfsync always, whatever it acknowledged is
    in the AOF (with everysec up to a second of it may not be: docs/operating.md)."""
    stack.provider.mode = "slow"
    with Traffic(stack) as traffic:
        time.sleep(3)
        stack.redis.kill9()
        time.sleep(1)
        stack.redis.start()
        stack.wait_ready(15)
        time.sleep(3)
    stack.provider.mode = "ok"
    for worker in (stack.worker, stack.partners):
        assert worker.alive, f"the {worker.name} worker died with Redis\n{worker.tail()}"
    settle_and_check(stack, traffic)


def test_a_killed_worker_restarted_leaves_nothing_pending_or_twice(stack):
    """kill -9 of the worker (and its scheduler) in the middle of a
    fulfilment, then started again as a supervisor would: the recovery
    finishes what it left; the provider is asked again only for a call the
    worker never heard the answer to."""
    stack.provider.mode = "slow"
    with Traffic(stack) as traffic:
        time.sleep(3)
        for _ in range(2):
            wait_for_a_call_in_flight(stack)
            stack.partners.kill9()  # the worker of the partners queue: fulfilment
            stack.provider.interrupt()
            time.sleep(1)
            stack.partners.start()
            time.sleep(1.5)
    stack.provider.mode = "ok"
    settle_and_check(stack, traffic)


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_worker_leaves_no_scheduler_behind(stack):
    """Issue 19.9: ``kill -9`` of the worker process alone (not its group, as
    an operator or the OOM killer does): rq's scheduler, its child, ends with
    it and gives up the scheduler lock, so the next worker's scheduler runs."""
    lock = RQScheduler.get_locking_key("ussd")
    worker = stack.worker.proc.pid
    (scheduler,) = wait_for(lambda: children(worker), 30, "rq's scheduler started by the worker")
    wait_for(lambda: stack.redis.client.get(lock), 30, "the scheduler lock held")
    os.kill(worker, signal.SIGKILL)
    stack.worker.proc.wait(10)
    try:
        wait_for(lambda: not running(scheduler), 10, "the scheduler ended with its worker", every=0.1)
    finally:
        if running(scheduler):  # an orphan: this test started it, this test ends it
            os.kill(scheduler, signal.SIGKILL)
    wait_for(lambda: stack.redis.client.get(lock) is None, 10, "the scheduler lock given up")
    stack.worker.start()
    (again,) = wait_for(lambda: children(stack.worker.proc.pid), 30, "the new worker's scheduler")
    wait_for(lambda: stack.redis.client.get(lock), 30, "the scheduler lock held again")
    assert running(again)


def test_a_killed_web_worker_is_replaced(stack):
    """kill -9 of one web worker: the server keeps answering, a new worker
    takes its place within seconds, and nothing it was doing is half-done."""
    with Traffic(stack) as traffic:
        time.sleep(3)
        before = stack.web_workers()
        assert len(before) == 2, before
        stack.kill_web_worker(before[0])
        stack.wait_web(10)
        new = stack.wait_for_web_workers(2, 15)
        assert before[0] not in new and stack.web.alive
        time.sleep(3)
    settle_and_check(stack, traffic)


def test_provider_timeouts_and_refusals_keep_the_books(stack):
    """The provider refuses, then stops answering in time, then recovers."""
    with Traffic(stack) as traffic:
        time.sleep(2)
        stack.provider.mode = "fail"
        time.sleep(2)
        stack.provider.mode = "timeout"
        time.sleep(4)
        stack.provider.mode = "ok"
        time.sleep(2)
    promises = Promises(stack, traffic)
    promises.settle()
    counts = promises.check()
    print(summary(traffic.attempts), counts)
    timed_out = {ref for ref, calls in stack.provider.calls.items() if any(c.late for c in calls)}
    assert timed_out, "no provider call timed out: the test did not test timeouts"
    # an unknown outcome (a timeout) is never refunded automatically; the
    # provider delivered every call it answered 2xx, late or not, so none of
    # those may end refunded.
    refunded = promises.refunded()
    assert not refunded & stack.provider.delivered(), (
        f"delivered, then refunded: {sorted(refunded & stack.provider.delivered())[:5]}")


def wait_for_a_call_in_flight(stack, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while stack.provider.in_flight() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
