"""SMS over SMPP without an SMSC: the pure parts (segments and their UDH,
statuses, receipts, addresses), the provider's queue and the records a
submit and its receipts leave. tests/smpp/ runs the binder against Jasmin."""
import json

import pytest

from ussd_app.core import keys
from ussd_app.core.config import load
from ussd_app.core.errors import ConfigError
from ussd_app.sms import reports, smpp


# -- segments and their UDH -------------------------------------------------------
def test_a_text_of_160_septets_is_one_part_without_header():
    (part,) = smpp.segments("a" * 160, ref=7)
    assert part == b"a" * 160


def test_a_longer_text_is_parts_of_153_behind_one_reference():
    text = "".join(chr(ord("a") + i % 26) for i in range(300))
    parts = smpp.segments(text, ref=0x2A)
    assert len(parts) == 2
    assert [p[:6] for p in parts] == [bytes([5, 0, 3, 0x2A, 2, 1]), bytes([5, 0, 3, 0x2A, 2, 2])]
    assert len(parts[0]) == 6 + 153 and len(parts[1]) == 6 + 147
    assert b"".join(p[6:] for p in parts).decode("gsm03.38") == text


def test_an_extension_character_is_never_split_over_two_parts():
    text = "x" * 152 + "€" + "y" * 100  # the euro sign: escape + code, at septets 153-154
    parts = smpp.segments(text, ref=1)
    assert parts[0][-1] != 0x1B and len(parts[0]) == 6 + 152
    assert b"".join(p[6:] for p in parts).decode("gsm03.38") == text


def test_gsm7_is_one_octet_a_septet_extension_characters_two():
    assert smpp.encode("@£$") == b"\x00\x01\x02"
    assert smpp.encode("[") == b"\x1b\x3c"


def test_an_mo_text_is_read_in_its_coding_and_without_its_header():
    assert smpp.decode(b"YA KTA 3171", 0, 0) == "YA KTA 3171"
    assert smpp.decode("POIN".encode("utf-16-be"), 8, 0) == "POIN"
    assert smpp.decode(bytes([5, 0, 3, 9, 2, 1]) + b"STOP", 0, smpp.ESM_UDHI) == "STOP"


# -- statuses ---------------------------------------------------------------------
@pytest.mark.parametrize("status, result", [
    (0, "ok"), (0x58, "throttled"), (0x14, "throttled"), (0x45, "final"), (0x0B, "final"), (0x08, "final")])
def test_a_submit_sm_resp_status_is_ok_throttled_or_final(status, result):
    assert smpp.outcome(status) == result


@pytest.mark.parametrize("stat, status", [
    ("DELIVRD", "delivered"), ("UNDELIV", "failed"), ("EXPIRED", "failed"), ("REJECTD", "failed"),
    ("DELETED", "failed"), ("ACCEPTD", "sent"), ("ENROUTE", "sent")])
def test_a_receipt_stat_maps_to_our_status(stat, status):
    r = smpp.receipt(f"id:abc-123 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
                     f"stat:{stat} err:000 text:hello")
    assert (r.message_id, r.stat, r.err, r.status) == ("abc-123", stat, "000", status)


def test_a_receipt_is_read_from_its_tlvs_when_its_text_says_nothing():
    r = smpp.receipt("", receipted_message_id="m-9", message_state=2)
    assert (r.message_id, r.status) == ("m-9", "delivered")
    assert smpp.receipt("hello") is None


def test_addresses_and_the_url():
    assert smpp.international("+6281234567890") == "6281234567890"
    t = smpp.target("smpps://ussd%40op:p%2Fw@smsc.example:3550")
    assert (t.host, t.port, t.tls, t.system_id, t.password) == ("smsc.example", 3550, True, "ussd@op", "p/w")


def test_the_settings_are_checked():
    ok = load({"SMS_PROVIDER": "smpp", "SMPP_URL": "smpp://u:p@127.0.0.1:2775"}, environ={})
    assert (ok.SMPP_TPS, ok.SMPP_WINDOW, ok.SMS_SHORT_CODE, ok.SMPP_SYSTEM_TYPE) == (50, 10, "62168", "")
    for bad in ("", "http://u:p@h:1", "smpp://h:2775", "smpp://u:p@h"):
        with pytest.raises(ConfigError, match="SMPP_URL"):
            load({"SMS_PROVIDER": "smpp", "SMPP_URL": bad}, environ={})
    with pytest.raises(ConfigError, match="SMPP_TPS"):
        load({"SMPP_TPS": 0}, environ={})
    for bad in ("6216\u00b2", "\uff16\uff12\uff11\uff16\uff18", "62 168"):  # '²', full-width: digits to str.isdigit()
        with pytest.raises(ConfigError, match="SMS_SHORT_CODE"):
            load({"SMS_SHORT_CODE": bad}, environ={})


def test_an_mo_id_is_the_same_for_a_redelivery_and_never_a_run_of_digits():
    a = smpp.mo_id("+6281234567890", "62168", b"YA KTA 3171234567890123", 1000.0)
    assert a == smpp.mo_id("+6281234567890", "62168", b"YA KTA 3171234567890123", 1100.0)
    assert a != smpp.mo_id("+6281234567890", "62168", b"POIN", 1000.0)
    assert "3171" not in a


# -- the provider's queue and the records -----------------------------------------
@pytest.fixture
def config(redis_url):
    return {"REDIS_URL": redis_url, "JOBS_SYNC": True, "ADMIN_TOKEN": None, "GATEWAY_TOKEN": None,
            "SMS_PROVIDER": "smpp", "SMPP_URL": "smpp://u:p@127.0.0.1:1", "USSD_APP_ENV": "test",
            "OFFER_SEND_WINDOW": "always"}


def test_a_service_sms_is_queued_from_the_short_code_its_text_encrypted(services, api):
    services.sms.send("+6281234567890", "Kode voucher: SECRET-123", message_id="m1", secret=True)
    services.sms.send_many([{"id": "o1", "to": "+6281234567890", "from": "GeneRate", "kind": "offer",
                             "text": "Penawaran"}])
    queued = [json.loads(x) for x in services.r.lrange(keys.SMPP_QUEUE, 0, -1)]
    assert [(m["id"], m["from"], m.get("kind")) for m in queued] == [
        ("m1", "62168", None), ("o1", "GeneRate", "offer")]
    assert "SECRET" not in json.dumps(queued[0]) and services.vault.decrypt(queued[0]["text_enc"]).endswith("123")
    assert queued[1]["text"] == "Penawaran"
    remote = api("GET", "/api/v1/outbox?to=%2B6281234567890", status=200)["remote"]
    assert [(m["id"], m["status"], m["from"]) for m in remote] == [("m1", "queued", "62168"),
                                                                  ("o1", "queued", "GeneRate")]


def test_a_long_message_is_delivered_when_every_part_is(services, api):
    services.sms.send("+6281234567890", "x" * 300, message_id="long")
    message = json.loads(services.r.lindex(keys.SMPP_QUEUE, 0))
    message["text"] = "x" * 300
    reports.submitted(services, "smpp", message, "sent", ["p1", "p2"])
    assert reports.report(services, "p1", "+6281234567890", "delivered", "") == "same"
    assert reports.report(services, "p1", "+6281234567890", "delivered", "") == "same"
    (rec,) = api("GET", "/api/v1/outbox?to=%2B6281234567890", status=200)["remote"]
    assert (rec["status"], rec["message_ids"]) == ("sent", ["p1", "p2"])
    assert reports.report(services, "p2", "+6281234567890", "delivered", "") == "delivered"
    (rec,) = api("GET", "/api/v1/outbox?to=%2B6281234567890", status=200)["remote"]
    assert rec["status"] == "delivered"


def test_a_failed_part_fails_the_message_and_a_service_sms_is_sent_once_more(services):
    services.sms.send("+6281234567890", "y" * 300, message_id="long")
    message = json.loads(services.r.lpop(keys.SMPP_QUEUE))
    message["text"] = "y" * 300
    reports.submitted(services, "smpp", message, "sent", ["p1", "p2"])
    assert reports.report(services, "p1", "+6281234567890", "delivered", "") == "same"
    assert reports.report(services, "p2", "+6281234567890", "failed", "UNDELIV err:001") == "retried"
    again = json.loads(services.r.lpop(keys.SMPP_QUEUE))
    assert again["retry_of"] == "long" and services.vault.decrypt(again["text_enc"]) == "y" * 300


def test_readyz_and_metrics_report_the_bind(services, client):
    assert client.get("/readyz").get_json()["smpp"] == "unbound"
    assert b"ussd_smpp_bound 0.0" in client.get("/metrics").data
    services.r.set(keys.SMPP_BOUND, "1", ex=10)
    assert client.get("/readyz").get_json()["smpp"] == "bound"
    assert b"ussd_smpp_bound 1.0" in client.get("/metrics").data


def test_a_record_the_binder_wrote_first_is_never_set_back_to_queued(services, api, monkeypatch):
    provider = services.sms.provider
    queue = provider.deliver_many

    def fast_binder(messages):  # the binder answers before the hand-over returns
        queue(messages)
        m = json.loads(services.r.lpop(keys.SMPP_QUEUE))
        m["text"] = services.vault.decrypt(m.pop("text_enc"))
        reports.submitted(services, "smpp", m, "sent", ["p-1"])
        return [None] * len(messages)

    monkeypatch.setattr(provider, "deliver_many", fast_binder)
    services.sms.send("+6281234567890", "Poin Anda 100", message_id="quick")
    (rec,) = api("GET", "/api/v1/outbox?to=%2B6281234567890", status=200)["remote"]
    assert (rec["status"], rec["message_ids"]) == ("sent", ["p-1"])


def test_the_wire_log_never_shows_a_pdu_whatever_the_level():
    import logging

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    try:
        assert not logging.getLogger(smpp.WIRE).isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(before)


def test_the_procfile_smpp_process_idles_without_an_smsc(redis_url):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {**os.environ, "REDIS_URL": redis_url, "SMS_PROVIDER": "console"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ussd-app"), "smpp"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        said = ""
        while "nothing to bind" not in said and proc.poll() is None:  # once said, SIGTERM is handled
            said = proc.stderr.readline()
        time.sleep(0.5)
        assert proc.poll() is None  # no crash loop under a supervisor
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        proc.stderr.close()
    assert "nothing to bind" in said and code == 0
