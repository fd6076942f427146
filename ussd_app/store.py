"""The Redis connection: a real server from REDIS_URL, or an embedded fake."""
from __future__ import annotations

import hashlib
import logging

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

    def queue(self, pipe, keys: list[str], args: list) -> None:
        """Queue the script on a pipeline by SHA: the pipeline's caller runs
        :meth:`load` and retries once if the server answers NOSCRIPT."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    def load(self, r: redis.Redis) -> None:
        r.script_load(self.source)
