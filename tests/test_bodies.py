"""Request bodies are declared (msgspec Structs with constraints): a field of the
wrong JSON type or outside its bounds is 400 naming it, a boolean is a JSON
boolean, and every operator text (a reward's partner, a points entry's source
and reference too) follows the rules of any other: GSM-7, one line, within its
limit."""
import pytest

from ussd_app.core import config
from ussd_app.core.errors import ConfigError

from test_offers import campaign_body

WALKER = "+6281355550000"
REWARD = {"name": {"id": "Kopi susu", "en": "Milk coffee"}, "category": "voucher", "points": 100,
          "fulfilment": "voucher", "generate_codes": True, "partner": "Kafe"}
EARNING = {"points": 500, "source": "topup", "reference": "tx-1"}


def error(resp, status=400) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()["error"]


class TestBooleans:
    @pytest.mark.parametrize("value", ["false", "true", 0, 1, None, "", [], {}])
    def test_generate_codes_takes_only_a_json_boolean(self, client, value):
        resp = client.put("/api/v1/rewards/KOPI", json={**REWARD, "generate_codes": value})
        assert error(resp).startswith("generate_codes must be true or false")
        assert client.get("/api/v1/rewards/KOPI").status_code == 404

    @pytest.mark.parametrize("value", [True, False])
    def test_a_json_boolean_is_taken_as_it_is(self, client, value):
        resp = client.put("/api/v1/rewards/KOPI", json={**REWARD, "generate_codes": value})
        assert resp.status_code == 200 and resp.get_json()["generate_codes"] is value

    def test_left_out_it_is_false(self, client):
        body = {k: v for k, v in REWARD.items() if k != "generate_codes"}
        assert client.put("/api/v1/rewards/KOPI", json=body).get_json()["generate_codes"] is False


class TestOperatorText:
    @pytest.mark.parametrize("partner", ["Kafe\n9 HADIAH GRATIS", "Ka\rfe", "Kafe\x00", "Kafe \u2615",
                                         "K" * 61, 5, {"a": 1}, ["Kafe"]])
    def test_a_rewards_partner_follows_the_text_rules(self, client, partner):
        resp = client.put("/api/v1/rewards/KOPI", json={**REWARD, "partner": partner})
        assert error(resp).startswith("partner ")
        assert client.get("/api/v1/rewards/KOPI").status_code == 404

    @pytest.mark.parametrize("partner, kept", [("Kafe Nusantara", "Kafe Nusantara"), (" Kafe ", "Kafe"),
                                               ("", ""), (None, "")])
    def test_a_partner_a_phone_can_show_is_kept(self, client, partner, kept):
        resp = client.put("/api/v1/rewards/KOPI", json={**REWARD, "partner": partner})
        assert resp.status_code == 200 and resp.get_json()["partner"] == kept

    @pytest.mark.parametrize("field", ["source", "reference"])
    @pytest.mark.parametrize("value", ["tx\n1", "tx\t1", "tx\x1b1", "tx \u2615", "", " ", 7, {"a": 1}])
    def test_a_points_entrys_source_and_reference_follow_the_text_rules(self, client, field, value):
        resp = client.post(f"/api/v1/subscribers/{WALKER}/points", json={**EARNING, field: value})
        assert error(resp).startswith(f"{field} ")
        assert client.get(f"/api/v1/subscribers/{WALKER}/points").get_json()["balance"] == 0

    def test_the_source_and_reference_limits_count_septets(self, client):
        ok = client.post(f"/api/v1/subscribers/{WALKER}/points",
                         json={**EARNING, "source": "s" * 64, "reference": "r" * 128})
        assert ok.status_code == 201
        resp = client.post(f"/api/v1/subscribers/{WALKER}/points",
                           json={**EARNING, "reference": "r" * 127 + "\u20ac"})
        assert error(resp).startswith("reference must be at most 128 characters")


class TestFieldsAreNamed:
    @pytest.mark.parametrize("value", ["5", 5.0, True, 0, 10_000_001, 2**80, None])
    def test_points_of_the_wrong_kind_are_named(self, client, value):
        resp = client.post(f"/api/v1/subscribers/{WALKER}/points", json={**EARNING, "points": value})
        assert error(resp) == "points must be a whole number from 1 to 10000000"

    def test_a_missing_field_is_named(self, client):
        resp = client.post(f"/api/v1/subscribers/{WALKER}/points", json={"source": "topup", "reference": "x"})
        assert error(resp) == "points must be a whole number from 1 to 10000000"

    @pytest.mark.parametrize("body, said", [
        ({"stock": -1}, "stock must be"), ({"stock": "3"}, "stock must be"),
        ({"max_per_transaction": 100}, "max_per_transaction must be"),
        ({"monthly_limit": 0}, "monthly_limit must be"), ({"fulfilment": "magic"}, "fulfilment must be one of"),
        ({"category": "Pulsa"}, "category must be"), ({"name": {"id": "Kopi", "fr": "Cafe"}}, "name may only"),
        ({"name": {"en": "Coffee"}}, "name.id "), ({"points": "100"}, "points must be"),
    ])
    def test_reward_fields_are_named(self, client, body, said):
        assert error(client.put("/api/v1/rewards/KOPI", json={**REWARD, **body})).startswith(said)

    @pytest.mark.parametrize("body, said", [
        ({"status": "asleep"}, "status must be active or blocked"),
        ({"credit_score": 1001}, "credit_score must be a whole number from 0 to 1000"),
        ({"credit_score": "700"}, "credit_score must be a whole number from 0 to 1000"),
        ({"attributes": []}, "attributes must be an object"), ({"language": "fr"}, "language must be id or en"),
    ])
    def test_subscriber_fields_are_named(self, client, body, said):
        assert error(client.put(f"/api/v1/subscribers/{WALKER}", json=body)) == said

    @pytest.mark.parametrize("change, said", [
        ({"eligibility": {"credit_score": {}}}, "eligibility.credit_score must use min, max, equals or in"),
        ({"eligibility": {"attributes": {"region": {"min": "x"}}}}, "eligibility.attributes.region.min must be"),
        ({"eligibility": {"attributes": {"a\nb": {"in": 3}}}}, 'eligibility.attributes["a\\nb"].in must be a list'),
        ({"eligibility": {"credit_score": {"min": True}}}, "eligibility.credit_score.min must be a number"),
        ({"eligibility": {"regions": {}}}, "eligibility may only have credit_score, attributes"),
        ({"institution": {"id": "bank-a", "name": "Bank A", "webhook": {"url": "x"}}},
         "institution.webhook.secret must be a string of 16-256 characters"),
        ({"institution": {"id": "bank-a", "name": "Bank A", "webhook": None}},
         "institution.webhook must be an object with url and secret"),
        ({"consent_version": True}, "consent_version must be"), ({"consent_version": 2}, None),
        ({"code": "kk"}, None), ({"code": "ya"}, "code must be 2-10 letters"), ({"product": None}, "product "),
        ({"valid_from": 5}, "valid_from must be an ISO 8601 time"), ({"eligibility": None}, None),
        ({"institution": {"id": "bank-a", "name": "Bank A", "support": None}}, None),
    ])
    def test_campaign_fields_are_named(self, client, change, said):
        resp = client.post("/api/v1/campaigns", json=campaign_body(**change))
        if said is None:
            assert resp.status_code == 201, resp.get_data(as_text=True)
        else:
            assert error(resp).startswith(said)

    def test_a_value_sent_is_never_echoed(self, client):
        said = error(client.put("/api/v1/rewards/KOPI", json={**REWARD, "fulfilment": "3171014506900001"}))
        assert "3171014506900001" not in said

    def test_a_voucher_code_is_named_by_its_place(self, client):
        assert client.put("/api/v1/rewards/KOPI", json={**REWARD, "generate_codes": False}).status_code == 200
        said = error(client.post("/api/v1/rewards/KOPI/vouchers", json={"codes": ["KOPI-1", "bad code!"]}))
        assert said.startswith("codes[1] ") and "bad code" not in said


class TestSettings:
    @pytest.mark.parametrize("raw, value", [("true", True), ("1", True), ("yes", True), ("on", True),
                                            ("false", False), ("0", False), ("no", False), ("off", False),
                                            ("TRUE", True)])
    def test_a_boolean_setting_is_read(self, raw, value):
        assert config.load(environ={"JOBS_SYNC": raw}).JOBS_SYNC is value

    @pytest.mark.parametrize("raw", ["maybe", "2", "ja"])
    def test_a_boolean_setting_that_is_none_is_named(self, raw):
        with pytest.raises(ConfigError, match=f"JOBS_SYNC must be true or false, got '{raw}'"):
            config.load(environ={"JOBS_SYNC": raw})

    def test_a_number_setting_that_is_none_is_named(self):
        with pytest.raises(ConfigError, match="FULFILMENT_TIMEOUT must be a number, got 'soon'"):
            config.load(environ={"FULFILMENT_TIMEOUT": "soon"})

    def test_every_setting_is_declared_with_its_default(self):
        names = {f.name: f.default for f in config.fields(config.Config)}
        assert names["USSD_MAX_CHARS"] == 160 and names["JOBS_SYNC"] is False and names["REDIS_URL"] is None
        assert config.load(environ={}) == config.Config()
