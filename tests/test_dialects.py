"""Every gateway dialect: its wire format, shortcut dials, its errors, its
end signals and its retries; money moves once and no NIK rests in Redis."""
import json
import re

import pytest

from phones import Phone, send
from ussd_app import demo
from ussd_app.gateways import DIALECTS, wire
from ussd_app.offers import nik

ALL = list(DIALECTS)
LATEST_INPUT = ["hubtel", "nalo", "arkesel", "truroute"]  # the phone sends one input a hop
MSISDN = "+6281234567890"  # demo: 12,500 points, holds Bank A's offer
NIK = "3171014506900001"
APOLOGY = "Maaf, permintaan Anda tidak dapat diproses. Silakan tekan *700# lagi."


@pytest.fixture
def demo_data(services):
    demo.seed(services)
    return services


def balance(client) -> int:
    return client.get(f"/api/v1/subscribers/{MSISDN}/points").get_json()["balance"]


def redemptions(client) -> list:
    return client.get(f"/api/v1/subscribers/{MSISDN}/redemptions").get_json()["redemptions"]


@pytest.mark.parametrize("dialect", ALL)
def test_dial_shows_the_main_menu_in_the_dialects_own_form(client, dialect):
    d = DIALECTS[dialect]
    status, content_type, body = send(client, d.encode("s1", MSISDN, "*700#", [], None, "dial"))
    assert status == 200 and content_type.split(";")[0] == d.CONTENT_TYPE.split(";")[0]
    assert d.decode(status, content_type, body) == (
        "Poin Plus\n1 Cek poin\n2 Tukar hadiah\n3 Penawaran keuangan\n4 Bantuan\n5 Bahasa/Language", False)


def test_replies_as_each_vendor_documents_them(client):
    hubtel = json.loads(send(client, DIALECTS["hubtel"].encode("h1", MSISDN, "*700#", [], None, "dial"))[2])
    assert hubtel["Type"] == "Response" and hubtel["DataType"] == "input" and hubtel["FieldType"] == "text"
    nalo = json.loads(send(client, DIALECTS["nalo"].encode("n1", MSISDN, "*700#", [], None, "dial"))[2])
    assert nalo["USERID"] == "poinplus" and nalo["MSISDN"] == MSISDN and nalo["MSGTYPE"] is True
    arkesel = json.loads(send(client, DIALECTS["arkesel"].encode("a1", MSISDN, "*700#", [], None, "dial"))[2])
    assert (arkesel["sessionID"], arkesel["userID"], arkesel["continueSession"]) == ("a1", "poinplus", True)
    xml = send(client, DIALECTS["truroute"].encode("t1", MSISDN, "*700#", [], None, "dial"))[2]
    assert re.fullmatch(r"<ussd><msisdn>\+6281234567890</msisdn><sessionid>t1</sessionid>"
                        r"<type>2</type><msg>Poin Plus\n1 Cek poin.*</msg>"
                        r"<premium><cost>0</cost><ref>NULL</ref></premium></ussd>", xml, re.S)


@pytest.mark.parametrize("dialect", ALL)
def test_shortcut_dial_takes_the_digits_as_inputs(client, dialect):
    phone = Phone(client, dialect=dialect)
    assert phone.dial(text="4*4").startswith("Email: support.indonesia@trustingsocial.com")


@pytest.mark.parametrize("dialect, fields, reason", [
    ("hubtel", {"Mobile": MSISDN, "Type": "Initiation", "Message": "*700#"}, "missing SessionId"),
    ("hubtel", {"SessionId": "x", "Mobile": MSISDN, "Type": "Begin"},
     "Type must be Initiation, Response, Release, Timeout, Query, Favorite or AddToCart"),
    ("hubtel", {"SessionId": "x", "Mobile": "not-a-number", "Type": "Initiation"}, "Mobile is not an Indonesian mobile number (+628 and 9 to 12 more digits, or 08... / 628...)"),
    ("hubtel", {"SessionId": "x", "Mobile": MSISDN, "Type": "Response", "Sequence": "two"},
     "Sequence must be a whole number"),
    ("nalo", {"USERID": "u", "MSISDN": MSISDN, "USERDATA": "*700#", "SESSIONID": "x"}, "missing MSGTYPE"),
    ("nalo", {"USERID": "u", "MSISDN": MSISDN, "MSGTYPE": "maybe", "SESSIONID": "x"},
     "MSGTYPE must be true or false"),
    ("nalo", {"USERID": "u", "MSGTYPE": True, "SESSIONID": "x"}, "missing MSISDN"),
    ("arkesel", {"userID": "u", "msisdn": MSISDN, "newSession": True}, "missing sessionID"),
    ("arkesel", {"sessionID": "x", "userID": "u", "msisdn": MSISDN, "newSession": True,
                 "userData": ["*700#"]}, "userData must be a string"),
    ("truroute", "<ussd><msisdn>+6281234567890</msisdn><type>1</type></ussd>", "missing sessionid"),
    ("truroute", "<ussd><msisdn>+6281234567890</msisdn><sessionid>x</sessionid><type>9</type></ussd>",
     "type must be 1, 2, 3, 4 or 10"),
    ("truroute", '<?xml version="1.0" encoding="x-bogus"?><ussd><msisdn>+6281234567890</msisdn></ussd>',
     "body must be a <ussd> XML document"),
    ("hubtel", "[1, 2]", "body must be a JSON object"),
    ("nalo", "{not json", "body must be a JSON object"),
    ("truroute", "<ussd><msisdn>", "body must be a <ussd> XML document"),
    ("truroute", '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
                 "<ussd><msisdn>&b;</msisdn></ussd>", "body must be a <ussd> XML document"),
])
def test_a_malformed_request_gets_400_in_the_dialects_form_naming_the_field(client, dialect, fields, reason):
    """The reason is in the dialect's error field (and the log); the field the
    phone shows holds an apology in the subscriber's language."""
    d = DIALECTS[dialect]
    body = fields if isinstance(fields, str) else json.dumps(fields)
    resp = client.post(d.PATH, data=body, content_type=d.CONTENT_TYPE)
    assert resp.status_code == 400
    assert resp.content_type.split(";")[0] == d.CONTENT_TYPE.split(";")[0]
    text = resp.get_data(as_text=True)
    assert d.decode(400, resp.content_type, text) == (APOLOGY, True)
    assert (DIALECTS["truroute"].reason(text) if dialect == "truroute" else json.loads(text)["error"]) == reason


class TestGatewayToken:
    @pytest.fixture
    def config(self, config):
        return {**config, "GATEWAY_TOKEN": "gw-secret"}

    @pytest.mark.parametrize("dialect", ALL)
    def test_every_route_needs_the_token_and_refuses_in_its_own_form(self, client, dialect):
        d = DIALECTS[dialect]
        path, content_type, body = d.encode("s1", MSISDN, "*700#", [], None, "dial")
        data = json.dumps(body) if content_type == "application/json" else body
        resp = client.post(path, data=data, content_type=content_type)
        assert resp.status_code == 401
        assert resp.content_type.split(";")[0] == d.CONTENT_TYPE.split(";")[0]
        resp = client.post(path + "?token=gw-secret", data=data, content_type=content_type)
        assert resp.status_code == 200


@pytest.mark.parametrize("dialect", ALL)
def test_a_failed_hop_ends_politely_in_the_dialects_form(client, services, dialect, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(services.engine, "start", broken)
    phone = Phone(client, dialect=dialect)
    assert phone.dial() == "Maaf, layanan sedang sibuk. Silakan coba lagi nanti." and phone.end


@pytest.mark.parametrize("dialect", LATEST_INPUT)
def test_the_same_key_twice_is_two_steps(client, demo_data, dialect):
    """"" "2" "1" "1": categories, the first category's rewards, the first
    reward (it used to show the reward list again)."""
    phone = Phone(client, dialect=dialect)
    phone.dial()
    phone.type(2, 1)
    rewards_list = phone.screen
    assert phone.type(1).startswith("Kuota 1GB 7 hari\nHarga: 2.500 poin") and phone.screen != rewards_list


@pytest.mark.parametrize("dialect", LATEST_INPUT)
def test_a_latest_input_gateway_redeems_once_and_consents(client, demo_data, dialect):
    phone = Phone(client, msisdn=MSISDN, dialect=dialect)
    phone.dial()
    phone.type(2, 1, 1, 1)  # rewards, data, Kuota 1GB, Tukar
    assert phone.screen.startswith("Tukar 1x Kuota 1GB 7 hari dengan 2.500 poin?")
    assert phone.type(1).startswith("Penukaran Kuota 1GB 7 hari diproses") and phone.end
    phone.resend()  # the gateway posts the confirmation again: no second redemption
    assert balance(client) == 10_000 and len(redemptions(client)) == 1
    phone.dial()
    phone.type(3, 1, 1, 1)  # offers, Bank A, next, agree
    assert phone.screen.startswith("Ketik NIK Anda")
    assert phone.type(NIK).startswith("Terima kasih. Data Anda dikirim ke Bank A.") and phone.end
    leads = client.get("/api/v1/leads?institution=bank-a").get_json()["leads"]
    assert [lead["nik"] for lead in leads] == [NIK]


def test_hubtel_sequence_tells_a_retry_from_a_repeated_key(client, demo_data):
    hubtel = DIALECTS["hubtel"]
    send(client, hubtel.encode("h", MSISDN, "*700#", [], None, "dial"))
    for sequence, typed in ((2, "2"), (3, "1"), (4, "1"), (4, "1"), (3, "1")):
        _, _, body = send(client, ("/ussd/hubtel", "application/json", {
            "SessionId": "h", "Mobile": MSISDN, "Type": "response", "Message": typed,
            "Sequence": sequence, "ServiceCode": "*700#"}))
    # 4 arrived twice and 3 again after it: one reward screen, never a step further
    assert json.loads(body)["Message"].startswith("Kuota 1GB 7 hari\nHarga: 2.500 poin")


@pytest.mark.parametrize("dialect", LATEST_INPUT)
def test_a_second_first_hop_is_a_retry(client, demo_data, dialect):
    phone = Phone(client, dialect=dialect)
    first = phone.dial(session="twice")
    assert phone.dial(session="twice") == first
    assert phone.type(4).startswith("Bantuan")


@pytest.mark.parametrize("dialect", ["hubtel", "truroute"])
@pytest.mark.parametrize("kind", ["release", "timeout"])
def test_release_and_timeout_close_the_session(client, demo_data, dialect, kind):
    phone = Phone(client, dialect=dialect)
    phone.dial()
    phone.type(4)
    assert phone.hang_up(kind) == 200
    phone.type(1)
    assert phone.end and phone.screen == "Sesi telah berakhir. Silakan tekan *700# lagi."


def test_a_hop_for_a_session_we_no_longer_hold_ends_it(client):
    phone = Phone(client, dialect="nalo")
    phone.session, phone.inputs = "forgotten", ["1"]
    phone.type(2)
    assert phone.end and phone.screen == "Sesi telah berakhir. Silakan tekan *700# lagi."


def _everything_in_redis(r) -> str:
    """Every key and every value, as text."""
    out = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        value = {"string": r.get, "hash": r.hgetall, "list": lambda k: r.lrange(k, 0, -1),
                 "set": r.smembers, "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
                 "stream": lambda k: r.xrange(k)}[kind](key)
        out.append(f"{key} {value!r}")
    return "\n".join(out)


@pytest.mark.parametrize("dialect", ALL)
def test_no_nik_rests_in_redis_after_a_consent(client, demo_data, dialect):
    phone = Phone(client, msisdn=MSISDN, dialect=dialect)
    phone.dial()
    phone.type(3, 1, 1, 1, NIK)
    assert phone.end and "Terima kasih" in phone.screen
    phone.resend()  # a retry of the NIK hop too
    phone.dial(text=f"3*1*1*1*{NIK}")  # and a shortcut dial that types it
    stored = _everything_in_redis(demo_data.r)
    assert NIK not in stored
    # any valid NIK at all (a random id's 16-digit run, e.g. in a uuid's hex, is not one)
    assert [run for run in re.findall(r"(?<![0-9])[0-9]{16}(?![0-9])", stored) if nik.problem(run) is None] == []
    assert client.get("/api/v1/leads?institution=bank-a").get_json()["leads"][0]["nik"] == NIK


class TestAServiceCodeWithASubCode:
    """USSD_SERVICE_CODE *713*4#: dialling exactly it is the main menu (it used
    to be read as *713# with 4 typed ahead: Help); only what follows it is
    typed ahead."""

    @pytest.fixture
    def config(self, config):
        return {**config, "USSD_SERVICE_CODE": "*713*4#"}

    @pytest.mark.parametrize("dialect", ALL)
    def test_the_code_itself_is_the_main_menu(self, client, dialect):
        assert Phone(client, code="*713*4#", dialect=dialect).dial().startswith("Poin Plus\n1 Cek poin")

    @pytest.mark.parametrize("dialect", ALL)
    def test_what_follows_it_is_typed_ahead(self, client, demo_data, dialect):
        phone = Phone(client, msisdn=MSISDN, code="*713*4#", dialect=dialect)
        assert phone.dial(text="1").startswith("Poin Anda: 12.500")

    def test_hubtel_names_it_in_service_code_without_star_and_hash(self, client):
        _, _, body = send(client, ("/ussd/hubtel", "application/json", {
            "SessionId": "h-sub", "Mobile": MSISDN, "Type": "Initiation", "Message": "*713*4#",
            "ServiceCode": "713*4", "Sequence": 1, "Operator": "mtn"}))
        assert json.loads(body)["Message"].startswith("Poin Plus\n1 Cek poin")

    @pytest.mark.parametrize("dialect", ALL)
    def test_the_code_without_its_sub_code_is_not_ours(self, client, dialect):
        phone = Phone(client, code="*713#", dialect=dialect)
        assert phone.dial() == ("Maaf, kode yang Anda tekan tidak dikenal. Untuk Poin Plus tekan *713*4#.")
        assert phone.end


@pytest.mark.parametrize("dialect", ALL)
def test_a_code_that_is_not_ours_ends_politely_and_is_logged(client, dialect, caplog):
    phone = Phone(client, msisdn=MSISDN, code="*999#", dialect=dialect)
    with caplog.at_level("INFO", logger="ussd_app.hops"):
        shown = phone.dial()
    assert (shown, phone.end) == ("Maaf, kode yang Anda tekan tidak dikenal. Untuk Poin Plus tekan *700#.", True)
    lines = [r.getMessage() for r in caplog.records if "ussd_declined" in r.getMessage()]
    assert len(lines) == 1 and "*999#" in lines[0] and "+62812*****890" in lines[0]
    assert "1234567890" not in caplog.text
    phone.type(1)  # no session was started for it (Hubtel and Africa's Talking name the code again)
    assert phone.end and phone.screen == ("Sesi telah berakhir. Silakan tekan *700# lagi."
                                          if dialect in ("nalo", "arkesel", "truroute") else shown)


def test_a_code_that_is_not_ours_is_logged_only_as_ascii_digits():
    from ussd_app.gateways.wire import NotOurs
    assert NotOurs("*999#").dialled == "*999#"
    assert NotOurs("*\uff19\uff19\uff19#").dialled == "(not a code)"  # full-width: isdigit() said yes
    assert NotOurs("*99\u00b2#").dialled == "(not a code)"


def test_a_refusal_speaks_the_subscribers_language(client, services):
    from ussd_app.core import subscribers
    subscribers.set_language(services.r, MSISDN, "en")
    phone = Phone(client, msisdn=MSISDN, code="*999#", dialect="nalo")
    assert phone.dial() == "Sorry, the code you dialled is not known. For Poin Plus dial *700#."
    resp = client.post("/ussd/nalo", data=json.dumps({"USERID": "u", "MSISDN": MSISDN, "SESSIONID": "x",
                                                      "MSGTYPE": "maybe"}), content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["MSG"] == "Sorry, your request could not be processed. Please dial *700# again."


@pytest.mark.parametrize("kind", ["Query", "Favorite", "AddToCart", "query"])
def test_hubtel_types_for_its_other_channels_get_a_polite_release(client, kind):
    status, _, body = send(client, ("/ussd/hubtel", "application/json", {
        "SessionId": "h-q", "Mobile": MSISDN, "Type": kind, "Message": "", "ServiceCode": "700",
        "Sequence": 1, "Operator": "mtn"}))
    reply = json.loads(body)
    assert status == 200 and reply["Type"] == "Release" and reply["DataType"] == "display"
    assert reply["Message"] == "Poin Plus hanya tersedia lewat USSD. Silakan tekan *700#."


def test_truroute_charge_failed_type_10_ends_the_session_politely(client, demo_data):
    phone = Phone(client, msisdn=MSISDN, dialect="truroute")
    phone.dial()
    phone.type(2)
    status, _, body = send(client, ("/ussd/truroute", "application/xml",
                                    f"<ussd><msisdn>{MSISDN}</msisdn><sessionid>{phone.session}</sessionid>"
                                    "<type>10</type><msg>Insufficient funds</msg></ussd>"))
    assert status == 200
    assert re.fullmatch(r"<ussd><msisdn>\+6281234567890</msisdn><sessionid>\w+</sessionid><type>3</type>"
                        r"<msg>Maaf, permintaan Anda tidak dapat diproses\. Silakan tekan \*700# lagi\.</msg>"
                        r"<premium><cost>0</cost><ref>NULL</ref></premium></ussd>", body)
    phone.type(1)
    assert phone.end and phone.screen == "Sesi telah berakhir. Silakan tekan *700# lagi."


def test_a_hubtel_sequence_of_thousands_of_digits_is_a_400_not_a_crash(client):
    resp = client.post("/ussd/hubtel", data=json.dumps({
        "SessionId": "h-long", "Mobile": MSISDN, "Type": "Response", "Message": "1", "Sequence": "9" * 5000}),
        content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"] == "Sequence must be a whole number"
