"""Every outbound call has a total deadline (issue 19.8): a partner that
answers one header line at a time is cut off when the call's deadline has
passed, not when it stops talking."""
import time

import pytest

from slowhttp import Trickle
from ussd_app.core import http
from ussd_app.loyalty import fulfilment
from ussd_app.sms import providers


@pytest.fixture
def trickle():
    server = Trickle(interval=0.3, lines=40)  # 12 s of answer, a byte every 0.3 s
    yield server
    server.close()


def timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except Exception as e:  # noqa: BLE001 - the test looks at what it was
        return e, time.monotonic() - started


def test_the_client_cuts_a_trickling_answer_at_its_deadline(trickle):
    got, took = timed(lambda: http.Client(1.0).post(trickle.url, b"{}", {}))
    assert isinstance(got, http.TimedOut) and 0.9 < took < 1.6, (got, took)


def test_an_answer_in_time_is_read_and_its_connection_kept():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    seen = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            seen.append((self.client_address[1], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = http.Client(2.0)
        url = f"http://127.0.0.1:{server.server_port}/x?y=1"
        assert [client.post(url, b"a", {}), client.post(url, b"b", {})] == [http.Answer(201, b"ok")] * 2
        assert [body for _, body in seen] == [b"a", b"b"] and seen[0][0] == seen[1][0]  # one connection
        client.close()
    finally:
        server.shutdown()
        server.server_close()


def test_nothing_listening_is_unreachable_at_once():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got, took = timed(lambda: http.Client(5.0).post(f"http://127.0.0.1:{port}/", b"", {}))
    assert type(got) is http.Unreachable and took < 1


def test_a_trickling_fulfilment_provider_is_an_unknown_outcome_at_FULFILMENT_TIMEOUT(trickle):
    provider = fulfilment.HttpProvisioning(trickle.url, timeout=1.0)
    reward = type("Reward", (), {"code": "PULSA5", "fulfilment": "airtime"})()
    got, took = timed(lambda: provider.provision("+6281234567890", reward, {"id": "r1", "quantity": 1}))
    assert got == fulfilment.Result("unknown", "provider timed out") and took < 1.6, (got, took)


def test_a_trickling_sms_provider_fails_the_send_at_its_timeout(trickle):
    sms = providers.AfricasTalking(trickle.url, "u", "k", timeout=1.0)
    got, took = timed(lambda: sms.deliver({"to": "+6281234567890", "text": "halo"}))
    assert isinstance(got, providers.DeliveryError) and "timed out" in str(got) and took < 1.6, (got, took)
