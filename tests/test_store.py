import shutil
import subprocess
import threading
import time

import pytest
import redis

from ussd_app.core import cluster, store


def test_roundtrip_keeps_one_connection_per_thread(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert store.roundtrip(r, ("SET", "ussd:test:held", "1"), ("GET", "ussd:test:held")) == ["OK", "1"]
    mine = store._held.__dict__[r.connection_pool]
    store.roundtrip(r, ("GET", "ussd:test:held"))
    assert store._held.__dict__[r.connection_pool] is mine
    theirs = []
    t = threading.Thread(target=lambda: (store.roundtrip(r, ("PING",)),
                                         theirs.append(store._held.__dict__[r.connection_pool])))
    t.start()
    t.join()
    assert theirs and theirs[0] is not mine


def test_a_forked_childs_copy_is_not_used(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    store.roundtrip(r, ("PING",))
    inherited = store._held.__dict__[r.connection_pool]
    inherited.pid = -1  # as a child process sees its parent's connection
    assert store.roundtrip(r, ("PING",)) == ["PONG"]
    assert store._held.__dict__[r.connection_pool] is not inherited


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


def test_a_held_connection_the_server_closed_is_made_again(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    store.roundtrip(r, ("SET", "ussd:test:kept", "1"))
    held = store._held.__dict__[r.connection_pool]
    (mine,) = store.roundtrip(r, ("CLIENT", "ID"))
    assert r.client_kill_filter(_id=mine) == 1  # as a Redis restart or an idle timeout does
    assert store.roundtrip(r, ("GET", "ussd:test:kept")) == ["1"]
    assert store._held.__dict__[r.connection_pool] is held  # the same connection, reconnected


@pytest.fixture
def replica(redis_url, free_port, tmp_path):
    """A replica of the test server, in sync."""
    primary = redis.Redis.from_url(redis_url)
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
    assert DURABLE(r, ["ussd:test:w"], []) == 1
    assert replica.get("ussd:test:w") == b"1"  # acknowledged before the answer came back
    assert store.roundtrip(r, ("GET", "ussd:test:w"), DURABLE.command(["ussd:test:w"], [])) == ["1", 2]


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
