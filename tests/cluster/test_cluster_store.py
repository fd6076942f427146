"""store.roundtrip on a Redis Cluster: a call's commands grouped by node,
a hop's work on the caller's node alone."""
import pytest
from redis.cluster import RedisCluster

from ussd_app.core import cluster, keys, store

M = "+6281234567890"


@pytest.fixture
def sends(monkeypatch):
    """Every group roundtrip sends to a node: (node name, commands)."""
    seen = []
    original = cluster._send

    def spy(r, node, commands, *args):
        seen.append((node.name, [c[0] for c in commands]))
        return original(r, node, commands, *args)
    monkeypatch.setattr(cluster, "_send", spy)
    return seen


def spread(r, n: int) -> list[str]:
    """``n`` keys, one on each of ``n`` different nodes."""
    found = {}
    for i in range(1000):
        key = f"ussd:test:{i}"
        found.setdefault(r.nodes_manager.get_node_from_slot(r.keyslot(key)).name, key)
        if len(found) == n:
            return list(found.values())
    raise AssertionError("the keys did not spread")


def test_the_service_runs_on_the_cluster_and_its_jobs_on_a_plain_redis(services):
    assert isinstance(services.r, RedisCluster)
    assert len(services.r.get_primaries()) == 3
    assert not isinstance(services.jobs.connection, RedisCluster)


def test_reads_go_once_to_each_node(services, sends):
    a, b, c = spread(services.r, 3)
    store.roundtrip(services.r, ("SET", a, "1"))
    replies = store.roundtrip(services.r, ("GET", a), ("GET", b), ("GET", c), ("GET", a), ("EXISTS", b))
    assert replies == ["1", None, None, "1", 0]
    assert [names for _, names in sends[1:]] == [["GET", "GET"], ["GET", "EXISTS"], ["GET"]]


def test_writes_to_several_nodes_keep_their_order(services, sends):
    a, b, _ = spread(services.r, 3)
    replies = store.roundtrip(services.r, ("SET", a, "1"), ("INCR", a), ("RPUSH", b, "x"),
                              ("INCR", a))
    assert replies == ["OK", 2, 1, 3]
    assert [len(names) for _, names in sends] == [2, 1, 1]  # a, then b, then a again
    assert sends[0][0] == sends[2][0] != sends[1][0]


def test_a_check_points_hop_goes_to_the_callers_node_in_two_round_trips(services, phone, api, sends):
    """The caller's work (session, account) goes to the caller's node, one read
    and one write; the session's move among the funnel's open ones, in their
    own slot, is the one send to another node (on a single server it rides in
    the write's round trip)."""
    api("POST", f"/api/v1/subscribers/{M}/points", {"points": 1500, "source": "topup", "reference": "r1"})
    phone.dial()
    sends.clear()
    assert "Poin Anda: 1.500" in phone.type(1)
    node = services.r.nodes_manager.get_node_from_slot(services.r.keyslot(keys.profile(M))).name
    funnel = services.r.nodes_manager.get_node_from_slot(services.r.keyslot(keys.FUNNEL_OPEN)).name
    mine = [name for name, _ in sends if name == node]
    others = [name for name, _ in sends if name != node]
    assert mine == [node, node]  # read the session and account; write the session
    assert others == ([] if funnel == node else [funnel])


def test_a_batch_of_independent_writes_is_one_round_trip_per_node(services, sends):
    keys_ = spread(services.r, 3) * 4
    replies = store.batch(services.r, [("INCR", k) for k in keys_])
    assert replies == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert sorted(len(names) for _, names in sends) == [4, 4, 4]


def test_a_patient_cluster_client_still_answers(services):
    """The worker makes its clients patient (60 s for a lost node). redis-py's
    cluster client runs a command ``1 + retries`` times: a retry bounded by
    time (retries=-1) there ran none and every command answered None."""
    from ussd_app import jobs
    jobs.be_patient(services)
    assert services.r.patience == jobs.WORKER_PATIENCE
    assert services.r.zrangebyscore(keys.PENDING_REDEMPTIONS, "-inf", "+inf") == []
    assert services.r.set("ussd:test:patient", "1") is True
    assert store.roundtrip(services.r, ("GET", "ussd:test:patient")) == ["1"]
    assert services.raw.get("ussd:test:patient") == b"1"
    assert set(jobs.housekeeping(services)) >= {"lead_pushes"}  # the round the worker runs


class FakeTime:
    """``time`` for the cluster module: sleeping moves the clock, at once."""

    def __init__(self):
        self.now, self.slept = 1000.0, 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_a_request_waits_for_a_lost_node_once_not_per_call(services, monkeypatch):
    """A hop makes two or three calls; while a shard is down each would wait
    its own FAILOVER_WAIT (20-30 s, past the gateway's 15 s): within a
    request they share one."""
    import redis
    clock = FakeTime()
    monkeypatch.setattr(cluster, "time", clock)

    def lost(connection, *commands):
        raise redis.ConnectionError("the node is gone")
    with cluster.within(cluster.FAILOVER_WAIT):
        for _ in range(3):
            with pytest.raises(redis.ConnectionError):
                cluster.roundtrip(services.r, [("GET", "ussd:test:lost")], lost)
    assert 0 < clock.slept <= cluster.FAILOVER_WAIT
    clock.slept = 0.0
    with pytest.raises(redis.ConnectionError):  # outside a request: a call waits its own
        cluster.roundtrip(services.r, [("GET", "ussd:test:lost")], lost)
    assert clock.slept == pytest.approx(cluster.FAILOVER_WAIT)


def test_a_hop_and_an_sms_are_each_one_request_for_that_wait(client, monkeypatch):
    from ussd_app.sms import keywords
    from ussd_app.web import gateway
    seen = []
    hop, handle = gateway.ussd.hop, keywords.handle
    monkeypatch.setattr(gateway.ussd, "hop", lambda *a: seen.append(cluster._UNTIL.get()) or hop(*a))
    monkeypatch.setattr(keywords, "handle", lambda *a: seen.append(cluster._UNTIL.get()) or handle(*a))
    client.post("/ussd", data={"sessionId": "w1", "serviceCode": "*700#", "phoneNumber": "081234567890",
                               "text": ""})
    client.post("/sms/inbound", data={"from": "+6281234567890", "to": "62168", "text": "POIN",
                                      "id": "w1", "date": "2026-11-26 01:00:00"})
    assert len(seen) == 2 and all(until is not None for until in seen)
    assert cluster._UNTIL.get() is None  # and no longer after
