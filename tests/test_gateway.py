import pytest
import redis

FORM = {"sessionId": "s1", "serviceCode": "*700#", "phoneNumber": "081234567890", "text": ""}


@pytest.mark.parametrize("change, reason", [
    ({"sessionId": None}, "missing sessionId"),
    ({"phoneNumber": "not-a-number"}, "phoneNumber is not an Indonesian mobile number (+628 and 9 to 12 more digits, or 08... / 628...)"),
    ({"phoneNumber": None}, "missing phoneNumber"),
    ({"text": "1" * 201}, "text is over 200 characters"),
])
def test_bad_hops_get_400_naming_the_field(client, change, reason):
    form = {k: v for k, v in {**FORM, **change}.items() if v is not None}
    resp = client.post("/ussd", data=form)
    assert resp.status_code == 400
    assert resp.mimetype == "text/plain"
    assert resp.get_data(as_text=True) == reason


def test_non_form_body_is_refused(client):
    resp = client.post("/ussd", json=FORM)
    assert resp.status_code == 400
    assert "form-encoded" in resp.get_data(as_text=True)


def test_reply_is_plain_text_con(client):
    resp = client.post("/ussd", data=FORM)
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    assert resp.get_data(as_text=True).startswith("CON Poin Plus\n1 Cek poin")


class TestGatewayToken:
    @pytest.fixture
    def config(self, config):
        return {**config, "GATEWAY_TOKEN": "gw-secret"}


    @pytest.mark.parametrize("headers, query, status", [
        ({}, "", 401),
        ({"X-Gateway-Token": "wrong"}, "", 401),
        ({"X-Gateway-Token": "gw-secret"}, "", 200),
        ({}, "?token=gw-secret", 200),
    ])
    def test_gateway_token(self, client, headers, query, status):
        assert client.post("/ussd" + query, data=FORM, headers=headers).status_code == status
        sms = {"from": "081234567890", "to": "62168", "text": "INFO", "id": "m1"}
        assert client.post("/sms/inbound" + query, data=sms, headers=headers).status_code == status


    def test_sms_inbound_needs_an_id(self, client):
        resp = client.post("/sms/inbound?token=gw-secret", data={"from": "081234567890", "text": "POIN"})
        assert (resp.status_code, resp.get_data(as_text=True)) == (400, "missing id")


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ok", "redis": "ok", "persistence": "none"}


def test_urlencoded_body_is_decoded_like_werkzeug(client):
    """The hop's own form decoding: %-escapes, '+' as space, first value wins."""
    body = ("sessionId=s%2B1&serviceCode=%2A700%23&phoneNumber=%2B6281234567890"
            "&text=&text=1&networkCode=510+01")
    resp = client.post("/ussd", data=body, content_type="application/x-www-form-urlencoded")
    assert resp.get_data(as_text=True).startswith("CON Poin Plus")
    resp = client.post("/ussd", data=body.replace("s%2B1", "s2").replace("&text=&text=1", "&text=1"),
                       content_type="application/x-www-form-urlencoded")
    assert resp.get_data(as_text=True).startswith("CON Nomor Anda belum terdaftar")


def test_multipart_form_is_accepted(client):
    resp = client.post("/ussd", data=FORM, content_type="multipart/form-data")
    assert resp.status_code == 200
    assert resp.get_data(as_text=True).startswith("CON Poin Plus")


def test_oversized_body_is_refused(client):
    resp = client.post("/ussd", data={**FORM, "junk": "x" * 9000})
    assert resp.status_code == 400
    assert "8192 bytes" in resp.get_data(as_text=True)


def test_a_dropped_redis_connection_is_retried(client, redis_url):
    """Pooled connections the server has closed do not fail the hop."""
    assert client.post("/ussd", data=FORM).status_code == 200
    redis.Redis.from_url(redis_url).client_kill_filter(_type="normal", skipme=True)
    resp = client.post("/ussd", data={**FORM, "sessionId": "s2"})
    assert resp.get_data(as_text=True).startswith("CON Poin Plus")


EVENT = {"sessionId": "ev1", "phoneNumber": "081234567890", "serviceCode": "*700#", "status": "Incomplete",
         "input": "4", "hopsCount": "2", "durationInMillis": "25000", "errorMessage": "Session timed out",
         "lastAppResponse": "CON Bantuan", "date": "2025-01-01 10:00:00.000", "cost": "KES 0.0500"}


@pytest.mark.parametrize("change, reason", [
    ({"errorMessage": "x" * 201}, "errorMessage must be at most 200 characters"),
    ({"errorMessage": "timed out\nINJECTED"}, "errorMessage must be one line without control characters"),
    ({"errorMessage": "timed out \x1b[31m"}, "errorMessage must be one line without control characters"),
    ({"errorMessage": "\u202eout timed"}, "errorMessage has characters outside GSM-7"),
    ({"date": "2025-01-01<script>"}, "date must be a date such as"),
    ({"date": "2" * 41}, "date must be a date such as"),
    ({"cost": "KES 0.05\r\nX: y"}, "cost must be an amount such as"),
    ({"cost": "{\"a\": 1}"}, "cost must be an amount such as"),
    ({"hopsCount": "9" * 5000}, "hopsCount must be a whole number from 0 to"),
    ({"durationInMillis": "\uff11"}, "durationInMillis must be a whole number from 0 to"),
])
def test_the_end_of_session_notification_is_bounded_like_any_untrusted_text(client, change, reason):
    """It is kept with the session: what it may hold is bounded in length and
    alphabet (it used to be stored as sent, cut at 200 or 40 characters)."""
    resp = client.post("/ussd/events", data={**EVENT, **change})
    assert resp.status_code == 400 and resp.get_data(as_text=True).startswith(reason)


def test_a_well_formed_notification_is_kept(client, services):
    client.post("/ussd", data={**FORM, "sessionId": "ev1"})
    resp = client.post("/ussd/events", data={**EVENT, "status": "INCOMPLETE"})
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, "OK")
    doc = services.r.get("ussd:{+6281234567890}:session:ev1")
    assert ('"event":{"status":"Incomplete","hops":2,"duration_ms":25000,"error":"Session timed out",'
            '"cost":"KES 0.0500","date":"2025-01-01 10:00:00.000"}') in doc


def test_a_failure_outside_the_hops_own_handling_ends_politely_in_the_dialects_form(client, monkeypatch, caplog):
    """A hop is answered before Flask (web.gateway.Front): what Flask's one
    error handler did for it (log, a polite END in the dialect's form, never
    a 5xx or a stack trace on a phone), the front does."""
    from ussd_app.gateways import africastalking

    def broken(fields, code):
        raise RuntimeError("a bug of ours")
    monkeypatch.setattr(africastalking, "parse", broken)
    resp = client.post("/ussd", data=FORM)
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    assert resp.get_data(as_text=True).startswith("END ") and "bug" not in resp.get_data(as_text=True)
    assert any("hop failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_hops_answer_carries_its_length_and_request_id(client):
    resp = client.post("/ussd", data=FORM, headers={"X-Request-Id": "gw-1"})
    assert int(resp.headers["Content-Length"]) == len(resp.get_data())
    assert resp.headers["X-Request-Id"] == "gw-1"


def test_a_get_on_a_hop_path_is_still_flasks_405_in_the_dialects_form(client):
    resp = client.get("/ussd")
    assert resp.status_code == 405 and resp.mimetype == "text/plain" and "POST" in resp.headers["Allow"]
