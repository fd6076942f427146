"""The Redis connection: a real server from REDIS_URL, or an embedded fake."""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any

import redis
from redis.backoff import AbstractBackoff
from redis.retry import Retry

from ussd_app.core import cluster, metrics
from ussd_app.core.errors import ConfigError

log = logging.getLogger(__name__)

_embedded_server = None

PATIENCE = 5.0  # seconds a command waits for Redis to come back (a restart, a failover)
PROTOCOL = 2
"""The RESP version every client speaks: :func:`roundtrip` reads raw replies,
in RESP2's shapes (HGETALL a flat list, ZSCORE a string); redis-py 8 would
otherwise speak RESP3 (maps, sets, doubles)."""


class Deadline(AbstractBackoff):
    """redis-py's exponential backoff (0.1 s doubling up to 1 s) that gives up
    once ``seconds`` have passed since the first failure of a call: past
    that, ``compute`` raises the error being handled (``Retry`` asks its
    backoff for the next pause with that error in hand).

    Bounded by time rather than by count: redis-py retries connecting inside
    its command retry, so counts multiply, while one deadline holds for both
    (the inner retry's first failure stands until the outer call resets it).
    The deadline is kept per thread: a pool's connections may share one
    ``Retry`` (``Redis.set_retry``), each used by one thread at a time.
    """

    def __init__(self, seconds: float, cap: float = 1.0, base: float = 0.05):
        self.seconds, self.cap, self.base = seconds, cap, base
        self.local = threading.local()

    def __deepcopy__(self, memo) -> Deadline:  # redis-py copies a client's Retry per connection
        return Deadline(self.seconds, self.cap, self.base)

    def reset(self) -> None:
        self.local.first = None

    def compute(self, failures: int) -> float:
        now = time.monotonic()
        first = getattr(self.local, "first", None)
        if first is None:
            first = self.local.first = now
        pause = min(self.cap, self.base * 2 ** failures)
        if now + pause > first + self.seconds:
            error = sys.exc_info()[1]
            if error is None:
                error = redis.exceptions.ConnectionError(f"Redis did not answer within {self.seconds:g} s")
            raise error
        return pause


class Patience(Retry):
    """Retry a command on a lost connection or a timeout, with exponential
    backoff, until ``seconds`` have passed since its first failure
    (:class:`Deadline`): redis-py's ``Retry`` and a backoff of ours, nothing else.

    OSError is retried too: that is how a refused connection reaches the
    connect retry (redis-py's default retries a refused connect not at all,
    and a pooled connection is checked outside the command's retry).
    """

    def __init__(self, seconds: float):
        super().__init__(Deadline(seconds), retries=-1, supported_errors=(
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError))
        self.seconds = seconds


def connect(url: str | None, decode: bool = True, wait_replicas: int = 0,
            wait_timeout_ms: int = 1000) -> redis.Redis:
    """A client for ``url``; without one, for the process-wide embedded fake.

    ``decode=False`` gives a bytes client on the same server (rq needs one).
    ``redis+cluster://h:p[,h:p...]`` (``rediss+cluster://`` with TLS) gives a
    Redis Cluster client (:func:`cluster.connect`). With ``wait_replicas``,
    each durable script (:class:`Script`) sent through :func:`roundtrip` is
    followed by ``WAIT`` for that many replicas (REDIS_WAIT_REPLICAS).
    Commands wait up to :data:`PATIENCE` seconds for a lost server
    (:func:`be_patient` changes it per client).
    """
    if cluster.is_cluster_url(url):
        return cluster.durable(cluster.connect(url, decode, PATIENCE), wait_replicas, wait_timeout_ms)
    if url and wait_replicas:
        return cluster.durable(connect(url, decode), wait_replicas, wait_timeout_ms)
    if url:
        return redis.Redis.from_url(url, decode_responses=decode, socket_timeout=5, protocol=PROTOCOL,
                                    health_check_interval=30, retry=Patience(PATIENCE))
    import fakeredis  # only needed for the one-process demo

    global _embedded_server
    if _embedded_server is None:
        log.warning("REDIS_URL is unset: using an embedded in-process fake Redis "
                    "(one-process demo only; data is lost on exit)")
        _embedded_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_embedded_server, decode_responses=decode, protocol=PROTOCOL)


def be_patient(r: redis.Redis, seconds: float) -> None:
    """Let ``r``'s commands (and :func:`roundtrip`'s) wait ``seconds`` for a lost server."""
    if cluster.is_cluster(r):
        cluster.be_patient(r, seconds)
    else:
        r.set_retry(Patience(seconds))


def where(r: redis.Redis) -> str:
    """``host:port`` of ``r``'s server (a cluster: of its primaries), for
    messages (never its password)."""
    if cluster.is_cluster(r):
        return ",".join(node.name for node in r.get_primaries())
    kw = r.connection_pool.connection_kwargs
    return kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}"


KEEPS = ("none", "rdb", "aof")  # weakest first


def persistence(r: redis.Redis) -> str:
    """How the server keeps data over a restart: ``aof``, ``rdb`` or ``none``.

    From ``INFO persistence`` (always allowed) and ``CONFIG GET save``; where
    CONFIG is disabled (managed Redis), a snapshot taken since the server
    started counts as ``rdb``. A server that knows no INFO (the embedded fake,
    which lives in this process's memory) keeps ``none``. A Redis Cluster
    keeps what its weakest primary keeps (each keeps its own shard), of those
    that answer: one away (a failover) leaves the others serving; none
    answering raises.
    """
    if cluster.is_cluster(r):
        kept, error = [], None
        for node in cluster.primaries(r):
            try:
                kept.append(persistence(node))
            except redis.RedisError as e:
                error = e
        if not kept:
            raise error or redis.ConnectionError("no primary of the cluster answered")
        return min(kept, key=KEEPS.index)
    try:
        info = r.info("persistence")
    except redis.ResponseError:
        return "none"
    if str(info.get("aof_enabled", "0")) == "1":
        return "aof"
    try:
        save = r.config_get("save").get("save")
    except redis.ResponseError:  # CONFIG renamed or disabled
        started = time.time() - int(r.info("server").get("uptime_in_seconds", 0))
        saved = int(info.get("rdb_last_save_time", 0) or 0)
        return "rdb" if int(info.get("rdb_saves", 0) or 0) > 0 or saved > started + 1 else "none"
    return "rdb" if save else "none"


LOST = {"REDIS_URL": "confirmed redemptions would be lost",
        "JOBS_REDIS_URL": "offer SMS held for the sending window and the retries of fulfilments "
                          "and lead pushes would be lost"}


def require_durable(r: redis.Redis, allow_volatile: bool, setting: str = "REDIS_URL") -> str:
    """The server's :func:`persistence`; ConfigError if it is ``none`` (and
    ``allow_volatile`` is false) or the server cannot be reached. ``setting``
    names it in the message (``JOBS_REDIS_URL``: the job queue's own)."""
    try:
        kept = persistence(r)
    except redis.RedisError as e:
        raise ConfigError(f"USSD_APP_ENV=production checks that Redis keeps its data, but Redis at "
                          f"{where(r)} ({setting}) did not answer: {type(e).__name__}: {e}") from None
    if kept == "none" and not allow_volatile:
        raise ConfigError(
            f"Redis at {where(r)} ({setting}) keeps no data over a restart (no append-only file, "
            f"no snapshots): {LOST[setting]}. Run it with appendonly yes and "
            f"appendfsync everysec (docs/operating.md: Redis that keeps its data), or set "
            f"ALLOW_VOLATILE_REDIS=1 to accept that")
    return kept


def require_plain(r: redis.Redis, setting: str = "JOBS_REDIS_URL") -> None:
    """ConfigError if ``r`` is a node of a Redis Cluster (the job queue's keys
    span hash slots: rq would meet MOVED). A server that does not answer now
    is left to the commands that need it."""
    try:
        enabled = r.info("cluster").get("cluster_enabled")
    except redis.RedisError:
        return
    if str(enabled) == "1":
        raise ConfigError(f"{setting} must be a plain Redis, but {where(r)} is a node of a Redis "
                          f"Cluster (the job queue's keys span hash slots)")


def revise(pipe, key: str) -> None:
    """Queue a fresh revision token for ``key``: whatever a process kept from
    the data it stands for is read again (see :func:`revision`)."""
    pipe.set(key, uuid.uuid4().hex)


def revision(r: redis.Redis, key: str, seen: str | None = None) -> str:
    """The revision token in ``key`` (``seen``: as the caller already read it).
    Data stored before it had one gets a first token, so it is kept too."""
    if seen is None:
        seen, = roundtrip(r, ("GET", key))
    if seen is None:
        r.set(key, uuid.uuid4().hex, nx=True)
        seen = r.get(key)
    return seen


class Kept:
    """This process's copies of data that rarely changes (reward definitions,
    campaigns), each with the revision token it was read at (:func:`revision`).
    One per ``Services``: passed in, never a module global."""

    def __init__(self):
        self._copies: dict[str, tuple[str, Any]] = {}

    def get(self, name: str, revision: str, default: Any = None) -> Any:
        """The copy of ``name`` read at ``revision``, else ``default``."""
        held = self._copies.get(name)
        return held[1] if held is not None and held[0] == revision else default

    def put(self, name: str, revision: str, data: Any) -> Any:
        self._copies[name] = (revision, data)
        return data


# Per pool, the connections it lent roundtrip() that no round trip is using now.
# Kept for the process's life, as its pools are (one per Services): a pool that
# went away with its connections would leave their sockets to the garbage
# collector, which closes them in no set order (ResourceWarning).
_idle: dict[Any, deque] = {}


@metrics.timed_redis
def roundtrip(r: redis.Redis, *commands: tuple) -> list:
    """The replies to ``commands``, sent in one write on one connection.

    For what a USSD hop reads and the session it writes, which are idempotent
    (reads, a SET of a whole document, scripts that act once per id):
    redis-py's own connection without the client, pipeline and pool layers
    around it, and without its reply callbacks (HGETALL answers a flat list:
    :func:`pairs`). The connection is borrowed from the pool's idle ones
    (:data:`_idle`), and put back after the replies are read: a pop and an append
    instead of the pool's lending checks (a third of a round trip's
    instructions, bench/hop_cost.py), and never more connections than
    round trips at once, under any server (a thread per request included).
    A connection the server has since closed is reconnected and the commands
    sent once more, then again with the client's backoff (:class:`Patience`)
    while the server is away. Every reply is read before an error reply is
    raised, so the connection stays in step; a script
    (:meth:`Script.command`) the server does not hold yet is loaded and sent
    once more (only the scripts that answered NOSCRIPT: a Redis Cluster node
    may hold one script of a batch and not the other).
    """
    if not commands:
        return []
    if cluster.ROUTED in r.__dict__:  # a cluster, or durable scripts to WAIT after
        routed = cluster.routed(r, commands, roundtrip)
        if routed is not None:
            return routed
    pool = r.connection_pool
    idle = _idle.get(pool)
    if idle is None:
        idle = _idle.setdefault(pool, deque())
    try:
        conn = idle.pop()
        if conn.pid != os.getpid():  # a forked child's copy of its parent's
            conn = pool.get_connection()
    except IndexError:
        conn = pool.get_connection()
    try:
        try:
            replies = _exchange(conn, commands)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            replies = conn.retry.call_with_retry(lambda: _exchange(conn, commands), _ignore)
        if any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
            _load_and_resend(r, conn, commands, replies)
    finally:
        idle.append(conn)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def batch(r: redis.Redis, commands: list) -> list:
    """The replies to ``commands`` that each act on their own, in any order
    (a batch job's scripts, one per subscriber): :func:`roundtrip`, but on a
    Redis Cluster one round trip per node, where a call with writes keeps
    its order across nodes."""
    if not commands:
        return []
    if cluster.ROUTED in r.__dict__:
        return cluster.batch(r, commands, roundtrip)
    return roundtrip(r, *commands)


def _load_and_resend(r: redis.Redis, conn, commands: tuple, replies: list) -> None:
    """Load the scripts that answered NOSCRIPT and send them again, those
    only: the others ran (a script sent again would answer 'dup', not 'ok').
    A WAIT that followed one of them is sent again after it: its first answer
    came before the script had written anything, so it vouched for nothing
    (a money write is confirmed only once the replicas asked for have it)."""
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
    for i in missing:
        commands[i].script.load(r)
    again = sorted(set(missing) | {i + 1 for i in missing
                                   if i + 1 < len(commands) and _is_wait(commands[i + 1])})
    for i, reply in zip(again, _exchange(conn, [commands[i] for i in again])):
        replies[i] = reply


def _is_wait(command) -> bool:
    name = command[0]
    return (name.decode() if isinstance(name, bytes) else name).upper() == "WAIT"


def _ignore(error: Exception) -> None:
    """A failed exchange has already dropped its connection (see :func:`_exchange`)."""


def pairs(flat: list) -> dict:
    """A flat ``[field, value, ...]`` reply (HGETALL through :func:`roundtrip`) as a dict."""
    return dict(zip(flat[::2], flat[1::2]))


def _exchange(conn, commands: tuple) -> list:
    try:
        conn.send_packed_command(conn.pack_commands(commands))
        replies = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.exceptions.ResponseError as e:
                replies.append(e)
        return replies
    except BaseException:
        conn.disconnect()  # the next send connects afresh
        raise


class ScriptCommand(tuple):
    """A script's EVALSHA as a command, knowing its script (to load it on NOSCRIPT)."""
    script: Script


class Script:
    """A Lua script sent once per server, then run by its SHA1 (EVALSHA).

    Every script here acts once per id or key it is given (money-like state
    changes carry an idempotency key), so it runs over :func:`roundtrip`, which
    may send it again after a dropped connection, as redis-py's own retries do.
    A ``durable`` script (points, redemptions, consent) is followed by WAIT
    when the client asks for replicas (:func:`connect`).
    """

    def __init__(self, source: str, durable: bool = False):
        self.source = source
        self.durable = durable  # money-like: WAIT for replicas after it (REDIS_WAIT_REPLICAS)
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, r: redis.Redis, keys: list[str], args: list):
        (reply,) = roundtrip(r, self.command(keys, args))
        return reply

    def command(self, keys: list[str], args: list) -> ScriptCommand:
        """The script's EVALSHA as a command for :func:`roundtrip` (which
        loads it where the server answers NOSCRIPT)."""
        command = ScriptCommand(("EVALSHA", self.sha, len(keys), *keys, *args))
        command.script = self
        return command

    def queue(self, pipe, keys: list[str], args: list) -> None:
        """Queue the script on a pipeline by SHA: the pipeline's caller runs
        :meth:`load` and retries once if the server answers NOSCRIPT."""
        pipe.execute_command(*self.command(keys, args))

    def load(self, r: redis.Redis) -> None:
        r.script_load(self.source)  # on a cluster: on every primary

