"""Failover: kill -9 the primary serving a subscriber in the middle of
traffic; its replica takes over (cluster-node-timeout 2000 ms), hops and
redemptions resume, and with REDIS_WAIT_REPLICAS=1 every redemption the
service confirmed is still there, exactly once.

Bounded: its own cluster of 3 primaries and 3 replicas, traffic of at most
a few hundred operations over at most 40 s, stopped by the test itself.
"""
import math
import threading
import time
import uuid

import pytest

from bench.redis_cluster import LocalCluster
from waiting import wait_for
from ussd_app import create_app
from ussd_app.core import keys, store, subscribers
from ussd_app.loyalty import points, redemptions, rewards
from ussd_app.sms.providers import outbox

M = "+6281234567890"
DEADLINE = 40.0  # seconds: the whole traffic, kill and recovery


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("failover"), masters=3, replicas=1,
                      node_timeout=2000) as cluster:
        yield cluster


@pytest.fixture
def app(replicated, config):
    app = create_app({**config, "REDIS_URL": replicated.url, "REDIS_WAIT_REPLICAS": 1})
    app.extensions["ussd"].r.flushdb()
    return app


def primary_of(cluster: LocalCluster, key: str) -> int:
    """The port of the primary serving ``key``."""
    node = cluster.client(cluster.primaries()[0])
    slot = node.execute_command("CLUSTER", "KEYSLOT", key)
    for start, end, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(primary[1])
    raise AssertionError(f"slot {slot} is not served")


def test_a_killed_primary_is_replaced_and_no_confirmed_redemption_is_lost(replicated, app):
    services = app.extensions["ussd"]
    r, now = services.r, services.clock()
    points.earn(r, M, 1_000_000, "topup", "failover", math.inf, now)
    reward = rewards.put(r, rewards.validate("PULSA1", {
        "name": {"id": "Pulsa"}, "category": "pulsa", "points": 1, "fulfilment": "airtime"}))
    client = app.test_client()
    confirmed, failed, hops = [], [], []
    stop = threading.Event()
    killed_at, restarted_at, plain = [], [], []

    def traffic():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                outcome = redemptions.redeem(services, M, reward, redemptions.new_quote(reward, 1), "ussd")
                if outcome.status == "ok":
                    confirmed.append((time.monotonic(), outcome.redemption))
            except Exception as e:  # a redemption not confirmed: allowed while the primary is down
                failed.append((time.monotonic(), type(e).__name__))
            try:  # a plain command (not store.roundtrip) rides out the failover too
                r.hget(keys.profile(M), "status")
            except Exception as e:
                plain.append(type(e).__name__)
            session = uuid.uuid4().hex
            reply = client.post("/ussd", data={"sessionId": session, "serviceCode": "*700#",
                                               "phoneNumber": M, "text": "1"}).get_data(as_text=True)
            hops.append((time.monotonic(), "Poin Anda" in reply))
            time.sleep(0.01)

    thread = threading.Thread(target=traffic)
    started = time.monotonic()
    thread.start()
    try:
        while len(confirmed) < 20 and time.monotonic() - started < DEADLINE:
            time.sleep(0.05)
        victim = primary_of(replicated, keys.ledger(M))
        replicated.kill(victim)
        killed_at.append(time.monotonic())
        # Hops resume once the replica is promoted; a redemption is confirmed
        # again once the new primary has a replica: the killed node, restarted
        # as a supervisor would, rejoins as one.
        while time.monotonic() - started < DEADLINE:
            if victim not in replicated.alive() and primary_of(replicated, keys.ledger(M)) != victim:
                replicated.restart(victim)
                restarted_at.append(time.monotonic())
            after = [t for t, _ in confirmed if t > killed_at[0]]
            good_hops = [t for t, ok in hops if ok and t > killed_at[0]]
            if len(after) >= 20 and len(good_hops) >= 20:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert primary_of(replicated, keys.ledger(M)) != victim  # its replica was promoted
    resumed = [t for t, ok in hops if ok and t > killed_at[0]]
    assert len(resumed) >= 20, f"hops did not resume after the kill: {hops[-5:]}"
    assert len([t for t, _ in confirmed if t > killed_at[0]]) >= 20, failed[-5:]
    assert plain == []
    # Every redemption the service confirmed is on the new primary, once.
    ids = [rid for _, rid in confirmed]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        assert redemptions.get(r, M, rid) is not None, rid
    ledger = points.ledger(r, M)
    redeemed = {e["redemption"] for e in ledger if e["type"] == "redeem"}
    assert set(ids) <= redeemed
    assert points.view(r, M, services.clock()).balance == sum(e["points"] for e in ledger)
    first = min(t for t, _ in confirmed if t > resumed[0])  # on the promoted replica
    print(f"\nkill -> first hop answered {resumed[0] - killed_at[0]:.2f} s, node restarted "
          f"{restarted_at[0] - killed_at[0]:.2f} s, first redemption confirmed "
          f"{first - killed_at[0]:.2f} s; {len(failed)} not confirmed meanwhile "
          f"({sorted(set(name for _, name in failed))}), {len(ids)} confirmed in all")



def test_the_worker_process_rides_out_a_failover_and_fulfils_every_redemption_once(
        replicated, config, processes):
    """``ussd-app worker`` as the Procfile runs it, while the primary serving
    a subscriber is killed (kill -9) between redemptions: the worker lives on,
    and every redemption confirmed before and after the kill is fulfilled,
    its SMS sent once. (Until d4fbe5e every command of the worker answered
    None on a cluster.)"""
    replicated.wait_ok()
    app = create_app({**config, "REDIS_URL": replicated.url, "JOBS_SYNC": False})
    services = app.extensions["ussd"]
    r = services.r
    r.flushdb()
    try:
        points.earn(r, M, 1_000, "topup", "worker-failover", math.inf, services.clock())
        reward = rewards.put(r, rewards.validate("PULSA1", {
            "name": {"id": "Pulsa"}, "category": "pulsa", "points": 1, "fulfilment": "airtime"}))
        worker = processes.worker(REDIS_URL=replicated.url, JOBS_REDIS_URL=config["JOBS_REDIS_URL"])

        def redeem(n: int) -> list[str]:
            return [redemptions.redeem(services, M, reward, redemptions.new_quote(reward, 1), "ussd").redemption
                    for _ in range(n)]

        def settled(ids) -> bool:
            return all((redemptions.get(r, M, rid) or {}).get("status") == "done" for rid in ids)

        before = redeem(5)
        assert wait_for(lambda: settled(before), 20)
        victim = primary_of(replicated, keys.ledger(M))
        replicated.kill(victim)
        after = redeem(5)  # each waits for the replica's promotion
        replicated.restart(victim)
        assert wait_for(lambda: settled(after), 40), [redemptions.get(r, M, rid) for rid in after]
        assert worker.poll() is None  # alive and working
        done = [m for m in outbox(r, M) if m.get("id", "").startswith("redeem:")]
        assert sorted(m["id"] for m in done) == sorted(f"redeem:{rid}:done" for rid in before + after)
        assert points.view(r, M, services.clock()).balance == 1_000 - 10
    finally:
        for port in set(replicated.procs) - set(replicated.alive()):
            replicated.restart(port)
        r.close()
        services.raw.close()
    replicated.wait_ok()


def test_a_command_rides_out_a_whole_cluster_restart(tmp_path):
    """Every node away for a moment (a cluster restarted as a whole): redis-py
    then fails to read the slot map and raises RedisClusterException, which
    is no RedisError; a plain command raised it at once (a 500, a job failing
    at once) instead of waiting for the nodes as store.roundtrip does."""
    with LocalCluster(tmp_path, masters=3, replicas=0) as cluster:
        r = store.connect(cluster.url)
        try:
            assert r.set("ussd:test:restart", "1") is True
            for port in cluster.ports:
                cluster.kill(port)
            back = threading.Timer(1.0, lambda: [cluster.restart(p) for p in cluster.ports])
            back.start()
            try:
                assert r.set("ussd:test:restart", "2") is True  # waits for the nodes
                assert store.roundtrip(r, ("GET", "ussd:test:restart")) == ["2"]
            finally:
                back.join()
        finally:
            r.close()


def test_pipelines_ride_out_a_failover(replicated, config):
    """Pipelines serve web requests too (PUT /api/v1/subscribers, an SMS
    TUKAR's quote in MULTI/EXEC, delivery reports): while the primary is
    replaced they keep trying as plain commands do, instead of redis-py's
    three tries at once (a 500 within milliseconds of the kill)."""
    replicated.wait_ok()
    app = create_app({**config, "REDIS_URL": replicated.url})
    r = app.extensions["ussd"].r
    try:
        r.flushdb()
        subscribers.put(r, M, {"credit_score": 700})
        reward = rewards.put(r, rewards.validate("PULSA1", {
            "name": {"id": "Pulsa"}, "category": "pulsa", "points": 1, "fulfilment": "airtime"}))
        victim = primary_of(replicated, keys.profile(M))
        replicated.kill(victim)
        assert subscribers.put(r, M, {"credit_score": 710}).credit_score == 710  # a pipeline
        held = redemptions.quote(r, M, reward)  # MULTI/EXEC
        assert redemptions.quoted(r, M) == held
        assert primary_of(replicated, keys.profile(M)) != victim
    finally:
        for port in set(replicated.procs) - set(replicated.alive()):
            replicated.restart(port)
        r.close()
        app.extensions["ussd"].raw.close()
    replicated.wait_ok()
