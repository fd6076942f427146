"""A WSGI app served over granian's RSGI interface, each request read whole
before a thread runs the app.

Under granian's WSGI interface the app's thread reads the body itself, as the
client sends it: eight clients sending headers and then a trickle of a body
held both web workers' threads and froze every hop (issue 19.7). Here the
body is read on the worker's event loop, which waits on any number of
clients at once, with a deadline (``HTTP_BODY_TIMEOUT``: 408 after it) and a
size limit (413 over it); only a request that has fully arrived takes one of
the worker's threads. The app sees an ordinary WSGI environ.
"""
from __future__ import annotations

import asyncio
import io
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

_BASE = {"SCRIPT_NAME": "", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
         "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
         "wsgi.input_terminated": True}
_PLAIN = [("content-type", "text/plain; charset=utf-8"), ("connection", "close")]


class TooLarge(Exception):
    pass


class Buffered:
    """``Buffered(wsgi_app)`` is an RSGI app (``granian --interface rsgi``)."""

    def __init__(self, wsgi, body_seconds: float = 5.0, max_body: int = 1024 * 1024, threads: int = 0):
        self.wsgi = wsgi
        self.body_seconds = body_seconds
        self.max_body = max_body
        # threads=0: the app runs on the event loop's thread, one request at a
        # time (as one WSGI thread per worker did), without a hand-over to a
        # thread and back for each request (bench/run.py: that cost a hop ~70 us).
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi") if threads else None

    async def __rsgi__(self, scope, proto) -> None:
        if scope.proto != "http":  # websockets: none served (the Procfile says --no-ws)
            return
        headers = scope.headers
        length = headers.get("content-length")
        try:
            if length is not None and int(length) > self.max_body:
                raise TooLarge
            if length == "0" or (length is None and "transfer-encoding" not in headers):
                body = b""  # nothing to wait for (a GET)
            else:
                async with asyncio.timeout(self.body_seconds):  # cheaper than wait_for (no task)
                    body = await (proto() if length is not None else self._chunked(proto))
        except TooLarge:
            proto.response_bytes(413, _PLAIN, b"request body too large\n")
            return
        except ValueError:
            proto.response_bytes(400, _PLAIN, b"bad Content-Length\n")
            return
        except (TimeoutError, asyncio.TimeoutError):
            log.warning("a request's body was not in after %g s (HTTP_BODY_TIMEOUT): 408 to %s %s",
                        self.body_seconds, scope.method, scope.path[:80])
            proto.response_bytes(408, _PLAIN, b"request body not received in time\n")
            return
        except Exception as e:  # the client went away while sending
            log.info("a request's body could not be read: %s", type(e).__name__)
            return
        if self.pool is None:
            status, headers, out = self._call(scope, body)
        else:
            status, headers, out = await asyncio.get_running_loop().run_in_executor(
                self.pool, self._call, scope, body)
        proto.response_bytes(status, headers, out)

    async def _chunked(self, proto) -> bytes:
        """A body without Content-Length, up to the limit."""
        parts, size = [], 0
        async for chunk in proto:
            size += len(chunk)
            if size > self.max_body:
                raise TooLarge
            parts.append(chunk)
        return b"".join(parts)

    def _call(self, scope, body: bytes) -> tuple[int, list, bytes]:
        """The WSGI app, in one of the pool's threads: status, headers, body."""
        environ = self.environ(scope, body)
        started = []

        def start_response(status, headers, exc_info=None):
            started[:] = [int(status.split(" ", 1)[0]), headers]
        try:
            result = self.wsgi(environ, start_response)
            try:
                out = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            log.exception("the app raised outside its own error handling")
            return 500, _PLAIN, b"internal error\n"
        return started[0], started[1], out

    @staticmethod
    def environ(scope, body: bytes) -> dict:
        host, _, port = scope.server.rpartition(":")
        client, _, client_port = scope.client.rpartition(":")
        environ = {**_BASE, "REQUEST_METHOD": scope.method,
                   # PEP 3333: the path's bytes as latin-1 (granian gives it decoded as UTF-8)
                   "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
                   "QUERY_STRING": scope.query_string, "SERVER_NAME": host, "SERVER_PORT": port,
                   "SERVER_PROTOCOL": "HTTP/" + scope.http_version, "REMOTE_ADDR": client.strip("[]"),
                   "REMOTE_PORT": client_port, "wsgi.url_scheme": scope.scheme,
                   "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        for name, value in scope.headers.items():
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
            elif name != "content-length":
                key = "HTTP_" + name.upper().replace("-", "_")
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ
