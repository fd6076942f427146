"""Outbound HTTP with a total deadline: partner webhooks, the fulfilment
provider, the SMS provider.

requests (and urllib3 under it) bound each read of the socket, not the call:
a server that sends one header line every 2 s never trips a 5 s timeout, and
held the worker for a minute (a webhook) or until rq's job timeout (a
provider), issue 19.8. Here a watchdog shuts the connection's socket down when
the call's deadline passes, whatever the server is doing, and the call raises
:class:`TimedOut`; the caller records an unknown outcome, as for any timeout.

One connection per host is kept between calls of a :class:`Client` (keep-alive,
as a requests Session did) and dropped after any error.
"""
from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass


class Unreachable(Exception):
    """No answer: refused, reset, a TLS or protocol error (never a secret in the message)."""


class TimedOut(Unreachable):
    """The whole call (connect, send, the answer's headers and body) took longer than its deadline."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class Client:
    """``Client(deadline).post(url, body, headers)``: one call, at most ``deadline`` seconds in all."""

    MAX_BODY = 256 * 1024  # of an answer: what a provider says back is small

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.kept = threading.local()  # (scheme, host, port) -> connection, per thread

    def post(self, url: str, body: bytes, headers: dict, read_body: bool = True) -> Answer:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unreachable("not an http(s) URL")
        where = (parts.scheme, parts.hostname, parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conns = self.kept.__dict__.setdefault("conns", {})
        conn = conns.pop(where, None)
        if conn is not None and _dropped(conn):  # the server closed it while it was kept
            conn.close()
            conn = None
        conn = conn or _connection(parts, self.deadline)
        expired = threading.Event()

        def cut():  # wakes whatever the call is blocked on: connect, send, recv
            expired.set()
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        timer = threading.Timer(self.deadline, cut)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(max(0.001, self.deadline - (time.monotonic() - started)))
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(self.MAX_BODY) if read_body else b""
            reusable = read_body and resp.isclosed() and not resp.will_close
        except (OSError, http.client.HTTPException, ValueError) as e:
            conn.close()
            if expired.is_set() or isinstance(e, TimeoutError):
                raise TimedOut(f"no whole answer within {self.deadline:g} s") from None
            raise Unreachable(type(e).__name__) from None
        finally:
            timer.cancel()
        if expired.is_set():
            # cut short: http.client takes the end of the stream for the end of
            # the headers (or of the body), so what was read cannot be trusted
            conn.close()
            raise TimedOut(f"no whole answer within {self.deadline:g} s")
        if reusable:
            conns[where] = conn
        else:
            conn.close()
        return Answer(resp.status, data)


    def close(self) -> None:
        """Close this thread's kept connections."""
        for conn in self.kept.__dict__.pop("conns", {}).values():
            conn.close()


def _dropped(conn) -> bool:
    """A kept connection the server has closed (or sent something unasked on) reads as ready."""
    try:
        return bool(select.select([conn.sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _connection(parts, deadline: float) -> http.client.HTTPConnection:
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=deadline,
                                           context=ssl.create_default_context())
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=deadline)
