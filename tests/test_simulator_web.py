"""/simulator without a browser: what it serves, where, and what it never shows."""
import pytest

from ussd_app import create_app, demo
from ussd_app.scenarios import schema
from ussd_app.web import menu_graph


@pytest.fixture
def secured(config, redis_url):
    app = create_app({**config, "ADMIN_TOKEN": "admin-secret", "GATEWAY_TOKEN": "gateway-secret"})
    demo.seed(app.extensions["ussd"])
    return app.test_client()


def test_not_served_in_production(config):
    app = create_app({**config, "USSD_APP_ENV": "production", "ADMIN_TOKEN": "a", "GATEWAY_TOKEN": "g",
                      "ALLOW_VOLATILE_REDIS": True, "ALLOW_SIMULATED_PROVIDERS": True,
                      "PII_KEY": "x" * 43 + "="})
    client = app.test_client()
    assert client.get("/simulator").status_code == 404
    assert client.post("/simulator/api/dial", json={"msisdn": "081234567890"}).status_code == 404


def test_the_relay_adds_the_tokens_and_the_page_never_holds_them(secured):
    page = secured.get("/simulator").get_data(as_text=True)
    assert "admin-secret" not in page and "gateway-secret" not in page
    hop = secured.post("/simulator/api/dial", json={"msisdn": "081234567890", "dialled": "*700*1#"}).get_json()
    assert hop["status"] == 200 and hop["screen"].startswith("Poin Anda: 12.500")
    assert (hop["code"], hop["text"], hop["end"]) == ("*700#", "1", False)
    assert hop["length"] == len(hop["screen"]) and hop["limit"] == 160 and hop["ms"] >= 0
    nxt = secured.post("/simulator/api/ussd", json={"msisdn": "081234567890", "session": hop["session"],
                                                    "code": "*700#", "text": "1*0"}).get_json()
    assert nxt["screen"].startswith("Poin Plus")
    assert secured.post("/simulator/api/sms", json={"msisdn": "081234567890", "text": "POIN"}).status_code == 200
    inbox = secured.get("/simulator/api/inbox?msisdn=081234567890").get_json()
    assert inbox["messages"][-1]["text"].startswith("Poin Anda: 12.500")
    ended = secured.post("/simulator/api/end", json={"msisdn": "081234567890", "session": hop["session"],
                                                     "code": "*700#", "reason": "hangup"})
    assert ended.status_code == 200


@pytest.mark.parametrize("path, body, error", [
    ("/simulator/api/dial", {"msisdn": "hello"}, "msisdn is not an Indonesian mobile number"),
    ("/simulator/api/dial", {"msisdn": "081234567890", "dialect": "nokia"}, "dialect must be one of"),
    ("/simulator/api/ussd", {"msisdn": "081234567890"}, "session must be a text"),
    ("/simulator/api/end", {"msisdn": "081234567890", "reason": "bored"}, "reason must be hangup or timeout"),
    ("/simulator/api/sms", {"msisdn": "081234567890", "text": ""}, "text must be a text"),
    ("/simulator/api/scenario", {"snapshot": {}, "steps": []}, "nothing to save yet"),
    ("/simulator/api/scenario", {"snapshot": [], "steps": {}}, "snapshot must be an object"),
])
def test_bad_requests_get_one_line_errors(client, path, body, error):
    resp = client.post(path, json=body)
    assert resp.status_code == 400
    assert error in resp.get_json()["error"]


def test_a_recording_is_a_scenario_the_runner_accepts(client, services):
    demo.seed(services)
    snapshot = client.post("/simulator/api/snapshot", json={"msisdn": "081234567890"}).get_json()
    assert snapshot["offers"] == ["kta-demo"] and sum(b["points"] for b in snapshot["points"]) == 12500
    steps = [{"kind": "dial", "value": "*700#", "reply": "CON Poin Plus\n1 Cek poin"},
             {"kind": "input", "value": "1", "reply": "END Ref: ABC123X done", "received": ["Kode: KOPI-7QX2."]},
             {"kind": "sms", "value": "POIN", "received": ["Poin Anda: 12.500."]},
             {"kind": "hangup"}]
    text = client.post("/simulator/api/scenario", json={"snapshot": snapshot, "steps": steps}).get_json()["yaml"]
    scenario = schema.load_text(text)
    assert [s.kind for s in scenario.steps] == ["dial", "input", "sms", "hangup"]
    assert scenario.steps[1].checks == {"expect_regex": [r"Ref: \S+? done"], "end": True,
                                        "expect_sms": {"matches": r"Kode: \S+?\."}}
    assert scenario.given["subscribers"]["caller"]["offers"] == ["kta-demo"]


def test_the_graph_draws_every_screen_and_every_edge_of_the_engine(client, services):
    engine = services.engine
    drawn = {(e.source, e.dest) for e in menu_graph.edges(engine)}
    assert drawn == {(a, b) for a, dests in engine.edges().items() for b in dests}
    svg = client.get("/simulator/graph.svg").get_data(as_text=True)
    assert svg.startswith("<svg") and svg.count('class="screen"') == len(engine.screens)
    assert svg.count('class="edge"') == len(drawn)
    page = client.get("/simulator/graph").get_data(as_text=True)
    assert f"{len(engine.screens)} screens, {len(drawn)} edges" in page
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
