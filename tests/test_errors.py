"""Errors: one handler for the whole app picks the form by path (the API's
JSON, the gateway's own plain text), routing errors included; bodies, dates and
numbers the API cannot hold are a 400, never a 500 later."""
import logging

import pytest
from flask import Blueprint, Response

from ussd_app.core import formats
from ussd_app.web import errors

FORM = {"sessionId": "s1", "serviceCode": "*700#", "phoneNumber": "081234567890", "text": ""}
M = "081234567890"


def is_json_error(resp, status):
    body = resp.get_json(silent=True)
    return (resp.status_code == status and resp.mimetype == "application/json"
            and isinstance(body, dict) and set(body) == {"error"} and body["error"])


class TestRoutingErrors:
    @pytest.mark.parametrize("method, path", [
        ("GET", "/api/v1/nope"), ("GET", "/api/v2/rewards"), ("POST", "/api/v1/subscribers"),
        ("GET", "/"), ("GET", "/favicon.ico"), ("GET", "/api/v1/subscribers/081234567890/nope"),
    ])
    def test_an_unknown_route_is_a_json_404(self, client, method, path):
        assert is_json_error(client.open(path, method=method), 404)

    @pytest.mark.parametrize("method, path, allowed", [
        ("DELETE", "/api/v1/rewards", "GET"), ("POST", "/api/v1/leads", "GET"),
        ("PATCH", "/api/v1/subscribers/081234567890", "GET, PUT"), ("POST", "/healthz", "GET"),
    ])
    def test_an_unknown_method_is_a_json_405_saying_what_is_allowed(self, client, method, path, allowed):
        resp = client.open(path, method=method)
        assert is_json_error(resp, 405)
        assert resp.get_json()["error"] == f"method not allowed here (allowed: {allowed})"
        assert set(allowed.split(", ")) <= set(resp.headers["Allow"].split(", "))

    def test_the_gateway_answers_in_its_own_form(self, client):
        for resp, status in [(client.get("/ussd"), 405), (client.get("/sms/inbound"), 405),
                             (client.post("/ussd/nope", data=FORM), 404)]:
            assert resp.status_code == status and resp.mimetype == "text/plain", resp.data
        assert client.post("/ussd", data={**FORM, "sessionId": ""}).get_data(as_text=True) == "missing sessionId"

    def test_a_path_that_only_starts_like_a_gateway_is_not_one(self, client):
        assert is_json_error(client.post("/ussdx", data=FORM), 404)


def fail(*_args, **_kwargs):
    raise RuntimeError("boom 3171014506900001")


class TestFailures:
    def test_an_api_failure_is_a_json_500_without_the_trace(self, client, monkeypatch, caplog):
        monkeypatch.setattr("ussd_app.loyalty.rewards.catalog", fail)
        resp = client.get("/api/v1/rewards")
        assert is_json_error(resp, 500) and resp.get_json() == {"error": "internal error"}
        assert [r.exc_info[1] for r in caplog.records if r.levelno == logging.ERROR][0].args == (
            "boom 3171014506900001",)

    def test_a_hop_that_fails_ends_politely(self, client, monkeypatch):
        monkeypatch.setattr("ussd_app.ussd.hop.hop", fail)
        resp = client.post("/ussd", data=FORM)
        assert (resp.status_code, resp.mimetype) == (200, "text/plain")
        assert resp.get_data(as_text=True) == "END Maaf, layanan sedang sibuk. Silakan coba lagi nanti."

    def test_an_sms_that_fails_is_a_500_the_gateway_retries(self, client, monkeypatch):
        monkeypatch.setattr("ussd_app.sms.keywords.handle", fail)
        resp = client.post("/sms/inbound", data={"from": M, "to": "62168", "text": "POIN", "id": "m1"})
        assert (resp.status_code, resp.mimetype, resp.get_data(as_text=True)) == (
            500, "text/plain", "internal error")


dialect = Blueprint("dialect", __name__)
errors.renders(dialect, "/ussd/json", lambda status, message: Response(
    '{"Type": "Release", "Message": "%s"}' % message, status, mimetype="application/json"))


@dialect.post("/ussd/json")
def json_hop():
    raise errors_bad("Mobile")


def errors_bad(field):
    from ussd_app.core.errors import BadRequest
    return BadRequest(f"missing {field}")


def test_a_gateway_dialect_registers_how_its_errors_look(app):
    app.register_blueprint(dialect)
    client = app.test_client()
    resp = client.post("/ussd/json", json={})
    assert (resp.status_code, resp.get_json()) == (400, {"Type": "Release", "Message": "missing Mobile"})
    assert client.get("/ussd/json").get_json()["Type"] == "Release"  # its routing errors too
    assert client.post("/ussd/other", data=FORM).mimetype == "text/plain"  # /ussd's own, as before


class TestBodies:
    @pytest.mark.parametrize("depth", [17, 1000, 100_000])
    def test_a_body_deeper_than_the_api_needs_is_400(self, client, depth):
        for path, method in [(f"/api/v1/subscribers/{M}", "PUT"), ("/api/v1/campaigns", "POST")]:
            resp = client.open(path, method=method, data="[" * depth + "]" * depth,
                               content_type="application/json")
            assert is_json_error(resp, 400), resp.data
            resp = client.open(path, method=method, data='{"a":' * depth + "1" + "}" * depth,
                               content_type="application/json")
            assert is_json_error(resp, 400) and "nested deeper" in resp.get_json()["error"]

    def test_a_body_larger_than_the_api_needs_is_400(self, client):
        resp = client.put(f"/api/v1/subscribers/{M}", data=b'{"attributes": "' + b"x" * (2 << 20) + b'"}',
                          content_type="application/json")
        assert is_json_error(resp, 400) and resp.get_json()["error"].startswith("body is larger than")

    @pytest.mark.parametrize("data, content_type", [
        ("{", "application/json"), ('{"credit_score": NaN}', "application/json"),
        ('{"points": 1e999}', "application/json"), (b"\xff\xfe", "application/json"),
        ('{"credit_score": 1}', "text/plain"), ("[]", "application/json"), ('"x"', "application/json"),
        ("1" * 5000, "application/json"),
    ])
    def test_what_is_no_json_object_is_400(self, client, data, content_type):
        resp = client.put(f"/api/v1/subscribers/{M}", data=data, content_type=content_type)
        assert is_json_error(resp, 400)


class TestDates:
    def test_an_expiry_in_year_9999_is_refused_and_the_account_stays_readable(self, api, client):
        for expires in ["9999-12-31T23:59:00+07:00", "9999-12-31T23:59:00+00:00", "2040-01-01T00:00:00"]:
            resp = client.post(f"/api/v1/subscribers/{M}/points", json={
                "points": 1, "source": "topup", "reference": expires, "expires_at": expires})
            assert is_json_error(resp, 400)
            assert resp.get_json()["error"] == "expires_at must be within 10 years of now"
        api("GET", f"/api/v1/subscribers/{M}/points", status=200)
        api("GET", f"/api/v1/subscribers/{M}/ledger", status=200)

    def test_an_expiry_within_ten_years_is_taken(self, api, services):
        expires = formats.iso(services.clock() + 9.9 * 365 * 86400)
        api("POST", f"/api/v1/subscribers/{M}/points",
            {"points": 1, "source": "topup", "reference": "r", "expires_at": expires}, status=201)
        assert api("GET", f"/api/v1/subscribers/{M}/points")["next_expiry"]["expires_at"] == expires

    @pytest.mark.parametrize("field", ["valid_from", "valid_until"])
    @pytest.mark.parametrize("value", ["9999-12-31T23:59:00+00:00", "0001-01-01T00:00:00+00:00",
                                       "1990-01-01T00:00:00+07:00"])
    def test_campaign_dates_lie_within_ten_years(self, client, field, value):
        from test_offers import campaign_body
        resp = client.post("/api/v1/campaigns", json=campaign_body(**{field: value}))
        assert is_json_error(resp, 400) and resp.get_json()["error"].startswith(f"{field} must be")

    @pytest.mark.parametrize("field", ["active_from", "active_until"])
    def test_reward_dates_lie_within_ten_years(self, client, field):
        resp = client.put("/api/v1/rewards/KOPI", json={
            "name": "Kopi", "category": "voucher", "points": 100, "fulfilment": "voucher",
            field: "9999-12-31T23:59:00+00:00"})
        assert is_json_error(resp, 400) and resp.get_json()["error"].startswith(f"{field} must be")
        assert client.get("/api/v1/rewards").status_code == 200


class TestMsisdns:
    @pytest.mark.parametrize("number", ["+62812FLOWERS", "+14155552671", "+6581234567", "0215551234",
                                        "+62215551234", "08123456", "+62812345678", "+6281234567890123", "81234567890",
                                        "+62 812 3456 789O", "62-812-3456-7890-", "++6281234567890"])
    def test_only_indonesian_mobile_numbers_are_subscribers(self, client, number):
        resp = client.put(f"/api/v1/subscribers/{number}", json={"credit_score": 700})
        assert is_json_error(resp, 400), number
        assert resp.get_json()["error"].startswith("msisdn is not an Indonesian mobile number")

    @pytest.mark.parametrize("number, stored", [
        ("081234567890", "+6281234567890"), ("6281234567890", "+6281234567890"),
        ("+6281234567890", "+6281234567890"), ("0812-3456-7890", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"), ("+628123456789", "+628123456789"),
        ("+628123456789012", "+628123456789012"),
    ])
    def test_the_three_written_forms_are_one_number(self, api, number, stored):
        assert api("PUT", f"/api/v1/subscribers/{number}", {}, status=200)["msisdn"] == stored

    @pytest.mark.parametrize("number", ["+62812FLOWERS", "+14155552671", "0215551234"])
    def test_the_gateway_and_sms_refuse_them_too(self, client, number):
        resp = client.post("/ussd", data={**FORM, "phoneNumber": number})
        assert resp.status_code == 400 and resp.get_data(as_text=True).startswith("phoneNumber is not")
        resp = client.post("/sms/inbound", data={"from": number, "to": "62168", "text": "POIN", "id": "m1"})
        assert resp.status_code == 400 and resp.get_data(as_text=True).startswith("from is not")
        resp = client.post("/api/v1/campaigns/x/offers", json={"msisdns": [number]})
        assert resp.status_code == 404  # the campaign is checked first


class TestCursors:
    """A page cursor is ASCII digits within a 64-bit index: 30 digits used to
    answer 500 on /redemptions, and int() took full-width and Arabic-Indic digits."""
    PAGES = [("/api/v1/redemptions", {"status": "needs_review"}),
             ("/api/v1/leads", {"institution": "bank-a"}),
             ("/api/v1/leads/deliveries", {"institution": "bank-a"})]

    @pytest.mark.parametrize("path", PAGES)
    @pytest.mark.parametrize("cursor", ["1" * 30, "\uff13", "\u0663", "-1", "1.5", "1e3", " 1"])
    def test_an_odd_cursor_is_a_400_naming_it(self, client, path, cursor):
        resp = client.get(path[0], query_string={**path[1], "cursor": cursor})
        assert is_json_error(resp, 400) and "cursor" in resp.get_json()["error"]

    @pytest.mark.parametrize("path", PAGES)
    @pytest.mark.parametrize("limit", ["\uff15", "0", "1001", "9" * 30])
    def test_an_odd_limit_is_a_400_naming_it(self, client, path, limit):
        resp = client.get(path[0], query_string={**path[1], "limit": limit})
        assert is_json_error(resp, 400) and "limit" in resp.get_json()["error"]

    @pytest.mark.parametrize("path", PAGES)
    def test_a_plain_cursor_pages(self, client, path):
        assert client.get(path[0], query_string={**path[1], "cursor": "0", "limit": "5"}).status_code == 200
