import threading

import redis

from ussd_app.core import store


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
