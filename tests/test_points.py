import math
import time

import pytest

from ussd_app.loyalty import points

M = "+6281234567890"


def earn(api, ref, pts=1500, **extra):
    return api("POST", "/api/v1/subscribers/081234567890/points",
               {"points": pts, "source": "topup", "reference": ref, **extra})


def test_earning_is_idempotent_on_reference(client, api):
    resp = client.post("/api/v1/subscribers/081234567890/points",
                       json={"points": 1500, "source": "topup", "reference": "tx-1"})
    assert (resp.status_code, resp.get_json()["balance"]) == (201, 1500)
    resp = client.post("/api/v1/subscribers/6281234567890/points",
                       json={"points": 1500, "source": "topup", "reference": "tx-1"})
    assert (resp.status_code, resp.get_json()["balance"]) == (200, 1500)
    ledger = api("GET", "/api/v1/subscribers/+6281234567890/ledger")["entries"]
    assert [e["type"] for e in ledger] == ["earn"]


def test_points_view_with_buckets_and_next_expiry(api):
    earn(api, "a", 1000, expires_at="2035-06-30T23:59:00+07:00")
    earn(api, "b", 500, expires_at="2035-06-30T23:59:00+07:00")
    earn(api, "c", 2000, expires_at="2035-12-31T23:59:00+07:00")
    view = api("GET", "/api/v1/subscribers/081234567890/points")
    assert view["msisdn"] == M
    assert view["balance"] == 3500
    assert view["next_expiry"] == {"points": 1500, "expires_at": "2035-06-30T23:59:00+07:00"}
    assert [b["points"] for b in view["buckets"]] == [1000, 500, 2000]


def test_expired_buckets_never_count_even_before_cleanup(services, clock):
    now = clock.now
    points.earn(services.r, M, 100, "topup", "old", now + 60, now)
    points.earn(services.r, M, 200, "topup", "new", now + 3600, now)
    assert points.view(services.r, M, now).balance == 300
    assert points.view(services.r, M, now + 61).balance == 200


def test_expire_writes_one_entry_per_bucket_and_runs_once(services, clock):
    now = clock.now
    points.earn(services.r, M, 100, "topup", "old", now + 60, now)
    points.earn(services.r, M, 200, "topup", "new", math.inf, now)
    assert points.expire(services.r, M, now + 61) == 100
    assert points.expire(services.r, M, now + 61) == 0
    kinds = [(e["type"], e["points"]) for e in points.ledger(services.r, M)]
    assert kinds == [("earn", 100), ("earn", 200), ("expire", -100)]


def test_calendar_policy_ends_on_31_december_wib():
    june = time.mktime((2026, 6, 1, 0, 0, 0, 0, 0, 0))
    exp = points.default_expiry(june, "calendar", 0)
    from ussd_app.core.formats import wib
    assert wib(exp) == "31-12-2026 23:59 WIB"
    assert points.default_expiry(1000.0, "rolling", 10) == 1000.0 + 864000


@pytest.mark.parametrize("body, error", [
    ({"points": 0, "source": "topup", "reference": "r"}, "points must be a whole number"),
    ({"points": "5", "source": "topup", "reference": "r"}, "points must be a whole number"),
    ({"points": 5, "reference": "r"}, "source must be"),
    ({"points": 5, "source": "topup"}, "reference must be"),
    ({"points": 5, "source": "topup", "reference": "r", "expires_at": "tomorrow"}, "expires_at must be"),
    ({"points": 5, "source": "topup", "reference": "r", "expires_at": "2001-01-01T00:00:00+07:00"},
     "expires_at is in the past"),
])
def test_bad_earnings_are_400(client, body, error):
    resp = client.post("/api/v1/subscribers/081234567890/points", json=body)
    assert resp.status_code == 400
    assert resp.get_json()["error"].startswith(error)


def test_subscriber_profile(api, client):
    got = api("PUT", "/api/v1/subscribers/081234567890",
              {"credit_score": 720, "status": "active", "attributes": {"region": "JKT"}}, status=200)
    assert got["msisdn"] == M and got["credit_score"] == 720 and got["attributes"] == {"region": "JKT"}
    resp = client.put("/api/v1/subscribers/081234567890", json={"status": "sleepy"})
    assert resp.status_code == 400 and resp.get_json() == {"error": "status must be active or blocked"}
    assert client.get("/api/v1/subscribers/081299999999").status_code == 404


class TestCheckPointsScreen:
    def test_balance_and_next_expiry(self, api, phone):
        earn(api, "a", 12500, expires_at="2035-12-31T23:59:00+07:00")
        assert phone.dial(text="1") == ("Poin Anda: 12.500\n12.500 poin hangus 31-12-2035 23:59 WIB\n"
                                        "0 Kembali 00 Menu")

    def test_no_points(self, api, phone):
        api("PUT", "/api/v1/subscribers/081234567890", {"status": "active"})
        assert phone.dial(text="1").startswith("Poin Anda: 0.")

    def test_blocked(self, api, phone):
        earn(api, "a")
        api("PUT", "/api/v1/subscribers/081234567890", {"status": "blocked"})
        assert "diblokir" in phone.dial(text="1")

    def test_not_enrolled(self, phone):
        assert "belum terdaftar" in phone.dial(text="1")

    def test_english_uses_english_separators(self, api, phone):
        earn(api, "a", 12500, expires_at="2035-12-31T23:59:00+07:00")
        phone.dial(text="5*2")
        assert phone.dial(text="1").startswith("Your points: 12,500\n12,500 points expire")


class TestApiAuth:
    @pytest.fixture
    def config(self, config):
        return {**config, "ADMIN_TOKEN": "admin-secret"}

    def test_bearer_token_required(self, client):
        assert client.get("/api/v1/subscribers/081234567890/points").status_code == 401
        resp = client.get("/api/v1/subscribers/081234567890/points",
                          headers={"Authorization": "Bearer admin-secret"})
        assert resp.status_code == 200
        assert client.get("/api/v1/outbox?to=0812", headers={"Authorization": "Bearer nope"}
                          ).get_json() == {"error": "missing or wrong bearer token"}
