import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def enrolled(api):
    api("POST", "/api/v1/subscribers/081234567890/points",
        {"points": 2500, "source": "topup", "reference": "t1", "expires_at": "2035-12-31T23:59:00+07:00"})


@pytest.mark.parametrize("text, expected", [
    ("POIN", "Poin Anda: 2.500. 2.500 poin hangus 31-12-2035 23:59 WIB."),
    ("poin", "Poin Anda: 2.500"),
    ("#Poin#", "Poin Anda: 2.500"),
    ("HANGUS", "2.500 poin Anda hangus 31-12-2035 23:59 WIB."),
    ("info", "Ketik POIN (cek poin)"),
    ("BANTUAN", "TUKAR <kode> (tukar hadiah)"),
    ("halo apa kabar", "perintah tidak dikenal"),
    ("", "perintah tidak dikenal"),
])
def test_keywords_always_answer(enrolled, phone, text, expected):
    phone.sms(text)
    inbox = phone.inbox()
    assert len(inbox) == 1 and expected in inbox[0]


def test_same_message_id_is_handled_once(enrolled, phone):
    phone.sms("POIN", message_id="gw-1")
    phone.sms("POIN", message_id="gw-1")
    assert len(phone.inbox()) == 1


def test_not_enrolled_by_sms(phone):
    phone.sms("POIN")
    assert "belum terdaftar" in phone.inbox()[0]


def test_reply_in_the_subscribers_language(enrolled, phone, api):
    api("PUT", "/api/v1/subscribers/081234567890", {"language": "en"})
    phone.sms("POIN")
    assert phone.inbox()[0].startswith("Your points: 2,500.")


class Stub(BaseHTTPRequestHandler):
    received: list = []
    status = 201

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        Stub.received.append((dict(urllib.parse.parse_qsl(body)), self.headers.get("apiKey")))
        self.send_response(Stub.status)
        self.end_headers()
        self.wfile.write(b'{"SMSMessageData": {"Recipients": []}}')

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    Stub.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/version1/messaging"
    server.shutdown()
    server.server_close()


class TestAfricasTalking:
    @pytest.fixture
    def config(self, config, stub):
        return {**config, "SMS_PROVIDER": "africastalking", "AFRICASTALKING_URL": stub,
                "AFRICASTALKING_USERNAME": "ussdapp", "AFRICASTALKING_API_KEY": "k-123"}

    def test_delivers_through_the_http_api(self, enrolled, phone):
        phone.sms("POIN")
        (form, key), = Stub.received
        assert key == "k-123"
        assert form["username"] == "ussdapp" and form["to"] == "+6281234567890"
        assert form["message"].startswith("Poin Anda: 2.500")

    def test_sending_is_a_background_job(self, services, monkeypatch):
        queued = []
        monkeypatch.setattr(services.jobs, "enqueue", lambda func, *a, **k: queued.append(a))
        services.sms.send("+6281234567890", "halo")
        assert queued and Stub.received == []

    def test_provider_error_is_raised_for_retry(self, services):
        from ussd_app.sms.providers import DeliveryError
        Stub.status = 500
        try:
            with pytest.raises(DeliveryError, match="provider answered 500"):
                services.sms.provider.deliver({"to": "+6281234567890", "text": "x", "from": "POIN"})
        finally:
            Stub.status = 201


def test_a_failed_message_can_be_retried(enrolled, phone, monkeypatch):
    from ussd_app.sms import keywords
    calls = []

    def flaky(msg):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("provider hiccup")
        keywords.balance(msg)
    monkeypatch.setitem(keywords.HANDLERS, "POIN", flaky)
    resp = phone.client.post("/sms/inbound", data={"from": phone.msisdn, "to": "62168", "text": "POIN", "id": "r1"})
    assert resp.status_code == 500
    phone.sms("POIN", message_id="r1")
    assert len(phone.inbox()) == 1 and len(calls) == 2
