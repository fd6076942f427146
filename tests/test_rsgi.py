"""web/rsgi.Buffered, the Procfile's adapter, without a server: what the WSGI
app sees, and what a client too slow or too large gets."""
import asyncio

from ussd_app.web.rsgi import Buffered


class Headers:
    def __init__(self, pairs):
        self.pairs = pairs

    def get(self, key, default=None):
        return next((v for k, v in self.pairs if k == key), default)

    def __contains__(self, key):
        return any(k == key for k, _ in self.pairs)

    def items(self):
        return list(self.pairs)


class Scope:
    proto, http_version, scheme, method = "http", "1.1", "http", "POST"
    server, client = "127.0.0.1:8000", "10.0.0.9:5555"

    def __init__(self, path="/ussd", query="", headers=()):
        self.path, self.query_string, self.headers = path, query, Headers(list(headers))


class Proto:
    def __init__(self, chunks=(), delay=0.0):
        self.chunks, self.delay, self.sent = list(chunks), delay, None

    async def __call__(self):
        await asyncio.sleep(self.delay)
        return b"".join(self.chunks)

    def __aiter__(self):
        async def gen():
            for c in self.chunks:
                await asyncio.sleep(self.delay)
                yield c
        return gen()

    def response_bytes(self, status, headers, body):
        self.sent = (status, dict(headers), body)


def seen_by_app():
    seen = {}

    def app(environ, start_response):
        seen.update(environ, body=environ["wsgi.input"].read())
        start_response("201 Created", [("X-A", "1")])
        return [b"o", b"k"]
    return app, seen


def run(adapter, scope, proto):
    asyncio.run(adapter.__rsgi__(scope, proto))
    return proto.sent


def test_the_app_sees_a_plain_wsgi_environ():
    app, seen = seen_by_app()
    scope = Scope(path="/ussd/é x", query="a=%20b", headers=[
        ("content-type", "application/x-www-form-urlencoded"), ("content-length", "5"),
        ("x-gateway-token", "t"), ("x-dup", "1"), ("x-dup", "2")])
    assert run(Buffered(app), scope, Proto([b"a=1&b"])) == (201, {"X-A": "1"}, b"ok")
    assert seen["body"] == b"a=1&b" and seen["CONTENT_LENGTH"] == "5"
    assert seen["PATH_INFO"] == "/ussd/é x".encode().decode("latin-1") and seen["QUERY_STRING"] == "a=%20b"
    assert (seen["CONTENT_TYPE"], seen["HTTP_X_GATEWAY_TOKEN"], seen["HTTP_X_DUP"]) == (
        "application/x-www-form-urlencoded", "t", "1,2")
    assert (seen["REQUEST_METHOD"], seen["SERVER_PORT"], seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == (
        "POST", "8000", "10.0.0.9", "http")


def test_a_chunked_body_is_read_whole_up_to_the_limit():
    app, seen = seen_by_app()
    chunked = [("transfer-encoding", "chunked")]
    assert run(Buffered(app), Scope(headers=chunked), Proto([b"ab", b"cd"]))[0] == 201
    assert seen["body"] == b"abcd"
    assert run(Buffered(app, max_body=3), Scope(headers=chunked), Proto([b"ab", b"cd"]))[0] == 413


def test_too_slow_is_408_and_too_large_is_413_and_the_app_never_runs():
    app, seen = seen_by_app()
    slow = run(Buffered(app, body_seconds=0.2), Scope(headers=[("content-length", "3")]), Proto([b"abc"], delay=5))
    assert slow[0] == 408 and slow[1]["connection"] == "close"
    large = run(Buffered(app, max_body=10), Scope(headers=[("content-length", "11")]), Proto())
    assert large[0] == 413 and not seen
