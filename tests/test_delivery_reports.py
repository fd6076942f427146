"""SMS delivery reports (``POST /sms/delivery``, Africa's Talking form): each
updates its message's record, shown in the outbox answer and counted in
metrics; a failed service SMS is sent once more, then reported."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from test_metrics import scrape, value
from ussd_app import demo
from ussd_app.core import keys

M = "+6281234567890"


@pytest.fixture
def seeded(services):
    demo.seed(services)
    services.r.delete(keys.outbox(M))  # the demo offer's SMS: not read here


def outbox(client, to=M, key="messages"):
    return client.get(f"/api/v1/outbox?to={to}").get_json()[key]


def report(client, msg_id, status, reason=None, to=M):
    form = {"id": msg_id, "status": status, "phoneNumber": to}
    if reason:
        form["failureReason"] = reason
    return client.post("/sms/delivery", data=form)


def test_a_delivery_report_shows_in_the_outbox_and_metrics(seeded, phone, client):
    phone.sms("POIN")
    sms, = outbox(client)
    assert sms["id"].startswith("sms-") and sms["status"] == "sent"
    before = scrape(client)
    assert report(client, sms["id"], "Success").status_code == 200
    assert outbox(client)[0]["status"] == "delivered"
    assert value(scrape(client), "ussd_sms_total", provider="console", result="delivered") - value(
        before, "ussd_sms_total", provider="console", result="delivered") == 1


def test_a_failed_reward_code_is_sent_once_more_then_reported(seeded, phone, client):
    phone.dial(text="2*5*1*1*1")  # the coffee voucher: its code comes by SMS
    code_sms, = outbox(client)
    assert "Kode voucher" in code_sms["text"]
    before = scrape(client)
    report(client, code_sms["id"], "Failed", "DeliveryFailure")
    first, retry = outbox(client)
    assert (first["status"], first["reason"]) == ("failed", "DeliveryFailure")
    assert retry["text"] == code_sms["text"] and retry["retry_of"] == code_sms["id"]
    assert retry["status"] == "sent" and retry["id"] != code_sms["id"]
    report(client, code_sms["id"], "Failed", "DeliveryFailure")  # the provider posts it again
    assert len(outbox(client)) == 2
    report(client, retry["id"], "Rejected")
    assert [(m["status"], m.get("reason")) for m in outbox(client)] == [
        ("failed", "DeliveryFailure"), ("failed", "Rejected")]
    after = scrape(client)
    for result, n in (("retried", 1), ("undelivered", 1)):
        assert value(after, "ussd_sms_total", provider="console", result=result) - value(
            before, "ussd_sms_total", provider="console", result=result) == n
    stored = [json.loads(v) for k, v in client.application.extensions["ussd"].r.hgetall(
        keys.sms_records(M)).items() if not k.startswith("p:")]
    assert all("text_enc" not in rec for rec in stored)  # the code is gone once final


def test_an_offer_sms_is_not_sent_again(services, client):
    services.r.delete(keys.outbox("+6281234567891"))
    demo.seed(services)
    offer, = outbox(client, "+6281234567891")
    report(client, offer["id"], "Failed", "AbsentSubscriber", to="+6281234567891")
    assert [m["status"] for m in outbox(client, "+6281234567891")] == ["failed"]


def test_the_first_final_report_wins(seeded, phone, client):
    phone.sms("POIN")
    sms, = outbox(client)
    report(client, sms["id"], "Buffered")
    assert outbox(client)[0]["status"] == "sent"
    report(client, sms["id"], "Success")
    report(client, sms["id"], "Buffered")
    report(client, sms["id"], "Failed", "late")
    assert [m["status"] for m in outbox(client)] == ["delivered"]


@pytest.mark.parametrize("form, field", [
    ({"status": "Success", "phoneNumber": M}, "id"),
    ({"id": "x", "status": "Lost", "phoneNumber": M}, "status"),
    ({"id": "x", "status": "Success"}, "phoneNumber"),
    ({"id": "x", "status": "Success", "phoneNumber": "not a number"}, "phoneNumber"),
])
def test_a_malformed_report_is_400_naming_the_field(client, form, field):
    resp = client.post("/sms/delivery", data=form)
    assert resp.status_code == 400 and field in resp.get_data(as_text=True)


def test_a_report_of_an_unknown_message_is_accepted(client):
    assert report(client, "ATXid_unknown", "Success").status_code == 200


class TestGatewayToken:
    @pytest.fixture
    def config(self, config):
        return {**config, "GATEWAY_TOKEN": "gw-secret"}

    def test_reports_need_the_gateway_token(self, client):
        assert report(client, "x", "Success").status_code == 401
        assert client.post("/sms/delivery?token=gw-secret", data={
            "id": "x", "status": "Success", "phoneNumber": M}).status_code == 200


class Provider(BaseHTTPRequestHandler):
    """Africa's Talking's SMS API: accepts each message and names it ATXid_<n>."""
    sent: list = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Provider.sent.append(1)
        body = json.dumps({"SMSMessageData": {"Recipients": [
            {"statusCode": 101, "status": "Success", "messageId": f"ATXid_{len(Provider.sent)}"}]}})
        self.send_response(201)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


class TestAfricasTalking:
    @pytest.fixture
    def config(self, config):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
        Provider.sent = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield {**config, "SMS_PROVIDER": "africastalking",
               "AFRICASTALKING_URL": f"http://127.0.0.1:{server.server_port}/version1/messaging"}
        server.shutdown()
        server.server_close()

    def test_reports_name_the_providers_id_and_the_outbox_shows_no_text(self, seeded, services, phone,
                                                                        client):
        services.r.delete(keys.sms_records(M))  # the demo offer's: not read here
        Provider.sent = []
        phone.sms("POIN")  # JOBS_SYNC: the delivery job runs at once
        assert outbox(client) == []  # the console's: none
        sms, = outbox(client, key="remote")
        assert (sms["provider"], sms["status"]) == ("africastalking", "sent") and "text" not in sms
        report(client, "ATXid_1", "Failed", "InsufficientCredit")
        first, retry = outbox(client, key="remote")
        assert (first["status"], first["reason"]) == ("failed", "InsufficientCredit")
        assert retry["retry_of"] == sms["id"] and len(Provider.sent) == 2
        report(client, "ATXid_2", "Success")
        assert [m["status"] for m in outbox(client, key="remote")] == ["failed", "delivered"]
