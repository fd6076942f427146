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
    assert svg.count('<g class="edge') == len(drawn)
    page = client.get("/simulator/graph").get_data(as_text=True)
    assert f"{len(engine.screens)} screens, {len(drawn)} edges" in page
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_the_graph_draws_loops_dashes_only_back_edges_and_the_machinerys_screens(services):
    import re
    engine = services.engine
    svg = menu_graph.svg(engine)
    depth = {n: i for i, row in enumerate(menu_graph.layers(engine, menu_graph.edges(engine))) for n in row}
    for g in re.findall(r'<g class="edge[^"]*" data-from="([^"]+)" data-to="([^"]+)"><path d="([^"]+)"([^>]*)>', svg):
        source, dest, path, attrs = g
        assert ("stroke-dasharray" in attrs) == (depth[dest] < depth[source]), (source, dest)
        if source == dest:  # a loop: starts and ends on the screen's right side, its label in the picture
            start, end = path.split(" ")[0][1:].split(","), path.split(" ")[-1].split(",")
            assert start[0] == end[0] and start[1] != end[1]
    assert re.search(r'data-from="reward_done" data-to="reward_done"', svg)
    assert all(f'class="special" data-screen="{n}"' in svg for n in ("resume", "blocked", "error"))
    width = float(re.search(r'<svg[^>]* width="([0-9.]+)"', svg).group(1))
    assert width <= 1280
    xs = [float(x) for x in re.findall(r' x="([0-9.]+)"', svg)]
    assert max(xs) < width


# -- noise: what the commands print -------------------------------------------------------
def test_menus_check_prints_its_summary_and_no_log_lines(tmp_path):
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_LEVEL")}
    from pathlib import Path
    command = str(Path(sys.executable).parent / "ussd-app")  # the console script beside this Python
    done = subprocess.run([command, "menus", "check"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("screens walked, 0 problems")
    assert "{" not in done.stdout + done.stderr  # no JSON log line before (or after) it


def test_a_json_log_line_holds_no_terminal_colours():
    import logging
    from ussd_app.core.logs import JsonFormatter
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1,
                               '127.0.0.1 - - "\x1b[33mGET /favicon.ico HTTP/1.1\x1b[0m" 404 -', None, None)
    line = JsonFormatter().format(record)
    assert "\x1b" not in line and "\\u001b" not in line
    assert '"GET /favicon.ico HTTP/1.1\\" 404' in line


def test_seed_demo_says_what_it_seeded(config, redis_url, monkeypatch):
    from click.testing import CliRunner
    from ussd_app import cli
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFER_SEND_WINDOW", "always")
    result = CliRunner().invoke(cli.main, ["seed-demo"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("catalog: 8 rewards on offer (DATA1GB, ")
    assert "subscriber +6281234567890: 12,500 points, offer kta-demo (open)" in lines
    assert lines[-1].startswith("campaign kta-demo: Kredit Multiguna from Bank A, code KTA, until ")


# -- the phone's relay: every dialect, a fresh subscriber, SMS segments ----------------------
@pytest.mark.parametrize("dialect, path", [("africastalking", "/ussd/events"), ("hubtel", "/ussd/hubtel"),
                                           ("truroute", "/ussd/truroute"), ("nalo", None), ("arkesel", None)])
def test_the_relay_times_out_as_each_gateway_does_and_a_redial_offers_to_resume(client, services, dialect, path):
    demo.seed(services)
    number = {"msisdn": "081234567890", "dialect": dialect}
    hop = client.post("/simulator/api/dial", json={**number, "dialled": "*700*2*5#"}).get_json()
    assert "Voucher" in hop["screen"] and hop["dialect"] == dialect
    ended = client.post("/simulator/api/end", json={**number, "session": hop["session"], "code": "*700#",
                                                    "text": "2*5", "reason": "timeout"}).get_json()
    assert ended.get("path") == path and ended["notified"] in ((True,) if path else (None,))
    again = client.post("/simulator/api/dial", json=number).get_json()
    assert again["screen"].startswith("Sesi Anda sebelumnya terputus.")


def test_a_fresh_subscriber_is_a_new_number_with_points_and_the_demo_offer(client, services):
    demo.seed(services)
    first = client.post("/simulator/api/fresh", json={}).get_json()
    second = client.post("/simulator/api/fresh", json={}).get_json()
    assert first["msisdn"].startswith("+6281190") and first["msisdn"] != second["msisdn"]
    assert first["points"] == 12500 and first["offers"] == ["kta-demo"]
    hop = client.post("/simulator/api/dial", json={"msisdn": first["msisdn"], "dialled": "*700*1#"}).get_json()
    assert hop["screen"].startswith("Poin Anda: 12.500")
    inbox = client.get(f"/simulator/api/inbox?msisdn={first['msisdn']}".replace("+", "%2B")).get_json()
    assert [m["segments"] for m in inbox["messages"]] and all(m["segments"] >= 1 for m in inbox["messages"])


def test_sms_segments_are_counted_as_a_phone_counts_them():
    from ussd_app.web.simulator import segments
    assert [segments("a" * 160), segments("a" * 161), segments("a" * 306), segments("a" * 307)] == [1, 2, 2, 3]
    assert [segments("é" * 70), segments("\u20b9" * 71)] == [1, 2]  # é is GSM-7; the rupee sign is not


def test_a_recording_keeps_times_relative_and_matches_any_date_and_time():
    import re
    from ussd_app.scenarios import record
    snapshot = {"taken_at": "2026-12-03T19:41:00+07:00", "offers": ["kta-demo"],
                "points": [{"points": 2500, "expires_at": "2026-12-08T19:41:00+07:00"},
                           {"points": 10000, "expires_at": "2026-12-31T23:59:59+07:00"}]}
    steps = [{"kind": "dial", "value": "*700*1#",
              "reply": "CON Poin Anda: 12.500\n2.500 poin hangus 08-12-2026 19:41 WIB\n0 Kembali 00 Menu"}]
    data = record.scenario(snapshot, steps)
    assert data["given"]["subscribers"]["caller"]["points"] == [
        {"points": 2500, "expires_at": "+5d"}, {"points": 10000, "expires_at": "+676h"}]
    [pattern] = data["steps"][0]["expect_regex"]
    assert re.search(pattern, "2.500 poin hangus 11-12-2026 03:15 WIB")  # replayed three days later
    assert data["steps"][0]["expect"] == ["Poin Anda: 12.500", "0 Kembali 00 Menu"]


def test_a_recording_on_a_withdrawn_offer_replays(client, app, services):
    from ussd_app import sim
    demo.seed(services)
    number = client.post("/simulator/api/fresh", json={}).get_json()["msisdn"]
    for text in ("YA KTA 3171014506900001", "STOP", "MULAI"):
        assert client.post("/simulator/api/sms", json={"msisdn": number, "text": text}).status_code == 200
    snapshot = client.post("/simulator/api/snapshot", json={"msisdn": number}).get_json()
    assert snapshot["consents"] == {"kta-demo": "withdrawn"} and snapshot["notes"] == []
    hop = client.post("/simulator/api/dial", json={"msisdn": number, "dialled": "*700*3#"}).get_json()
    assert "(dibatalkan)" in hop["screen"]
    detail = client.post("/simulator/api/ussd", json={"msisdn": number, "session": hop["session"],
                                                      "code": "*700#", "text": "3*1"}).get_json()
    assert "Dibatalkan" in detail["screen"]
    steps = [{"kind": "dial", "value": "*700*3#", "reply": hop["phone"]},
             {"kind": "input", "value": "1", "reply": detail["phone"]}]
    text = client.post("/simulator/api/scenario", json={"snapshot": snapshot, "steps": steps}).get_json()["yaml"]
    assert "consents:\n        kta-demo: withdrawn" in text
    assert sim.play(sim.Client(app=app), schema.load_text(text), warn=lambda w: None) == 2


def test_a_recording_that_redeems_a_pooled_voucher_brings_its_codes(client, app, services, api):
    """The recording names the pooled voucher it redeemed under given: vouchers,
    so its replays never find the pool (or the stock) empty."""
    from ussd_app import sim
    demo.seed(services)
    number = client.post("/simulator/api/fresh", json={}).get_json()["msisdn"]
    snapshot = client.post("/simulator/api/snapshot", json={"msisdn": number}).get_json()
    steps, text = [], ""
    hop = client.post("/simulator/api/dial", json={"msisdn": number, "dialled": "*700#"}).get_json()
    steps.append({"kind": "dial", "value": "*700#", "reply": hop["phone"]})
    typed = []
    for key in ("2", "5", "1", "1", "1"):  # rewards, vouchers, the coffee voucher, redeem, yes
        typed.append(key)
        hop = client.post("/simulator/api/ussd", json={"msisdn": number, "session": hop["session"],
                                                        "code": "*700#", "text": "*".join(typed)}).get_json()
        steps.append({"kind": "input", "value": key, "reply": hop["phone"]})
    assert "Voucher kopi" in steps[-1]["reply"] and hop["end"], steps[-1]
    text = client.post("/simulator/api/scenario", json={"snapshot": snapshot, "steps": steps}).get_json()["yaml"]
    assert "vouchers:\n    KOPI25: 1" in text
    before = api("GET", "/api/v1/rewards/KOPI25")
    services.r.delete(keys_of("KOPI25"))  # the demo's pool used up
    api("PUT", "/api/v1/rewards/KOPI25", {**{k: v for k, v in before.items() if k not in (
        "code", "revision", "available")}, "stock": 0}, status=200)
    scenario = schema.load_text(text)
    for _ in range(2):
        assert sim.play(sim.Client(app=app), scenario, warn=lambda w: None) == len(scenario.steps)
    assert api("GET", "/api/v1/rewards/KOPI25")["stock"] == 0  # what a replay redeems it brought


def keys_of(code):
    from ussd_app.core import keys
    return keys.voucher_pool(code)


def test_a_recording_on_a_number_that_stopped_offers_replays(client, app, services):
    from ussd_app import sim
    demo.seed(services)
    number = client.post("/simulator/api/fresh", json={}).get_json()["msisdn"]
    assert client.post("/simulator/api/sms", json={"msisdn": number, "text": "STOP"}).status_code == 200
    snapshot = client.post("/simulator/api/snapshot", json={"msisdn": number}).get_json()
    assert snapshot["opted_out"] is True and snapshot["notes"] == []
    hop = client.post("/simulator/api/dial", json={"msisdn": number, "dialled": "*700*3#"}).get_json()
    assert hop["screen"].startswith("Anda sudah berhenti menerima penawaran keuangan.")
    steps = [{"kind": "dial", "value": "*700*3#", "reply": hop["phone"]}]
    text = client.post("/simulator/api/scenario", json={"snapshot": snapshot, "steps": steps}).get_json()["yaml"]
    assert "opted_out: true" in text
    assert sim.play(sim.Client(app=app), schema.load_text(text), warn=lambda w: None) == 1
