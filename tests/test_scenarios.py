"""The simulator's scenarios: checked before they run, played against a real
Redis, repeatable, and reported as CI servers read them."""
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from ussd_app import demo, sim
from ussd_app.scenarios import schema
from ussd_app.scenarios.play import Inbox, split_dial
from ussd_app.gateways import DIALECTS

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


@pytest.fixture
def embedded(monkeypatch):
    """The CLI in-process on the embedded store (as a QA engineer runs it first)."""
    for name in ("REDIS_URL", "ADMIN_TOKEN", "GATEWAY_TOKEN", "USSD_APP_ENV"):
        monkeypatch.delenv(name, raising=False)
    from ussd_app.core import store
    store.connect(None).flushall()  # as a fresh ussd-sim process finds it


def run_cli(*args, input=None):
    return CliRunner().invoke(sim.main, list(args), input=input)


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(app, path, dialect):
    """Every scenario passes behind every gateway."""
    warnings = []
    steps = sim.play(sim.Client(app=app, dialect=dialect), schema.load_file(path), warn=warnings.append)
    assert steps > 0
    assert warnings == []


def test_a_scenario_names_its_dialect(app):
    """`dialect:` in a file: its hops go to that gateway's route, in its format."""
    scenario = schema.from_data({"dialect": "truroute", "steps": [
        {"dial": "081234567890", "expect": "Poin Plus"}, {"input": 4, "expect": "1 Tentang program"}]})
    client = sim.Client(app=app)
    seen = []
    call = client._call
    client._call = lambda method, path, **kw: seen.append((path, kw.get("headers", {}).get("Content-Type"))) \
        or call(method, path, **kw)
    assert sim.play(client, scenario) == 2
    assert [s for s in seen if s[0].startswith("/ussd")] == [("/ussd/truroute", "application/xml")] * 2


def test_the_shipped_scenarios_pass_in_any_order_repeatedly_without_touching_demo_data(app, services):
    demo.seed(services)
    client = sim.Client(app=app)
    before = {m: (client.api("GET", f"/api/v1/subscribers/{m}/points")[1], client.outbox(m))
              for m, _, _ in demo.SUBSCRIBERS}
    catalog = client.api("GET", "/api/v1/rewards")[1]
    for path in [*SCENARIOS, *reversed(SCENARIOS)]:
        sim.play(client, schema.load_file(path), warn=lambda w: None)
    after = {m: (client.api("GET", f"/api/v1/subscribers/{m}/points")[1], client.outbox(m))
             for m, _, _ in demo.SUBSCRIBERS}
    assert after == before
    now_active = [w["code"] for w in client.api("GET", "/api/v1/rewards")[1]["rewards"]
                  if w["active_until"] is None or w["active_until"] > "2000"]
    assert all(w["code"] in now_active for w in catalog["rewards"])
    # the scenarios' own rewards were retired when their file ended
    from ussd_app.loyalty import rewards
    active = {w.code for w in rewards.active(services.r, services.clock(), services.kept)}
    assert active == {w["code"] for w in catalog["rewards"]}


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_a_mismatch_names_the_line_with_expected_and_got_as_the_phone_shows_it(app, dialect):
    scenario = schema.from_data({"given": {"subscribers": {"ani": {"points": 10}}},
                                 "steps": [{"dial": "ani", "expect": "Selamat datang"}]})
    with pytest.raises(sim.Mismatch) as e:
        sim.play(sim.Client(app=app, dialect=dialect), scenario)
    assert e.value.line == 6  # the step's line
    assert e.value.details()[:2] == ["expected: 'Selamat datang'", "got:      Poin Plus"]
    assert "{" not in e.value.got and "<" not in e.value.got  # the screen, not the gateway's wire


def test_a_time_out_is_what_each_gateway_sends():
    from ussd_app.scenarios import wire
    at = wire.end("africastalking", "s", "+6281234567890", "*700#", "2*5", "timeout")
    assert at[0] == "/ussd/events" and at[2]["status"] == "Incomplete" and "time" in at[2]["errorMessage"]
    assert wire.end("africastalking", "s", "+6281234567890", "*700#", "", "hangup")[2]["status"] == "Incomplete"
    assert wire.end("hubtel", "s", "+6281234567890", "*700#", "2", "timeout")[2]["Type"] == "Timeout"
    assert "<type>4</type>" in wire.end("truroute", "s", "+6281234567890", "*700#", "2", "timeout")[2]
    assert wire.end("nalo", "s", "+6281234567890", "*700#", "2", "timeout") is None
    assert wire.end("arkesel", "s", "+6281234567890", "*700#", "2", "timeout") is None


def test_the_terminal_phone_times_out_then_a_redial_offers_to_resume(embedded):
    keys = ["2", "5", "1", "1", "/timeout", "/dial", "1", "/quit"]
    result = run_cli(input="\n".join(keys) + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "[the session timed out]" in out
    after = out.split("[the session timed out]", 1)[1]
    assert "| Sesi Anda sebelumnya terputus." in after and "| Tukar 1x Voucher kopi" in after


def test_the_terminal_phone_redraws_the_screen_after_an_sms(embedded):
    result = run_cli(input="2\n/sms POIN\n/quit\n")
    assert result.exit_code == 0, result.output
    after = result.stdout.split("[SMS sent to the short code: POIN]", 1)[1]
    assert "SMS from POIN" in after and "| " in after.split("SMS from POIN", 1)[1]


# -- the schema: a typo never passes ------------------------------------------------
TYPOS = {
    "dail": ("steps:\n  - dail: '081234567890'\n", 2, "unknown step dail (did you mean dial?)"),
    "inptu": ("steps:\n  - dial: '081234567890'\n  - inptu: 1\n", 3, "unknown step inptu (did you mean input?)"),
    "expct": ("steps:\n  - dial: '081234567890'\n    expct: Poin\n", 3,
              "unknown key expct in a dial step (did you mean expect?)"),
    "expect_sm": ("steps:\n  - dial: '081234567890'\n  - sms: POIN\n    expect_sm: Poin\n", 4,
                  "unknown key expect_sm in an sms step (did you mean expect_sms?)"),
    "expect on sms": ("steps:\n  - dial: '081234567890'\n  - sms: POIN\n    expect: Poin\n", 4,
                      "expect: an SMS has no screen: check its answer with expect_sms"),
    "end on api": ("steps:\n  - api: GET /api/v1/rewards\n    end: true\n", 3,
                   "end: it means nothing on an api step"),
    "wrong type": ("steps:\n  - dial: '081234567890'\n    end: 'yes'\n", 3, "end must be a true or false"),
    "invalid regex": ("steps:\n  - dial: '081234567890'\n    expect_regex: '(['\n", 3,
                      "invalid regular expression '(['"),
    "sms before dial": ("steps:\n  - sms: POIN\n", 2, "an sms step before any dial needs from:"),
    "input before dial": ("steps:\n  - input: 1\n", 2, "input before any dial: dial first"),
    "unknown name": ("given:\n  subscribers: {ani: {points: 5}}\nsteps:\n  - dial: ani\n"
                     "  - api: GET /api/v1/subscribers/${anni}/points\n", 5,
                     "${anni} is not a name given: declares (did you mean ani?)"),
    "given typo": ("given:\n  subscribers:\n    ani: {pionts: 5}\nsteps:\n  - dial: ani\n", 3,
                   "subscribers.ani: unknown key pionts (did you mean points?)"),
    "two actions": ("steps:\n  - dial: '081234567890'\n    input: 1\n", 2, "a step does one thing"),
    "not a number": ("steps:\n  - dial: ani\n", 2, "dial 'ani' is neither a subscriber of given: nor a phone number"),
    "unknown dialect": ("dialect: hubtle\nsteps:\n  - dial: '081234567890'\n", 1, "unknown dialect hubtle"),
    "broken yaml": ("steps:\n  - dial: '0812\n  - input: 1\n", 4, "not valid YAML"),
    "top-level list": ("- dial: '081234567890'\n", 1, "a scenario is a mapping with steps:"),
    "no steps": ("name: nothing\n", 1, "a scenario needs steps:"),
}


@pytest.mark.parametrize("case", TYPOS, ids=list(TYPOS))
def test_a_scenario_with_a_typo_is_refused_naming_file_and_line(case):
    text, line, message = TYPOS[case]
    with pytest.raises(schema.ScenarioError) as e:
        schema.load_text(text, "typo.yaml")
    assert f"typo.yaml:{line}: " in str(e.value)
    assert message in str(e.value)


def test_an_empty_file_is_refused():
    with pytest.raises(schema.ScenarioError, match="typo.yaml: empty file"):
        schema.load_text("", "typo.yaml")


def test_every_project_scenario_passes_the_schema():
    for path in SCENARIOS:
        assert schema.load_file(path).steps


# -- ussd-sim run --------------------------------------------------------------------
def test_run_plays_every_file_one_line_each_and_counts(tmp_path, embedded, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("given:\n  subscribers: {ani: {points: 5}}\nsteps:\n  - dial: ani\n    end: true\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text("steps:\n  - dial: '081234567890'\n    expct: x\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    report = tmp_path / "out" / "junit.xml"
    report.parent.mkdir()
    result = run_cli("run", str(SCENARIOS[0]), str(bad), "typo.yaml", "empty.yaml", "--junit", str(report))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ok    {SCENARIOS[0]}")
    assert lines[1:4] == [f"FAIL  {bad}:4: the session went on", "      expected: the session to end",
                          "      got:      Poin Plus"]
    assert "FAIL  typo.yaml:3: unknown key expct" in result.stdout
    assert "FAIL  empty.yaml: empty file: a scenario needs steps" in result.stdout
    assert lines[-1] == "1 passed, 3 failed"
    assert "Traceback" not in result.output and result.stderr == ""
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "2")
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases[1:]] == ["bad.yaml", "typo.yaml", "empty.yaml"]
    assert cases[0].get("classname") == str(SCENARIOS[0])  # outside the working directory: as given
    assert [(c.find("failure") is not None, c.find("error") is not None) for c in cases] == [
        (False, False), (True, False), (False, True), (False, True)]
    assert cases[1].find("failure").get("message") == f"{bad}:4: the session went on"
    assert "got:      Poin Plus" in cases[1].find("failure").text
    assert cases[0].find("properties/property").attrib == {"name": "dialect", "value": "africastalking"}
    transcript = cases[1].find("system-out").text
    assert transcript.startswith("> dial *700#\n< Poin Plus")


def test_run_plays_every_project_scenario_twice_on_the_embedded_store(embedded):
    result = run_cli("run", *map(str, SCENARIOS), *map(str, SCENARIOS))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"{2 * len(SCENARIOS)} passed, 0 failed"


def test_run_against_a_port_with_no_server_says_so_in_one_line(embedded):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("--url", f"http://127.0.0.1:{port}", "run", *map(str, SCENARIOS))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"error: cannot reach http://127.0.0.1:{port}: Connection refused"]
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)


def test_run_refuses_in_process_under_production(tmp_path, monkeypatch, embedded):
    monkeypatch.setenv("USSD_APP_ENV", "production")
    result = run_cli("run", str(SCENARIOS[0]))
    assert result.exit_code == 1
    assert "does not run the app in-process on production data; use --url" in result.output
    assert isinstance(result.exception, SystemExit)


def test_a_secured_server_answers_with_a_hint_naming_the_token(config, redis_url):
    from ussd_app import create_app
    app = create_app({**config, "ADMIN_TOKEN": "adm", "GATEWAY_TOKEN": "gw"})
    scenario = schema.from_data({"given": {"subscribers": {"ani": {}}}, "steps": [{"dial": "ani"}]})
    with pytest.raises(sim.Mismatch, match="answered 401 .*set ADMIN_TOKEN"):
        sim.play(sim.Client(app=app, token="wrong"), scenario)
    scenario = schema.from_data({"steps": [{"dial": "081234567890"}]})
    with pytest.raises(sim.Mismatch, match=r"/ussd answered 401 \(set GATEWAY_TOKEN"):
        sim.play(sim.Client(app=app, token="adm"), scenario)
    with pytest.raises(sim.ClientError, match=r"outbox answered 401 \(set ADMIN_TOKEN"):
        sim.Client(app=app, gateway_token="gw").outbox("081234567890")


# -- the phone in the terminal ------------------------------------------------------------
def test_shortcut_dial_types_the_digits_in_advance():
    assert split_dial("*700#", "*700#") == ("*700#", "")
    assert split_dial("*700*3#", "*700#") == ("*700#", "3")
    assert split_dial("*700*2*1#", "*700#") == ("*700#", "2*1")
    assert split_dial("*384*1234*5#", "*384*1234#") == ("*384*1234#", "5")
    assert split_dial("*123*4#", "*700#") == ("*123#", "4")


def test_the_phone_dials_a_shortcut_straight_to_its_screen(embedded):
    result = run_cli("--code", "*700*3#", input="/quit\n")
    assert result.exit_code == 0, result.output
    assert "| Penawaran untuk Anda:" in result.stdout
    assert "| Poin Plus" not in result.stdout


def test_the_phone_takes_commands_at_any_time_and_shows_each_sms_once(embedded):
    # on the points menu: an SMS, then redeem a voucher, then the inbox
    keys = ["2", "/sms POIN", "5", "1", "1", "1", "/inbox", "/dial", "/hangup", "/timeout", "/help",
            "/quit", "1"]
    result = run_cli(input="\n".join(keys) + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "[SMS sent to the short code: POIN]" in out
    assert out.count("SMS from POIN") >= 1
    assert "Poin Anda: 12.500" in out
    # the voucher SMS arrives once after the hop that redeemed, and once more for /inbox
    assert out.count("Kode voucher") == 2
    assert "[hung up]" in out and "no session to end" in out
    assert "/timeout     let the session time out" in out
    assert "Traceback" not in result.output


def test_the_phone_says_which_token_is_missing(config, redis_url, capsys):
    from ussd_app import create_app
    app = create_app({**config, "GATEWAY_TOKEN": "gw"})
    phone = sim.TerminalPhone(sim.Client(app=app), "+6281234567890", 160)
    assert phone.run("*700#") == 1
    err = capsys.readouterr().err
    assert "error: /ussd answered 401 (set GATEWAY_TOKEN to the server's gateway token" in err
    assert "missing or wrong gateway token" in err


def test_the_phone_against_no_server_says_so(embedded):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("--url", f"http://127.0.0.1:{port}", input="/quit\n")
    assert result.exit_code == 1
    assert f"error: cannot reach http://127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_the_inbox_shows_what_is_new_once(app):
    messages = [{"to": "x", "text": "a", "sent_at": "1"}]
    inbox = Inbox(lambda m: list(messages))
    inbox.mark("x")
    assert inbox.new("x") == []
    messages.append({"to": "x", "text": "b", "sent_at": "2"})
    assert [m["text"] for m in inbox.new("x")] == ["b"]
    assert inbox.new("x") == []
    del messages[0]  # an outbox trimmed at the front shifts nothing
    messages.append({"to": "x", "text": "c", "sent_at": "3"})
    assert [m["text"] for m in inbox.new("x")] == ["c"]


def test_the_documented_example_passes_the_schema():
    page = (Path(__file__).parent.parent / "docs" / "simulator.md").read_text()
    example = page.split("## Scenario files", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = schema.load_text(example, "docs/simulator.md")
    assert [s.kind for s in scenario.steps][:3] == ["dial", "input", "choose"]


def test_the_phone_without_the_admin_token_still_dials_and_says_why_no_sms(config, redis_url, capsys,
                                                                          monkeypatch):
    from ussd_app import create_app
    app = create_app({**config, "ADMIN_TOKEN": "adm"})
    demo.seed(app.extensions["ussd"])
    keys = iter(["1", "/sms POIN", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(keys))
    assert sim.TerminalPhone(sim.Client(app=app), "+6281234567890", 160).run("*700#") == 0
    out, err = capsys.readouterr()
    assert "| Poin Anda: 12.500" in out
    assert err.count("outbox answered 401 (set ADMIN_TOKEN") == 1 and "SMS will not be shown" in err


def test_ctrl_c_at_the_prompt_does_not_leave_the_phone(app, capsys, monkeypatch):
    demo.seed(app.extensions["ussd"])

    def keys():
        yield "1"
        raise KeyboardInterrupt
    typed = keys()

    def read(prompt=""):
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None
    monkeypatch.setattr("builtins.input", read)
    assert sim.TerminalPhone(sim.Client(app=app), "+6281234567890", 160).run("*700#") == 0
    assert "(/quit to leave)" in capsys.readouterr().out


def test_a_hang_up_the_app_refuses_to_hear_is_warned_not_failed(app):
    class Refusing(sim.Client):
        def end(self, *args, **session):
            self.told = session
            return 400, "missing hopsCount", "/ussd/events"
    client = Refusing(app=app)
    warnings = []
    scenario = schema.from_data({"steps": [{"dial": "081234567890"}, {"input": 1}, {"hangup": True}]})
    assert sim.play(client, scenario, warn=warnings.append) == 3
    assert warnings == ["warning: line 4: /ussd/events answered 400: missing hopsCount"]
    assert client.told["hops"] == 2 and client.told["text"] == "1" and client.told["last_reply"].startswith("CON")


def test_run_command_plays_the_scenarios_as_another_gateway(embedded):
    result = run_cli("--dialect", "nalo", "run", *map(str, SCENARIOS))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"{len(SCENARIOS)} passed, 0 failed"
    bad = run_cli("--dialect", "smoke", "run", *map(str, SCENARIOS))
    assert bad.exit_code == 2 and "Invalid value for '--dialect'" in bad.output


def test_the_scenarios_pass_against_a_service_whose_worker_sends_the_sms(config, processes, app):
    """Against a live service an SMS leaves after the hop answered, from the
    worker: the check waits for it (bounded by the client's ``sms_wait``)."""
    from ussd_app import create_app
    live = create_app({**config, "JOBS_SYNC": False})  # the hop only queues the SMS
    processes.worker(**{"JOBS_REDIS_URL": config["JOBS_REDIS_URL"]} if config.get("JOBS_REDIS_URL") else {})
    try:
        client = sim.Client(app=live)
        assert client.sms_wait == sim.SMS_WAIT
        for path in SCENARIOS:
            assert sim.play(client, schema.load_file(path), warn=lambda w: None) > 0, path
    finally:
        live.extensions["ussd"].r.close()
        live.extensions["ussd"].raw.close()


def test_an_offer_held_for_the_sending_window_is_said_in_given(config, app):
    from ussd_app import create_app
    closed = create_app({**config, "OFFER_SEND_WINDOW": "Mon-Sat 00:00-00:01"})
    sent_in_a_step = schema.load_file(next(p for p in SCENARIOS if p.stem == "offer_consent_sms"))
    offered_in_given = schema.from_data({"given": {"subscribers": {"ani": {"offers": ["kk"]}}, "campaigns": {"kk": {
        "institution": {"id": "bank-u", "name": "Bank U"}, "product": "Kartu Kredit", "sender_id": "Rate-Kredit",
        "code": "KK", "message": "Bank U menawarkan Kartu Kredit.", "consent_text": "Data Anda dikirim ke Bank U.",
        "consent_version": "1"}}}, "steps": [{"dial": "ani"}]})
    try:
        with pytest.raises(sim.Mismatch, match="(?s)held for the sending window until .*no new SMS"
                                               ""):
            sim.play(sim.Client(app=closed), sent_in_a_step)
        with pytest.raises(sim.Mismatch, match="given ani: campaign .* held for the sending window until "):
            sim.play(sim.Client(app=closed), offered_in_given)
    finally:
        closed.extensions["ussd"].r.close()
        closed.extensions["ussd"].raw.close()


@pytest.mark.parametrize("state, shown", [("consented", "Kartu Kredit - Bank U (setuju)"),
                                          ("withdrawn", "Kartu Kredit - Bank U (dibatalkan)")])
def test_given_holds_a_consent_given_or_withdrawn(app, state, shown):
    scenario = schema.from_data({"given": {
        "subscribers": {"ani": {"credit_score": 700, "offers": ["kk"], "consents": {"kk": state}}},
        "campaigns": {"kk": {"institution": {"id": "bank-u", "name": "Bank U"}, "product": "Kartu Kredit",
                             "sender_id": "Rate-Kredit", "code": "KK", "message": "Bank U menawarkan Kartu Kredit.",
                             "consent_text": "Data Anda dikirim ke Bank U.", "consent_version": "1"}}},
        "steps": [{"dial": "ani"}, {"input": 3, "expect": shown}]})
    assert sim.play(sim.Client(app=app), scenario) == 2


def test_a_consent_in_given_needs_the_offer_and_a_known_state():
    with pytest.raises(schema.ScenarioError) as e:
        schema.load_text("given:\n  subscribers:\n    ani: {consents: {kk: maybe}}\nsteps:\n  - dial: ani\n", "c.yaml")
    assert "c.yaml:3: subscribers.ani.consents.kk: a consent needs the offer" in str(e.value)
    assert "consents.kk must be consented or withdrawn" in str(e.value)


def test_a_session_the_app_ends_is_notified_as_africas_talking_does(app):
    demo.seed(app.extensions["ussd"])
    client = sim.Client(app=app)
    seen = []
    call = client._call
    client._call = lambda method, path, **kw: seen.append((path, (kw.get("data") or {}).get("status"))) \
        or call(method, path, **kw)
    scenario = schema.from_data({"steps": [{"dial": {"msisdn": "081234567890", "code": "*700*3#"}}, {"input": 1},
                                           {"input": 2, "end": True, "expect": "Anda menolak"}]})
    assert sim.play(client, scenario) == 3
    assert [s for s in seen if s[0] == "/ussd/events"] == [("/ussd/events", "Success")]
