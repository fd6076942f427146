"""Partner keys: made by the admin, shown once, stored hashed; each reads only
its own institution's leads and deliveries, and nothing else."""
import pytest
from click.testing import CliRunner

from test_offers import NIK, campaign_body
from ussd_app import cli

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def config(config):
    return {**config, "ADMIN_TOKEN": "admin-secret"}


def as_partner(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def key(client):
    resp = client.post("/api/v1/partners", json={"institution": "bank-a"}, headers=ADMIN)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["institution"] == "bank-a" and body["key"].startswith("pk_")
    return body["key"]


@pytest.fixture
def lead(client, phone):
    """A consented lead of bank-a, and a campaign of bank-b."""
    client.put("/api/v1/subscribers/081100000001", headers=ADMIN,
               json={"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}})
    client.post("/api/v1/campaigns", json=campaign_body(), headers=ADMIN)
    client.post("/api/v1/campaigns", headers=ADMIN, json=campaign_body(
        id="kk-b", code="KKB", institution={"id": "bank-b", "name": "Bank B"}))
    assert client.post("/api/v1/campaigns/kta-nov/offers", json={}, headers=ADMIN).status_code == 200
    phone.msisdn = "081100000001"
    phone.sms(f"YA {NIK}")


def test_a_partner_reads_its_own_leads(client, key, lead):
    resp = client.get("/api/v1/leads?institution=bank-a", headers=as_partner(key))
    assert resp.status_code == 200
    assert [x["nik"] for x in resp.get_json()["leads"]] == [NIK]
    assert client.get("/api/v1/leads/deliveries?institution=bank-a",
                      headers=as_partner(key)).status_code == 200


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/v1/leads?institution=bank-b", None),
    ("GET", "/api/v1/leads", None),
    ("GET", "/api/v1/leads/deliveries?institution=bank-b", None),
    ("POST", "/api/v1/subscribers/081100000001/points",
     {"points": 100, "source": "topup", "reference": "tx-partner"}),
    ("PUT", "/api/v1/rewards/PULSA5", {"name": {"id": "Pulsa 5rb"}, "points": 1, "category": "pulsa",
                                       "fulfilment": "airtime"}),
    ("GET", "/api/v1/rewards", None),
    ("GET", "/api/v1/subscribers/081100000001/points", None),
    ("POST", "/api/v1/campaigns", {"id": "x"}),
    ("POST", "/api/v1/partners", {"institution": "bank-a"}),
    ("DELETE", "/api/v1/partners/bank-a", None),
    ("GET", "/api/v1/outbox?to=081100000001", None),
])
def test_a_partner_key_reaches_nothing_else(client, key, lead, method, path, body):
    resp = client.open(path, method=method, json=body, headers=as_partner(key))
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert "partner key" in resp.get_json()["error"] or "institution=bank-a" in resp.get_json()["error"]


def test_nothing_moved(client, key, lead, services):
    client.post("/api/v1/subscribers/081100000001/points", headers=as_partner(key),
                json={"points": 100, "source": "topup", "reference": "tx-partner"})
    client.put("/api/v1/rewards/PULSA5", headers=as_partner(key), json={
        "name": {"id": "Pulsa 5rb"}, "points": 1, "category": "pulsa", "fulfilment": "airtime"})
    assert client.get("/api/v1/subscribers/081100000001/points", headers=ADMIN).get_json()["balance"] == 0
    assert client.get("/api/v1/rewards/PULSA5", headers=ADMIN).status_code == 404


def test_the_key_is_stored_hashed_and_listed_without_it(client, key, services):
    stored = [services.r.dump(k) or b"" for k in services.r.keys("*")]
    assert not any(key.encode() in v for v in stored)
    listed = client.get("/api/v1/partners", headers=ADMIN).get_json()["partners"]
    assert [p["institution"] for p in listed] == ["bank-a"] and key not in str(listed)


def test_one_key_per_institution_until_revoked(client, key, lead):
    again = client.post("/api/v1/partners", json={"institution": "bank-a"}, headers=ADMIN)
    assert again.status_code == 409 and "revoke" in again.get_json()["error"]
    assert client.delete("/api/v1/partners/bank-a", headers=ADMIN).get_json() == {
        "institution": "bank-a", "revoked": True}
    assert client.get("/api/v1/leads?institution=bank-a", headers=as_partner(key)).status_code == 401
    assert client.delete("/api/v1/partners/bank-a", headers=ADMIN).status_code == 404
    fresh = client.post("/api/v1/partners", json={"institution": "bank-a"}, headers=ADMIN).get_json()["key"]
    assert client.get("/api/v1/leads?institution=bank-a", headers=as_partner(fresh)).status_code == 200


@pytest.mark.parametrize("body", [{}, {"institution": "Bank A"}, {"institution": 7}, []])
def test_a_bad_institution_is_400(client, body):
    resp = client.post("/api/v1/partners", json=body, headers=ADMIN)
    assert resp.status_code == 400 and resp.get_json()["error"]


def test_only_the_admin_makes_keys(client, key):
    assert client.post("/api/v1/partners", json={"institution": "bank-b"}).status_code == 401
    assert client.get("/metrics", headers=as_partner(key)).status_code == 401


def test_the_cli_adds_lists_and_revokes(app, redis_url, client):
    runner = CliRunner()
    env = {"REDIS_URL": redis_url, "ADMIN_TOKEN": "admin-secret"}
    made = runner.invoke(cli.main, ["partners", "add", "bank-c"], env=env)
    assert made.exit_code == 0, made.output
    key = made.output.strip()
    assert client.get("/api/v1/leads?institution=bank-c", headers=as_partner(key)).status_code == 200
    assert runner.invoke(cli.main, ["partners", "list"], env=env).output.startswith("bank-c\t")
    assert runner.invoke(cli.main, ["partners", "add", "bank-c"], env=env).exit_code == 1
    assert runner.invoke(cli.main, ["partners", "revoke", "bank-c"], env=env).output == "revoked bank-c\n"
    assert client.get("/api/v1/leads?institution=bank-c", headers=as_partner(key)).status_code == 401
    assert runner.invoke(cli.main, ["partners", "revoke", "bank-c"], env=env).exit_code == 1
