"""One outbound SMS is one job: a failure retries that message alone, and a
message the provider accepted is never sent again (a real worker, an Africa's
Talking stub on loopback)."""
import threading
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ussd_app import jobs
from ussd_app.offers import campaigns, sending
from ussd_app.sms import outbound


class Stub(BaseHTTPRequestHandler):
    received: list = []
    fail_on: set = set()  # request numbers (1-based) answered 500

    def do_POST(self):
        form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        n = len(Stub.received) + 1
        Stub.received.append(form)
        self.send_response(500 if n in Stub.fail_on else 201)
        self.end_headers()
        self.wfile.write(b'{"SMSMessageData": {"Recipients": []}}')

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    Stub.received, Stub.fail_on = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/version1/messaging"
    server.shutdown()
    server.server_close()


@pytest.fixture
def config(config, stub):
    return {**config, "SMS_PROVIDER": "africastalking", "AFRICASTALKING_URL": stub, "JOBS_SYNC": False}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(outbound, "RETRY", (0, 0), raising=False)  # retries at once, for a burst worker


def delivered():
    """(number, text) of each request the provider accepted."""
    return [(f["to"], f["message"]) for i, f in enumerate(Stub.received, 1) if i not in Stub.fail_on]


def test_a_failure_part_way_resends_nothing_already_accepted(services):
    Stub.fail_on = {2}
    services.sms.send_many([services.sms.message(f"+62812000000{i}", f"offer {i}") for i in range(3)])
    jobs.work(services, burst=True)
    assert sorted(delivered()) == [(f"+62812000000{i}", f"offer {i}") for i in range(3)]
    assert len(Stub.received) == 4  # the failed one, once more


def test_each_message_is_its_own_job(services):
    services.sms.send_many([services.sms.message(f"+628120000{i:03d}", "halo") for i in range(1200)])
    assert services.raw.llen("rq:queue:ussd") == 1200


def test_a_message_sent_twice_under_one_id_is_delivered_once(services):
    services.sms.send("+6281200000001", "Penukaran berhasil", message_id="redeem:r1:done")
    jobs.work(services, burst=True)
    services.sms.send("+6281200000001", "Penukaran berhasil", message_id="redeem:r1:done")
    jobs.work(services, burst=True)
    assert delivered() == [("+6281200000001", "Penukaran berhasil")]


def test_a_retried_job_of_an_accepted_message_sends_nothing(services):
    message = services.sms.message("+6281200000001", "halo", message_id="m-1")
    assert outbound.deliver(services, message) == "accepted"
    assert outbound.deliver(services, message) == "already accepted"
    assert len(Stub.received) == 1


def test_a_secret_text_rests_encrypted_in_its_job(services):
    services.sms.send("+6281200000001", "Kode voucher: SECRET-123", secret=True)
    payloads = [zlib.decompress(services.raw.hget(k, "data")) for k in services.raw.scan_iter("rq:job:*")
                if services.raw.type(k) == b"hash" and services.raw.hexists(k, "data")]
    assert payloads and not any(b"SECRET-123" in p for p in payloads)
    jobs.work(services, burst=True)
    assert delivered() == [("+6281200000001", "Kode voucher: SECRET-123")]


def test_offers_go_out_one_job_each(services, api):
    from ussd_app import demo

    camp = campaigns.validate(demo.campaign(services.clock()), services.config.OFFER_SENDER_IDS.split(","))
    campaigns.put(services.r, camp)
    for i in range(3):
        api("PUT", f"/api/v1/subscribers/08129900000{i}", {
            "status": "active", "credit_score": 700, "attributes": {"region": "JKT", "tenure_months": 24}})
    Stub.fail_on = {1}
    assert sending.send(services, camp)["sent"] == 3
    assert services.raw.llen("rq:queue:ussd") == 3
    jobs.work(services, burst=True)
    assert sorted(to for to, _ in delivered()) == [f"+628129900000{i}" for i in range(3)]
