import os
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest
import redis
import requests
from werkzeug.serving import make_server

from ussd_app.core import cluster, store


def idle(r) -> list:
    return list(store._idle.get(r.connection_pool, ()))


def test_roundtrip_puts_its_connection_back_for_the_next(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert store.roundtrip(r, ("SET", "ussd:test:held", "1"), ("GET", "ussd:test:held")) == ["OK", "1"]
    (mine,) = idle(r)
    store.roundtrip(r, ("GET", "ussd:test:held"))
    assert idle(r) == [mine]
    threads = [threading.Thread(target=store.roundtrip, args=(r, ("PING",))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mine in idle(r) and len(idle(r)) <= 20  # one per round trip at once, each put back


def test_round_trips_at_once_each_have_their_own_connection(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.delete("ussd:test:gate")
    ids = []
    blocked = threading.Thread(target=lambda: ids.append(
        store.roundtrip(r, ("CLIENT", "ID"), ("BLPOP", "ussd:test:gate", 5))[0]))
    blocked.start()
    while not [c for c in r.client_list() if c["cmd"] == "blpop"]:
        pass
    (other,) = store.roundtrip(r, ("CLIENT", "ID"))
    store.roundtrip(r, ("RPUSH", "ussd:test:gate", "go"))
    blocked.join()
    assert ids and ids[0] != other
    assert len(idle(r)) == 2


def test_a_forked_childs_copy_is_not_used(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    store.roundtrip(r, ("PING",))
    (inherited,) = idle(r)
    inherited.pid = -1  # as a child process sees its parent's connection
    assert store.roundtrip(r, ("PING",)) == ["PONG"]
    assert idle(r) and inherited not in idle(r)


def test_an_error_reply_is_raised_after_every_reply_is_read(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.set("ussd:test:str", "x")
    try:
        store.roundtrip(r, ("LPUSH", "ussd:test:str", "y"), ("GET", "ussd:test:str"))
    except redis.exceptions.ResponseError:
        pass
    else:
        raise AssertionError("the WRONGTYPE reply was not raised")
    assert store.roundtrip(r, ("GET", "ussd:test:str")) == ["x"]  # still in step


def test_a_script_the_server_lost_is_loaded_and_sent_again(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    script = store.Script("return redis.call('INCR', KEYS[1])")
    r.script_flush()
    replies = store.roundtrip(r, ("SET", "ussd:test:n", "5"), script.command(["ussd:test:n"], []))
    assert replies == ["OK", 6]
    assert r.script_exists(script.sha) == [True]


def test_only_the_scripts_that_answered_noscript_are_sent_again(redis_url):
    """A Redis Cluster node may hold one script of a batch and not the other:
    the one that ran must not run again (it would answer 'dup', not 'ok')."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    held = store.Script("return redis.call('INCR', KEYS[1]) .. ' held'")
    lost = store.Script("return redis.call('INCR', KEYS[1]) .. ' lost'")
    r.script_flush()
    held.load(r)
    replies = store.roundtrip(r, held.command(["ussd:test:h"], []), lost.command(["ussd:test:l"], []))
    assert replies == ["1 held", "1 lost"]


def test_a_connection_the_server_closed_is_made_again(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    store.roundtrip(r, ("SET", "ussd:test:kept", "1"))
    (held,) = idle(r)
    (mine,) = store.roundtrip(r, ("CLIENT", "ID"))
    assert r.client_kill_filter(_id=mine) == 1  # as a Redis restart or an idle timeout does
    assert store.roundtrip(r, ("GET", "ussd:test:kept")) == ["1"]
    assert idle(r) == [held]  # the same connection, reconnected


@pytest.fixture
def replica(redis_url, free_port, tmp_path):
    """A replica of the test server, in sync."""
    primary = redis.Redis.from_url(redis_url)
    primary.config_set("repl-diskless-sync-delay", 0)  # Redis 7 waits 5 s for more replicas to join
    host, port = primary.connection_pool.connection_kwargs["host"], primary.connection_pool.connection_kwargs["port"]
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(free_port), "--bind", "127.0.0.1",
                             "--replicaof", host, str(port), "--save", "", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mine = redis.Redis(port=free_port)
    try:
        for _ in range(200):
            try:
                if mine.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        else:
            pytest.fail("the replica did not sync")
        yield mine
    finally:
        proc.terminate()
        proc.wait(5)


DURABLE = store.Script("return redis.call('INCR', KEYS[1])", durable=True)
PLAIN = store.Script("return redis.call('INCR', KEYS[1])")


def test_a_durable_script_waits_for_the_replicas_asked_for(redis_url, replica):
    r = store.connect(redis_url, wait_replicas=1, wait_timeout_ms=5000)
    r.script_flush()  # the path that was flaky: NOSCRIPT, the script loaded and sent again
    assert DURABLE(r, ["ussd:test:w"], []) == 1
    assert replica.get("ussd:test:w") == b"1"  # acknowledged before the answer came back
    assert store.roundtrip(r, ("GET", "ussd:test:w"), DURABLE.command(["ussd:test:w"], [])) == ["1", 2]


@pytest.fixture
def stopped(replica):
    """The replica paused (SIGSTOP): connected, but acknowledging nothing new."""
    pid = int(replica.info("server")["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield replica
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_script_sent_again_after_noscript_is_waited_for_again(redis_url, stopped):
    """Issue 19.14: the script answered NOSCRIPT, so the WAIT sent with it
    answered before anything was written; the script sent again alone was
    confirmed although no replica has it. Its WAIT goes again after it."""
    r = store.connect(redis_url, wait_replicas=1, wait_timeout_ms=200)
    r.script_flush()
    with pytest.raises(cluster.NotReplicated, match="acknowledged by 0 of 1 replicas"):
        DURABLE(r, ["ussd:test:flushed"], [])
    r.script_flush()
    with pytest.raises(cluster.NotReplicated):
        store.batch(r, [PLAIN.command(["ussd:test:f1"], []), DURABLE.command(["ussd:test:f2"], [])])


def test_too_few_replicas_is_an_error_not_a_confirmation(redis_url, replica):
    r = store.connect(redis_url, wait_replicas=2, wait_timeout_ms=20)
    with pytest.raises(cluster.NotReplicated, match=r"acknowledged by [01] of 2 replicas"):
        DURABLE(r, ["ussd:test:x"], [])
    assert PLAIN(r, ["ussd:test:y"], []) == 1  # not money-like: no WAIT
    assert store.connect(redis_url).get("ussd:test:x") == "1"  # written on the primary all the same


def test_a_batch_waits_after_its_durable_scripts_too(redis_url, replica):
    r = store.connect(redis_url, wait_replicas=2, wait_timeout_ms=20)
    assert store.batch(r, [PLAIN.command(["ussd:test:b1"], []), PLAIN.command(["ussd:test:b2"], [])]) == [1, 1]
    with pytest.raises(cluster.NotReplicated):
        store.batch(r, [PLAIN.command(["ussd:test:b1"], []), DURABLE.command(["ussd:test:b2"], [])])


def test_roundtrip_waits_out_a_redis_restart(tmp_path, free_port):
    server = RedisProcess(tmp_path, free_port)
    r = store.connect(server.url)
    store.roundtrip(r, ("SET", "ussd:test:restart", "1"))
    server.restart_after(0.5)  # SHUTDOWN (the AOF is kept), then started again
    try:
        assert store.roundtrip(r, ("GET", "ussd:test:restart")) == ["1"]
        assert r.get("ussd:test:restart") == "1"  # the client's own commands too
    finally:
        r.close()
        server.stop()


def test_patience_runs_out_when_redis_stays_away(free_port):
    r = store.connect(f"redis://127.0.0.1:{free_port}/0")  # nothing listens there
    store.be_patient(r, 0.3)
    for call in (lambda: store.roundtrip(r, ("PING",)), r.ping):
        try:
            call()
        except redis.ConnectionError:
            pass
        else:
            raise AssertionError("a command to no server answered")


def test_a_thread_per_request_server_holds_few_connections(config, redis_url):
    """``ussd-app run`` serves each request on a new thread: 1,000 hops must
    not leave a Redis connection per thread behind."""
    name = "hops-" + uuid.uuid4().hex[:8]
    from ussd_app import create_app

    app = create_app({**config, "REDIS_URL": f"{redis_url}?client_name={name}"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base, http = f"http://127.0.0.1:{server.server_port}", requests.Session()
    try:
        hops, session = 0, None
        journey = ["", "1", "1*0", "1*0*1", "1*0*1*00"]
        while hops < 1000:
            session = uuid.uuid4().hex
            for text in journey:
                resp = http.post(base + "/ussd", data={"sessionId": session, "serviceCode": "*700#",
                                                      "phoneNumber": "081234567890", "text": text})
                assert resp.status_code == 200 and resp.text[:4] in ("CON ", "END ")
                hops += 1
        with redis.Redis.from_url(redis_url) as admin:
            clients = [c for c in admin.client_list() if c["name"] == name]
        assert len(clients) <= 4, f"{len(clients)} Redis connections after {hops} hops"
    finally:
        server.shutdown()
        server.server_close()
        http.close()
        close(app)


def close(app) -> None:
    """Close an app's Redis connections now (see the ``app`` fixture)."""
    app.extensions["ussd"].r.close()
    app.extensions["ussd"].raw.close()


class RedisProcess:
    """A redis-server of the test's own, with an append-only file, restartable."""

    def __init__(self, tmp_path, port: int):
        self.argv = [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                     "--dir", str(tmp_path), "--save", "", "--appendonly", "yes"]
        self.url = f"redis://127.0.0.1:{port}/0"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with redis.Redis.from_url(self.url) as client:
            for _ in range(200):
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def restart_after(self, seconds: float) -> None:
        with redis.Redis.from_url(self.url) as client:
            try:
                client.shutdown()
            except redis.ConnectionError:
                pass
        self.proc.wait(10)
        threading.Timer(seconds, self.start).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class TestARedemptionWithReplicasAskedFor:
    @pytest.fixture
    def config(self, config):
        return {**config, "REDIS_WAIT_REPLICAS": 1, "REDIS_WAIT_TIMEOUT_MS": 2000}

    def test_is_not_confirmed_while_its_replica_is_stopped_and_the_scripts_flushed(
            self, replica, services, phone):
        """Issue 19.14 end to end: the replica paused, SCRIPT FLUSH, then the
        subscriber confirms a redemption: it is not confirmed to them (the
        store-level test above is the one that failed before the fix: here a
        later durable write of the same hop also meets the paused replica)."""
        import math

        from ussd_app.loyalty import points, rewards

        m = "+6281234567890"
        points.earn(services.r, m, 1000, "topup", "t", math.inf, services.clock())
        rewards.put(services.r, rewards.validate("PULSA10", {
            "name": "Pulsa Rp10.000", "category": "pulsa", "points": 100, "fulfilment": "airtime",
            "stock": 5}))
        phone.dial("2*1*1*1")  # rewards, category, reward, redeem: the confirmation
        assert "1" in phone.screen and not phone.end, phone.screen
        pid = int(replica.info("server")["process_id"])
        os.kill(pid, signal.SIGSTOP)
        try:
            services.r.script_flush()
            phone.type(1)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert "diproses" not in phone.screen, phone.screen
