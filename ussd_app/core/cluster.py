"""Redis Cluster (``REDIS_URL=redis+cluster://host:port[,host:port...]``) and
WAIT for replicas after money-like writes (``REDIS_WAIT_REPLICAS``).

:func:`store.roundtrip` hands its commands here when the client is a cluster
or asks for replicas (:func:`routed`); otherwise it takes its own path, and
this module costs it one dict lookup (an ``isinstance`` on redis-py's
``RedisCluster``, whose bases include a typing Protocol, cost ~25k
instructions).

On a cluster the commands of one call are grouped by the node serving their
hash slot, and each group goes in one write on that node's connection,
through ``store.roundtrip`` on the node's own client (so the single-server
path, held connections and all, serves each node). A subscriber's keys share
the tag ``{msisdn}`` (the USSD session too), so a hop's reads and writes of
the subscriber go to one node in one round trip each. Global keys (catalog,
campaigns, indexes) live on whichever node serves them: a call that mixes
them is one round trip per node. Reads only: one group per node. With a
write: consecutive commands of one node go together and each group is sent
after the previous one answered, so the caller's order holds across nodes
(a pending marker before the stock it guards, a lead's index entry before
the consent).

While a failed primary is replaced (the cluster's ``cluster-node-timeout``
and an election), a call keeps trying with backoff for up to
:data:`FAILOVER_WAIT` seconds, reading the slot map anew each time; every
command sent this way is idempotent (``store.roundtrip``'s contract), so a
group sent again after a lost connection acts once.
"""
from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING
from urllib.parse import unquote

import redis
from redis.exceptions import (AskError, ClusterDownError, ConnectionError, MovedError,
                              NoScriptError, RedisClusterException, SlotNotCoveredError,
                              TimeoutError, TryAgainError)

from ussd_app.core.errors import ConfigError

if TYPE_CHECKING:
    from redis.cluster import ClusterNode, RedisCluster

ROUTED = "ussd_routed"
"""The attribute :func:`connect` and :func:`durable` set on a client whose
``store.roundtrip`` calls come here (a plain client has none: one dict lookup)."""

SCHEMES = ("redis+cluster://", "rediss+cluster://")
FAILOVER_WAIT = 10.0
"""Seconds a call keeps trying while its node fails over (the gateway waits ~15 s)."""

HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\],/@]+):([0-9]{1,5})$")
# Commands that read only: a call made of these alone is sent to every node at once.
READS = frozenset({"GET", "MGET", "HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN", "HVALS", "HKEYS",
                   "EXISTS", "TTL", "PTTL", "TYPE", "STRLEN", "LRANGE", "LLEN", "LINDEX",
                   "SMEMBERS", "SISMEMBER", "SCARD", "ZSCORE", "ZRANGE", "ZRANGEBYSCORE",
                   "ZCARD", "ZCOUNT", "MEMORY"})
# Commands without a key: they go where the command before them went.
KEYLESS = frozenset({"PING", "WAIT", "ECHO", "TIME", "INFO", "CLIENT", "SCRIPT", "DBSIZE",
                     "ASKING", "READONLY"})
FAILOVER_ERRORS = (ConnectionError, TimeoutError, ClusterDownError, TryAgainError, MovedError,
                   SlotNotCoveredError)


class NotReplicated(redis.exceptions.RedisError):
    """A money-like write reached its primary but not the replicas asked for
    in time: it is not confirmed (the caller answers with an error)."""


def is_cluster_url(url: str | None) -> bool:
    return bool(url) and url.startswith(SCHEMES)


def connect(url: str, decode: bool = True, wait: float = FAILOVER_WAIT):
    """A cluster client from ``redis+cluster://[user:password@]host:port[,host:port...]``:
    redis-py's ``RedisCluster`` with :class:`RidesOutFailover`.

    redis-py reads the slot map as it builds the client: while no startup node
    answers (or the cluster is not ok), it is tried again with backoff for
    ``wait`` seconds, then ConfigError names the nodes (never the password)."""
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.cluster import RedisCluster
    from redis.retry import Retry

    cls = type("Cluster", (RidesOutFailover, RedisCluster), {})
    found, deadline, delay = options(url), None, 0.05
    while True:
        try:
            client = cls(**found, decode_responses=decode, socket_timeout=5, socket_connect_timeout=2,
                         protocol=2,  # store.PROTOCOL: store.roundtrip reads RESP2's shapes
                         retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3))
            break
        except (RedisClusterException, redis.RedisError) as e:
            try:
                deadline, delay = _pause(deadline, delay, wait)
            except (RedisClusterException, redis.RedisError):
                nodes = ",".join(n.name for n in found["startup_nodes"])
                raise ConfigError(f"Redis Cluster at {nodes} (REDIS_URL) cannot be reached: "
                                  f"{type(e).__name__}: {e}") from None
    setattr(client, ROUTED, True)
    return client


def is_cluster(r) -> bool:
    """A cluster client (one dict lookup: an ``isinstance`` on redis-py's
    ``RedisCluster`` costs a hop far more, see the module's docstring)."""
    return "nodes_manager" in r.__dict__


def primaries(r: RedisCluster) -> list:
    """A client for each primary of the cluster (what each node keeps is its own)."""
    return [r.get_redis_connection(node) for node in r.get_primaries()]


def options(url: str) -> dict:
    """The startup nodes, TLS and credentials a cluster URL names."""
    from redis.cluster import ClusterNode

    scheme, rest = url.split("://", 1)
    rest = rest.split("?", 1)[0]
    auth, _, rest = rest.rpartition("@")
    hosts, _, db = rest.partition("/")
    if db not in ("", "0"):
        raise ConfigError("REDIS_URL: a Redis Cluster has only database 0")
    nodes = []
    for part in hosts.split(","):
        found = HOST_PORT.match(part.strip())
        if not found:
            raise ConfigError(f"REDIS_URL: {part.strip()!r} is not host:port "
                              "(redis+cluster://host:port[,host:port...])")
        nodes.append(ClusterNode(found.group(1).strip("[]"), int(found.group(2))))
    user, _, password = auth.partition(":")
    return {"startup_nodes": nodes, "ssl": scheme == "rediss+cluster",
            "username": unquote(user) or None, "password": unquote(password) or None}


class RidesOutFailover:
    """Mixed into redis-py's ``RedisCluster`` (:func:`connect`): a command
    whose node is gone is sent again, with backoff and the slot map read
    anew, for up to :data:`FAILOVER_WAIT` seconds (redis-py alone tries a
    few times at once, all within the election). A pipeline's execute does
    the same with the commands it had queued (they serve web requests too:
    a subscriber's PUT, an SMS quote, delivery reports); redis-py sends a
    pipeline again after a lost connection as well, so ours are written to
    bear it (idempotent, or a count off by one at worst)."""

    patience = FAILOVER_WAIT  # seconds; a worker waits longer (:func:`be_patient`)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._refresh_lock = threading.Lock()
        self._refreshed = 0.0

    def execute_command(self, *args, **kwargs):
        deadline, delay = None, 0.02
        while True:
            try:
                return super().execute_command(*args, **kwargs)
            except FAILOVER_ERRORS:
                deadline, delay = _pause(deadline, delay, self.patience)
            except RedisClusterException as e:  # no node answered as redis-py read the slot map
                if not isinstance(e.__cause__, FAILOVER_ERRORS):
                    raise
                deadline, delay = _pause(deadline, delay, self.patience)
            self.refresh()

    def pipeline(self, transaction=None, shard_hint=None):
        return Replayed(super().pipeline(transaction=transaction, shard_hint=shard_hint), self)

    def refresh(self) -> None:
        """Read the slot map again (at most every 50 ms, whichever thread asks)."""
        with self._refresh_lock:
            if time.monotonic() - self._refreshed < 0.05:
                return
            try:
                self.nodes_manager.initialize()
            except (RedisClusterException, redis.RedisError):
                pass  # no node answered: the next try reads it again
            self._refreshed = time.monotonic()


class Replayed:
    """A cluster pipeline (:meth:`RidesOutFailover.pipeline`) whose execute
    rides out a failover: each call queued on it is kept, and after a failed
    execute made again on the pipeline (emptied by redis-py's execute) once
    the slot map is read anew. Only the pipeline's public methods are used;
    every other attribute is the pipeline's own."""

    def __init__(self, pipe, client: RidesOutFailover):
        self.pipe, self.client, self.calls = pipe, client, []

    def __getattr__(self, name: str):
        attr = getattr(self.pipe, name)
        if not callable(attr):
            return attr

        def queued(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            result = attr(*args, **kwargs)
            return self if result is self.pipe else result  # chained calls stay here
        return queued

    def __len__(self) -> int:
        return len(self.pipe)

    def __bool__(self) -> bool:  # an empty pipeline is still one (``pipe or r.pipeline()``)
        return True

    def __enter__(self) -> Replayed:
        return self

    def __exit__(self, *exc) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = []
        self.pipe.reset()

    def execute(self, raise_on_error: bool = True) -> list:
        calls, self.calls = self.calls, []
        deadline, delay = None, 0.02
        while True:
            try:
                return self.pipe.execute(raise_on_error)
            except FAILOVER_ERRORS:
                deadline, delay = _pause(deadline, delay, self.client.patience)
            except RedisClusterException as e:
                if not isinstance(e.__cause__, FAILOVER_ERRORS):
                    raise
                deadline, delay = _pause(deadline, delay, self.client.patience)
            self.client.refresh()
            self.pipe.reset()
            for name, args, kwargs in calls:
                getattr(self.pipe, name)(*args, **kwargs)


def be_patient(r: RedisCluster, seconds: float) -> None:
    """Let ``r``'s commands (and ``roundtrip``'s) keep trying ``seconds`` for a
    lost node. Not redis-py's ``set_retry``: its cluster client runs a command
    ``1 + retries`` times, so a retry bounded by time (retries=-1) would run
    none and answer every command with None."""
    r.patience = seconds


_UNTIL: ContextVar[float | None] = ContextVar("ussd_cluster_until", default=None)


@contextmanager
def within(seconds: float):
    """Bound the waiting for lost nodes of everything Redis does inside (a
    gateway's request): ``seconds`` in all, not per command. A hop makes two
    or three calls, each of which would otherwise wait its own
    :data:`FAILOVER_WAIT` while a shard is down: 20-30 s, past the gateway's
    15, with a web worker's thread held all along."""
    token = _UNTIL.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _UNTIL.reset(token)


def _pause(deadline: float | None, delay: float, wait: float = FAILOVER_WAIT) -> tuple[float, float]:
    """Sleep before the next try; raise the error being handled once past the
    deadline (``wait`` seconds after the first failure, or the end of the
    enclosing :func:`within`, whichever comes first)."""
    now = time.monotonic()
    deadline = deadline or now + wait
    until = _UNTIL.get()
    if until is not None and until < deadline:
        deadline = until
    if now >= deadline:
        raise
    time.sleep(min(delay, deadline - now))
    return deadline, min(delay * 2, 0.5)


# -- WAIT after durable scripts ----------------------------------------------------
class _Wait(tuple):
    """A WAIT this module added (its reply is checked, then left out)."""


def durable(client, replicas: int, timeout_ms: int):
    """Have :func:`store.roundtrip` follow each durable script with WAIT."""
    if replicas:
        client.wait_replicas, client.wait_timeout_ms = replicas, timeout_ms
        setattr(client, ROUTED, True)
    return client


def _is_durable(command) -> bool:
    script = getattr(command, "script", None)
    return script is not None and script.durable


def _unwaited(commands) -> bool:
    return any(_is_durable(c) and not (i + 1 < len(commands) and isinstance(commands[i + 1], _Wait))
               for i, c in enumerate(commands))


def _waited(r, commands, send) -> list:
    """The replies to ``commands``, each durable script followed by WAIT on
    its connection; raises :class:`NotReplicated` if too few replicas acknowledged."""
    wanted, timeout = r.wait_replicas, r.wait_timeout_ms
    sent = []
    for command in commands:
        sent.append(command)
        if _is_durable(command):
            sent.append(_Wait(("WAIT", wanted, timeout)))
    replies = []
    for command, reply in zip(sent, send(r, *sent)):
        if isinstance(command, _Wait):
            if reply < wanted:
                raise NotReplicated(f"written, but acknowledged by {reply} of {wanted} replicas "
                                    f"within {timeout} ms (REDIS_WAIT_REPLICAS)")
        else:
            replies.append(reply)
    return replies


def routed(r, commands: tuple, send) -> list | None:
    """The replies where ``send`` (``store.roundtrip``) cannot take its own
    path: WAIT to add, or a cluster; else None. (``store.roundtrip`` comes
    here only for a client marked :data:`ROUTED`.)"""
    if r.__dict__.get("wait_replicas") and _unwaited(commands):
        return _waited(r, commands, send)
    if is_cluster(r):
        return roundtrip(r, commands, send)
    return None


def batch(r, commands: list, send) -> list:
    """``store.batch``: on a cluster one group per node, whatever the
    commands; WAIT after durable scripts as :func:`routed` adds it."""
    def independent(client, *commands):
        if is_cluster(client):
            return roundtrip(client, commands, send, independent=True)
        return send(client, *commands)
    if r.__dict__.get("wait_replicas") and _unwaited(commands):
        return _waited(r, commands, independent)
    return independent(r, *commands)


# -- the cluster branch of store.roundtrip -------------------------------------------
def _name(command) -> str:
    name = command[0]
    return (name.decode() if isinstance(name, bytes) else name).upper()


def _key(command, name: str):
    """The key that routes ``command`` (None: a script without keys)."""
    if name in ("EVALSHA", "EVAL"):
        return command[3] if int(command[2]) else None
    return command[1]


def _node(r: RedisCluster, key) -> ClusterNode:
    """The primary serving ``key``'s slot (None: any), from redis-py's slot
    map (``RedisCluster.get_node_from_key``). A map gone stale answers MOVED,
    and the call reads it anew (:func:`_send`)."""
    if key is None:
        return r.get_default_node()
    return r.get_node_from_key(key)


def _groups(r: RedisCluster, commands, independent: bool = False
            ) -> list[tuple[ClusterNode, list[int]]]:
    """(node, indexes of its commands) in the order to send them: one group
    per node for reads or ``independent`` commands, else runs of one node."""
    keys, slots, names, key, slot = [], [], [], None, None
    for command in commands:
        name = _name(command)
        if name not in KEYLESS:
            key = _key(command, name)
            slot = None if key is None else r.keyslot(key)
        keys.append(key)
        slots.append(slot)
        names.append(name)
    if slots.count(slots[0]) == len(slots):  # one slot (a hop's own work): one group
        return [(_node(r, keys[0]), list(range(len(commands))))]
    nodes = [_node(r, k) for k in keys]
    reads = independent or all(name in READS for name in names)
    groups: list[tuple[ClusterNode, list[int]]] = []
    for i, node in enumerate(nodes):
        same = ([g for g in groups if g[0] is node] if reads
                else groups[-1:] if groups and groups[-1][0] is node else [])
        if same:
            same[0][1].append(i)
        else:
            groups.append((node, [i]))
    return groups


def roundtrip(r: RedisCluster, commands, send, deadline: float | None = None,
              independent: bool = False) -> list:
    """``store.roundtrip`` on a cluster: each node's commands through ``send``
    on that node's client (see the module's docstring); ``independent``:
    ``store.batch``, one group per node whatever the commands."""
    groups = _groups(r, commands, independent)
    if len(groups) == 1:
        return _send(r, groups[0][0], commands, send, deadline, independent)
    replies = [None] * len(commands)
    for node, indexes in groups:
        group = [commands[i] for i in indexes]
        for i, reply in zip(indexes, _send(r, node, group, send, deadline, independent)):
            replies[i] = reply
    return replies


def _send(r: RedisCluster, node: ClusterNode, commands, send, deadline: float | None,
          independent: bool = False) -> list:
    delay = 0.02
    while True:
        try:
            return send(r.get_redis_connection(node), *commands)
        except AskError as e:
            if not isinstance(e, MovedError):  # a slot moving between nodes (resharding)
                return _one_by_one(r, commands)
            deadline, delay = _pause(deadline, delay, r.patience)
        except FAILOVER_ERRORS:
            deadline, delay = _pause(deadline, delay, r.patience)
        r.refresh()
        groups = _groups(r, commands, independent)
        if len(groups) > 1:  # the slots were split between nodes meanwhile
            return roundtrip(r, commands, send, deadline, independent)
        node = groups[0][0]


def _one_by_one(r: RedisCluster, commands) -> list:
    """Each command through redis-py's own client, which follows ASK
    redirections while a slot migrates (rare: resharding only)."""
    replies, node = [], None
    for command in commands:
        if _name(command) in KEYLESS:
            replies.append(r.execute_command(*command, target_nodes=node) if node else
                           r.execute_command(*command))
            continue
        key = _key(command, _name(command))
        node = _node(r, key) if key is not None else None
        try:
            replies.append(r.execute_command(*command))
        except NoScriptError:
            command.script.load(r)
            replies.append(r.execute_command(*command))
    return replies
