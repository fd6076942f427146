"""An offer code names one live campaign: `YA <code> <NIK>` must name one
institution. A second live campaign with the code is 409 naming it, also when
two are created at once; once a campaign has ended its code can be used again."""
import threading
from datetime import datetime

import pytest

from ussd_app.core import keys
from ussd_app.core.formats import WIB
from ussd_app.offers import campaigns

from test_offers import NIK, campaign_body, leads


def second(**changes):
    return campaign_body(**{"id": "kta-dec", "institution": {"id": "bank-c", "name": "Bank C"}, **changes})


def test_a_second_live_campaign_with_the_code_is_409_naming_it(client, api):
    api("POST", "/api/v1/campaigns", campaign_body(), status=201)
    resp = client.post("/api/v1/campaigns", json=second())
    assert resp.status_code == 409
    assert "KTA" in resp.get_json()["error"]
    assert client.get("/api/v1/campaigns/kta-dec").status_code == 404
    resp = client.post("/api/v1/campaigns", json=second(code="kta"))  # codes are upper-cased
    assert resp.status_code == 409
    api("POST", "/api/v1/campaigns", second(code="KTC"), status=201)


def test_a_campaign_not_yet_started_holds_its_code(client, api):
    api("POST", "/api/v1/campaigns", campaign_body(valid_from="2034-01-01T00:00:00+07:00"), status=201)
    assert client.post("/api/v1/campaigns", json=second()).status_code == 409


def test_of_two_created_at_once_one_wins(app, services):
    bodies = [campaign_body(id=f"kta-{i}", institution={"id": f"bank-{i}", "name": f"Bank {i}"})
              for i in range(8)]
    answers = []
    start = threading.Barrier(len(bodies))

    def post(body):
        client = app.test_client()
        start.wait()
        answers.append(client.post("/api/v1/campaigns", json=body).status_code)
    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [201] + [409] * 7
    assert len(campaigns.every(services.r)) == 1


def test_the_code_is_free_again_once_its_campaign_ended(client, api, clock):
    api("POST", "/api/v1/campaigns", campaign_body(valid_until="2028-01-01T00:00:00+07:00"), status=201)
    clock.now = datetime(2028, 1, 1, 0, 0, 1, tzinfo=WIB).timestamp()
    api("POST", "/api/v1/campaigns", second(), status=201)
    third = campaign_body(id="kta-jan", institution={"id": "bank-d", "name": "Bank D"})
    assert client.post("/api/v1/campaigns", json=third).status_code == 409  # kta-dec holds it now


def test_an_ended_campaign_takes_no_code_from_a_live_one(client, api):
    api("POST", "/api/v1/campaigns", campaign_body(), status=201)
    api("POST", "/api/v1/campaigns", second(valid_from="2020-01-01T00:00:00+07:00",
                                            valid_until="2021-01-01T00:00:00+07:00"), status=201)
    third = campaign_body(id="kta-jan", institution={"id": "bank-d", "name": "Bank D"})
    assert client.post("/api/v1/campaigns", json=third).status_code == 409  # kta-nov holds it still


def test_a_campaign_stored_before_codes_were_claimed_holds_its_code(client, api, services):
    api("POST", "/api/v1/campaigns", campaign_body(), status=201)
    services.r.delete(keys.offer_code("KTA"))  # as a release before this one left it
    resp = client.post("/api/v1/campaigns", json=second())
    assert resp.status_code == 409 and "KTA" in resp.get_json()["error"]


def test_storing_a_campaign_again_keeps_its_code(services):
    camp = campaigns.validate(campaign_body(), ["KreditSmart"])
    campaigns.put(services.r, camp)
    campaigns.put(services.r, camp)  # the demo's seed, run again
    with pytest.raises(Exception, match="KTA"):
        campaigns.put(services.r, campaigns.validate(second(), ["KreditSmart"]))


@pytest.mark.parametrize("ended, live", [("kta-nov", "kta-dec"), ("kta-dec", "kta-nov")])
def test_ya_code_nik_goes_to_the_live_campaign_with_the_code(api, phone, clock, ended, live):
    """The subscriber still holds the ended campaign's offer (in whichever order the two are read)."""
    api("PUT", "/api/v1/subscribers/081100000001",
        {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}}, status=200)
    api("POST", "/api/v1/campaigns", campaign_body(id=ended, valid_until="2028-01-01T00:00:00+07:00"),
        status=201)
    api("POST", f"/api/v1/campaigns/{ended}/offers", {}, status=200)
    clock.now = datetime(2028, 1, 2, tzinfo=WIB).timestamp()
    api("POST", "/api/v1/campaigns", second(id=live), status=201)
    api("POST", f"/api/v1/campaigns/{live}/offers", {}, status=200)
    phone.msisdn = "081100000001"
    phone.sms(f"YA KTA {NIK}")
    assert [lead["campaign"] for lead in leads(api, institution="bank-c")["leads"]] == [live]
    assert leads(api)["leads"] == []
