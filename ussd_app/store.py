"""The Redis connection: a real server from REDIS_URL, or an embedded fake."""
from __future__ import annotations

import hashlib
import logging
import uuid

import redis

log = logging.getLogger(__name__)

_embedded_server = None


def connect(url: str | None, decode: bool = True) -> redis.Redis:
    """A client for ``url``; without one, for the process-wide embedded fake.

    ``decode=False`` gives a bytes client on the same server (rq needs one).
    """
    if url:
        return redis.Redis.from_url(url, decode_responses=decode,
                                    socket_timeout=5, health_check_interval=30)
    import fakeredis  # only needed for the one-process demo

    global _embedded_server
    if _embedded_server is None:
        log.warning("REDIS_URL is unset: using an embedded in-process fake Redis "
                    "(one-process demo only; data is lost on exit)")
        _embedded_server = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=_embedded_server, decode_responses=decode)


def revise(pipe, key: str) -> None:
    """Queue a fresh revision token for ``key``: whatever a process kept from
    the data it stands for is read again (see :func:`revision`)."""
    pipe.set(key, uuid.uuid4().hex)


def revision(r: redis.Redis, key: str, seen: str | None = None) -> str:
    """The revision token in ``key`` (``seen``: as the caller already read it).
    Data stored before it had one gets a first token, so it is kept too."""
    if seen is None:
        seen = r.get(key)
    if seen is None:
        r.set(key, uuid.uuid4().hex, nx=True)
        seen = r.get(key)
    return seen


def roundtrip(r: redis.Redis, *commands: tuple) -> list:
    """The replies to ``commands``, sent in one write on one pooled connection.

    For the USSD hop's session load and save: redis-py's own connection without
    the client and pipeline layers around it, about half their instructions per
    round trip (bench/hop_cost.py). The pool hands out a connection only after
    checking the server has not closed it. Every reply is read before an error
    reply is raised, so the connection stays in step.
    """
    pool = r.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command(conn.pack_commands(commands))
        replies = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.exceptions.ResponseError as e:
                replies.append(e)
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class Script:
    """A Lua script sent once per server, then run by its SHA1 (EVALSHA)."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, r: redis.Redis, keys: list[str], args: list):
        try:
            return r.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return r.eval(self.source, len(keys), *keys, *args)

    def command(self, keys: list[str], args: list) -> tuple:
        """The script's EVALSHA as a command for :func:`roundtrip`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def queue(self, pipe, keys: list[str], args: list) -> None:
        """Queue the script on a pipeline by SHA: the pipeline's caller runs
        :meth:`load` and retries once if the server answers NOSCRIPT."""
        pipe.execute_command(*self.command(keys, args))

    def load(self, r: redis.Redis) -> None:
        r.script_load(self.source)
