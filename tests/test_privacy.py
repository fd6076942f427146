"""No secret rests in clear: not in Redis, not in an RDB dump, not in an API
answer (the leads answer apart), and no reply echoes free input that could be
one. A NIK typed anywhere, on any channel, must not come back out."""
import json
import re
import shutil
import subprocess
import uuid
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ussd_app import demo
from ussd_app.core import keys
from ussd_app.offers import consents

NIK = "3174054112950003"  # valid (a woman born 1 Dec 1995)
NIKS = [NIK, "3273010101850002", "9971014506900001", "3174013202900001", "1234567890123456"]
EXAMPLE = "3171014506900001"  # the example NIK our own help texts show (YA 3171014506900001)
M = "+6281234567890"  # demo: holds the KTA offer
PEER = "+6281234567891"  # demo, English, holds the offer too
# 16 digits, standing alone (a hex id or a Fernet token may hold digit runs,
# but never one bounded by non-alphanumerics); \d also finds full-width digits.
NIK_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{16}(?![0-9A-Za-z])")
# USSD session documents keep the gateway's text history (last_text) in clear:
# the session store is being changed elsewhere (ussd/hop.py, ussd/sessions.py);
# they are left out of this scan until then (see docs/offers-and-privacy.md).
EXCLUDED = (f"{keys.PREFIX}:session:",)


def secrets_in(text: str, typed=()) -> list[str]:
    found = [n for n in NIK_LIKE.findall(text) if n != EXAMPLE]
    return found + [n for n in typed if n in text and n not in found]


def _values(raw, key: bytes) -> list[bytes]:
    kind = raw.type(key)
    if kind == b"string":
        return [raw.get(key)]
    if kind == b"hash":
        return [x for kv in raw.hgetall(key).items() for x in kv]
    if kind == b"list":
        return raw.lrange(key, 0, -1)
    if kind == b"set":
        return list(raw.smembers(key))
    if kind == b"zset":
        return [m for m, _ in raw.zrange(key, 0, -1, withscores=True)]
    if kind == b"stream":
        return [x for _, fields in raw.xrange(key) for kv in fields.items() for x in kv]
    return [raw.dump(key) or b""]


def _readable(value: bytes) -> str:
    if value[:1] == b"x":  # rq keeps job data as zlib-compressed pickles
        try:
            value = zlib.decompress(value)
        except zlib.error:
            pass
    return value.decode("utf-8", "replace")


def redis_secrets(services, typed=()) -> dict[str, list[str]]:
    """Every key (name and values) of the store that holds a NIK-like string."""
    raw, found = services.raw, {}
    for key in raw.scan_iter(count=1000):
        name = key.decode("utf-8", "replace")
        if name.startswith(EXCLUDED):
            continue
        hits = secrets_in(name, typed) + [s for v in _values(raw, key) for s in secrets_in(_readable(v), typed)]
        if hits:
            found[name] = hits
    return found


def api_secrets(client, typed=()) -> dict[str, list[str]]:
    """Every read of the integration API but the leads, and what NIK-like strings it shows."""
    found = {}
    for msisdn in (M, PEER):
        q = msisdn.replace("+", "%2B")
        for path in (f"/api/v1/subscribers/{q}", f"/api/v1/subscribers/{q}/points",
                     f"/api/v1/subscribers/{q}/ledger", f"/api/v1/subscribers/{q}/redemptions",
                     f"/api/v1/subscribers/{q}/consents", f"/api/v1/outbox?to={q}", "/api/v1/rewards",
                     "/api/v1/campaigns", "/api/v1/campaigns/kta-demo"):
            resp = client.get(path)
            assert resp.status_code in (200, 404), (path, resp.data)
            hits = secrets_in(resp.get_data(as_text=True), typed)
            if hits:
                found[path] = hits
    return found


@pytest.fixture
def fresh(app):
    """The demo data, laid anew before each example."""
    services = app.extensions["ussd"]
    demo.seed(services)
    r = services.raw
    snapshot = [(key, r.pttl(key), r.dump(key)) for key in r.scan_iter()]

    def reset():
        pipe = r.pipeline()
        pipe.flushdb()
        for key, ttl, payload in snapshot:
            pipe.restore(key, max(ttl, 0), payload)
        pipe.execute()
    return services, app.test_client(), reset


class TestReplies:
    @pytest.mark.parametrize("text", [
        f"TUKAR {NIK}", f"tukar {NIK} 2", f"YA {NIK} {NIK}", f"YA KTA{NIK} {NIK}", f"TIDAK {NIK}",
        f"OFF {NIK}", f"STOP {NIK}", f"{NIK}", f"POIN {NIK}", f"INFO {NIK}", f"MULAI {NIK}", f"YA {NIK}",
        f"YA XX {NIK}", f"TUKAR A{NIK}",
    ])
    def test_no_sms_reply_echoes_a_nik(self, fresh, text):
        services, client, reset = fresh
        reset()
        resp = client.post("/sms/inbound", data={"from": M, "to": "62168", "text": text, "id": "m1"})
        assert resp.status_code == 200
        (reply,) = [m["text"] for m in client.get(f"/api/v1/outbox?to=%2B{M[1:]}").get_json()["messages"]
                    if m["from"] != "KreditSmart" or "NIK Anda dikirim" in m["text"]][-1:]
        assert not secrets_in(reply, [NIK]), reply

    def test_an_unknown_reward_code_is_not_echoed_a_known_one_is(self, fresh):
        services, client, reset = fresh
        reset()
        for text in ("TUKAR BOGUS", "TUKAR DATA1GB"):
            client.post("/sms/inbound", data={"from": M, "to": "62168", "text": text, "id": text})
        replies = [m["text"] for m in client.get(f"/api/v1/outbox?to=%2B{M[1:]}").get_json()["messages"]]
        assert replies[-2] == "Kode hadiah itu tidak dikenal. Daftar hadiah: *700*2#"
        assert replies[-1].startswith("Tukar Kuota 1GB 7 hari dengan 2.500 poin?")


class TestTheConsentLog:
    def test_an_opt_out_keeps_its_input_encrypted(self, fresh):
        services, client, reset = fresh
        reset()
        client.post("/sms/inbound", data={"from": M, "to": "62168", "text": f"OFF {NIK}", "id": "m-off"})
        (entry,) = [e for e in consents.log(services.r, M) if e["type"] == "optout"]
        assert "input" not in entry and services.vault.decrypt(entry["raw_input_enc"]) == f"OFF {NIK}"
        answer = client.get(f"/api/v1/subscribers/%2B{M[1:]}/consents").get_data(as_text=True)
        assert NIK not in answer and '"raw_input_enc":"(encrypted)"' in answer.replace(" ", "")

    def test_an_opt_out_logged_in_clear_before_is_withheld_from_the_answer(self, fresh):
        services, client, reset = fresh
        reset()
        services.r.rpush(keys.consent_log(M), json.dumps({"type": "optout", "channel": "sms",
                                                          "input": f"OFF {NIK}", "at": 1.0}))
        (entry,) = client.get(f"/api/v1/subscribers/%2B{M[1:]}/consents").get_json()["entries"]
        assert entry["input"] == "(withheld)"

    def test_an_opt_out_through_the_menu_says_so(self, fresh, phone):
        services, client, reset = fresh
        reset()
        phone.dial(text="3*9*1")
        (entry,) = [e for e in consents.log(services.r, M) if e["type"] == "optout"]
        assert entry["input"] == "menu" and entry["channel"] == "ussd"


sms_word = st.sampled_from(["YA", "TIDAK", "STOP", "OFF", "MULAI", "TUKAR", "POIN", "HANGUS", "INFO",
                            "KTA", "DATA1GB", "ya", "tukar", "x"])
a_nik = st.sampled_from(NIKS + ["\uff13\uff11\uff17\uff11\uff10\uff11\uff14\uff15\uff10\uff16\uff19\uff10\uff10\uff10\uff10\uff11"])
sms = st.lists(st.one_of(sms_word, sms_word, a_nik), min_size=1, max_size=4).map(
    lambda ws: st.sampled_from(["", "*", "#", "."]).map(lambda sep: (sep or " ").join(ws)))
ussd_path = st.lists(st.one_of(st.sampled_from(["1", "2", "3", "4", "9", "0", "00", "1", "1", "98"]), a_nik),
                     min_size=1, max_size=8)
step = st.one_of(st.tuples(st.just("sms"), st.sampled_from([M, PEER]), sms.flatmap(lambda s: s)),
                 st.tuples(st.just("ussd"), st.sampled_from([M, PEER]), ussd_path),
                 st.tuples(st.just("consent"), st.sampled_from([M, PEER]), a_nik))


def play(client, kind: str, msisdn: str, what, n: int) -> None:
    if kind == "sms":
        client.post("/sms/inbound", data={"from": msisdn, "to": "62168", "text": what, "id": f"fz-{n}"})
    elif kind == "ussd":
        session, text = f"fz-{n}-{uuid.uuid4().hex[:6]}", ""
        for typed in ["", *what]:
            text = typed if not text else f"{text}*{typed}"
            client.post("/ussd", data={"sessionId": session, "serviceCode": "*700#", "phoneNumber": msisdn,
                                       "text": text})
    else:  # the whole consent journey, then the leads (the one answer that may show the NIK)
        play(client, "ussd", msisdn, ["3", "1", "1", "1", what], n)
        client.get("/api/v1/leads?institution=bank-a")


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_after_any_sms_ussd_and_api_traffic_no_nik_rests_in_clear(fresh, steps):
    services, client, reset = fresh
    reset()
    for n, (kind, msisdn, what) in enumerate(steps):
        play(client, kind, msisdn, what, n)
    typed = NIKS
    assert redis_secrets(services, typed) == {}
    assert api_secrets(client, typed) == {}


def test_a_nik_typed_before_a_redemption_stays_out_of_its_records(fresh):
    """The redemption's idempotency key comes from the hop, whose text holds the history."""
    services, client, reset = fresh
    reset()
    play(client, "ussd", M, ["3", "1", "1", "1", NIKS[2], "00", "2", "1", "1", "1", "1"], 0)
    assert client.get(f"/api/v1/subscribers/%2B{M[1:]}/redemptions").get_json()["redemptions"]
    assert redis_secrets(services, NIKS) == {}
    assert api_secrets(client, NIKS) == {}


def test_an_rdb_dump_holds_no_nik(fresh, redis_url, tmp_path):
    """The file a backup copies: every channel once, then SAVE through redis-cli --rdb."""
    services, client, reset = fresh
    reset()
    for n, (kind, msisdn, what) in enumerate([
            ("consent", M, NIK), ("sms", PEER, "YA 3273010101850002"), ("sms", M, f"OFF {NIK}"),
            ("sms", M, f"TUKAR {NIK}"), ("sms", M, "MULAI"), ("sms", M, f"YA XX {NIK}"),
            ("ussd", PEER, ["3", "1", "1", "1", "123", NIK]), ("sms", M, f"YA KTA {NIK}"),
            ("ussd", M, ["3", "1", "1", "1", NIKS[2], "00", "2", "1", "1", "1", "1"])]):
        play(client, kind, msisdn, what, n)
    assert client.get("/api/v1/leads?institution=bank-a").get_json()["leads"]  # the NIK did travel
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.fail("redis-cli is not installed (apt-get install -y redis-tools)")
    r = services.r
    r.config_set("rdbcompression", "no")  # LZF would hide a value from a byte scan
    try:
        for key in r.scan_iter(match=f"{EXCLUDED[0]}*"):
            r.delete(key)  # see EXCLUDED
        dump = tmp_path / "dump.rdb"
        subprocess.run([cli, "-u", redis_url, "--rdb", str(dump)], check=True, capture_output=True, timeout=30)
    finally:
        r.config_set("rdbcompression", "yes")
    data = dump.read_bytes()
    assert len(data) > 1000
    assert not [n for n in NIKS if n.encode() in data]
    assert not [n for n in re.findall(rb"(?<![0-9A-Za-z])[0-9]{16}(?![0-9A-Za-z])", data)
                if n != EXAMPLE.encode()]
