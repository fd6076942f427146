"""SMS over SMPP against a real SMSC (Jasmin on loopback): the Procfile's web,
worker and smpp processes, a real redis-server. Each test uses numbers of
its own (Jasmin's messages.log is shared by the session)."""
from __future__ import annotations

import ast
import collections
import time

import gsm0338  # noqa: F401  (the gsm03.38 codec)
from faultstack import wait_for

from ussd_app import create_app
from ussd_app.core import keys

NIK = "3171014506900001"


def campaign(sender: str = "KreditSmart") -> dict:
    return {
        "id": "kta-smpp", "institution": {"id": "bank-a", "name": "Bank A", "support": "cs@bank-a.example"},
        "product": "Kredit Multiguna", "sender_id": sender, "code": "KTA",
        "message": {"id": "Bank A menawarkan Kredit Multiguna.", "en": "Bank A offers a loan."},
        "consent_text": {"id": "Jika setuju, nomor HP, skor kredit & NIK Anda dikirim ke Bank A.",
                         "en": "If you agree, your number, credit score & NIK go to Bank A."},
        "consent_version": "1", "valid_from": "2020-01-01T00:00:00+07:00",
        "valid_until": "2035-01-01T00:00:00+07:00", "eligibility": {"credit_score": {"min": 600}}}


def offer_to(service, msisdn: str) -> None:
    service.api("PUT", f"/api/v1/subscribers/{msisdn}", {"credit_score": 720})
    service.api("POST", "/api/v1/campaigns", campaign())
    service.api("POST", "/api/v1/campaigns/kta-smpp/offers", {})


def services_of(service):
    """The service's own services in this process (its Redis, the smpp provider)."""
    return create_app({"REDIS_URL": service.redis.url, "SMS_PROVIDER": "smpp",
                       "SMPP_URL": service.jasmin.url}).extensions["ussd"]


def text_of(mt: dict) -> str:
    """An MT's content, as messages.log quotes its bytes."""
    return ast.literal_eval("b" + mt["q"] + mt["content"] + mt["q"]).decode("gsm03.38")


def test_an_offer_reaches_jasmin_from_its_sender_id(service, jasmin):
    offer_to(service, "+6281100000101")
    (rec,) = wait_for(lambda: [r for r in service.records("+6281100000101") if r["status"] == "sent"], 30,
                      "the offer's record sent")
    assert rec["kind"] == "offer" and rec["from"] == "KreditSmart"
    mts = wait_for(lambda: (lambda m: m if len(m) == len(rec["message_ids"]) else None)(
        jasmin.mts("+6281100000101")), 20, "each part in Jasmin's messages.log")
    assert {m["src"] for m in mts} == {"KreditSmart"}
    assert [m["id"] for m in mts] == rec["message_ids"]
    assert "Bank A menawarkan Kredit Multiguna" in text_of(mts[0])


def test_a_300_character_service_sms_arrives_as_concatenated_parts(service, jasmin):
    text = "".join(f"Kode voucher {i:03d}. " for i in range(20))[:300]
    services_of(service).sms.send("+6281100000201", text, message_id="long-1")
    mts = wait_for(lambda: (lambda m: m if len(m) == 2 else None)(jasmin.mts("+6281100000201")), 30,
                   "two parts in Jasmin's messages.log")
    assert {m["src"] for m in mts} == {"62168"}
    parts = [text_of(m) for m in mts]
    assert "".join(p[-153:] if len(p) > 153 else p for p in parts).endswith(text[-100:])
    (rec,) = wait_for(lambda: [r for r in service.records("+6281100000201") if r["status"] == "sent"], 10,
                      "the record sent")
    assert sorted(rec["message_ids"]) == sorted(m["id"] for m in mts)
    # the SMSC's receipts: delivered when every part is
    jasmin.receipt(mts[0], "DELIVRD")
    time.sleep(2)
    assert service.records("+6281100000201")[0]["status"] == "sent"
    jasmin.receipt(mts[1], "DELIVRD")
    wait_for(lambda: service.records("+6281100000201")[0]["status"] == "delivered", 20,
             "the message delivered once both parts are")


def test_an_mo_consent_makes_a_lead(service, jasmin):
    offer_to(service, "+6281100000102")
    wait_for(lambda: jasmin.mts("+6281100000102"), 30, "the offer sent")
    jasmin.mo("+6281100000102", f"YA KTA {NIK}")
    leads = wait_for(lambda: service.api("GET", "/api/v1/leads?institution=bank-a")["leads"], 30, "the lead")
    assert [(lead["msisdn"], lead["nik"]) for lead in leads] == [("+6281100000102", NIK)]
    confirmation = wait_for(lambda: [m for m in jasmin.mts("+6281100000102") if m["src"] == "62168"], 30,
                            "the confirmation from the short code")
    assert len(confirmation) == 1
    assert NIK not in service.smpp.log.read_text() + service.worker.log.read_text()


def test_a_delivrd_receipt_marks_the_message_delivered(service, jasmin):
    services_of(service).sms.send_many([{"id": "offer-r1", "to": "+6281100000103", "from": "GeneRate",
                                         "kind": "offer", "text": "Penawaran uji"}])
    (mt,) = wait_for(lambda: jasmin.mts("+6281100000103"), 30, "the offer in Jasmin's messages.log")
    assert mt["src"] == "GeneRate"
    jasmin.receipt(mt, "DELIVRD")
    (rec,) = wait_for(lambda: [r for r in service.records("+6281100000103") if r["status"] == "delivered"], 20,
                      "the record delivered")
    assert rec["message_ids"] == [mt["id"]]


def test_the_smsc_restarted_while_offers_are_sent_every_offer_arrives_once(make_service, jasmin):
    service = make_service(SMPP_TPS=40)
    n = 150
    numbers = [f"+628110004{i:04d}" for i in range(n)]
    services_of(service).sms.send_many([{"id": f"offer-{i}", "to": to, "from": "Rate-Kredit",
                                         "kind": "offer", "text": f"Penawaran nomor {i}"}
                                        for i, to in enumerate(numbers)])
    wait_for(lambda: len([m for m in jasmin.mts() if m["to"].startswith("628110004")]) >= 40, 30,
             "some offers through")
    jasmin.stop_jasmind()
    time.sleep(1)
    jasmin.start_jasmind()
    service.wait_bound(60)

    seen = {}

    def settled():
        recs = {to: service.records(to) for to in numbers}
        seen["statuses"] = collections.Counter(r[0]["status"] if r else None for r in recs.values())
        seen["queue"] = (service.redis.client.llen(keys.SMPP_QUEUE), service.redis.client.llen(keys.SMPP_INFLIGHT))
        return recs if all(r and r[0]["status"] != "queued" for r in recs.values()) else None

    try:
        recs = wait_for(settled, 90, "every offer settled (sent, or unknown)", every=1)
    except AssertionError as e:
        raise AssertionError(f"{e}: {seen}") from None
    sent = {to for to, r in recs.items() if r[0]["status"] == "sent"}
    unknown = {to for to, r in recs.items() if r[0]["status"] == "unknown"}
    assert sent | unknown == set(numbers), {r[0]["status"] for r in recs.values()}
    assert len(unknown) <= 10  # at most SMPP_WINDOW were unanswered when the bind went
    wait_for(lambda: all(jasmin.mts(to) for to in sent), 60, "each sent offer in messages.log", every=1)
    time.sleep(2)
    for to in numbers:
        assert len(jasmin.mts(to)) <= 1, f"{to} got {len(jasmin.mts(to))}"
    for to in sent:
        assert recs[to][0]["message_ids"] == [jasmin.mts(to)[0]["id"]]


def test_the_smpp_process_killed_mid_send_resumes_what_was_pending(make_service, jasmin):
    service = make_service(SMPP_TPS=40)
    offers = [f"+628110006{i:04d}" for i in range(80)]
    others = [f"+628110007{i:04d}" for i in range(20)]
    handed = services_of(service)
    handed.sms.send_many([{"id": f"kill-{i}", "to": to, "from": "KreditSmart", "kind": "offer",
                           "text": f"Penawaran {i}"} for i, to in enumerate(offers)])
    for i, to in enumerate(others):
        handed.sms.send(to, f"Kode voucher {i}", message_id=f"svc-{i}")
    wait_for(lambda: len([m for m in jasmin.mts() if m["to"].startswith("628110006")]) >= 20, 30,
             "some offers through")
    service.smpp.kill9()
    service.smpp.start()
    service.wait_bound(30)

    def settled():
        recs = {to: service.records(to) for to in offers + others}
        return recs if all(r and r[0]["status"] != "queued" for r in recs.values()) else None

    recs = wait_for(settled, 90, "every message settled", every=1)
    assert {r[0]["status"] for to, r in recs.items() if to in others} == {"sent"}  # service SMS: resent
    assert {r[0]["status"] for r in recs.values()} <= {"sent", "unknown"}
    wait_for(lambda: all(jasmin.mts(to) for to in others), 30, "each service SMS in messages.log")
    time.sleep(2)
    assert all(len(jasmin.mts(to)) <= 1 for to in offers)  # an offer: never twice
    assert all(len(jasmin.mts(to)) == 1 for to, r in recs.items() if r[0]["status"] == "sent" and to in offers)
    assert "settled" in service.smpp.log.read_text() or all(r[0]["status"] == "sent" for r in recs.values())


def test_throttled_submits_are_slowed_down_and_each_sent_once(service, jasmin):
    jasmin.throttle(5)
    try:
        numbers = [f"+628110005{i:04d}" for i in range(20)]
        services_of(service).sms.send_many([{"id": f"thr-{i}", "to": to, "from": "GeneRate", "kind": "offer",
                                             "text": f"Penawaran {i}"} for i, to in enumerate(numbers)])
        wait_for(lambda: all(r and r[0]["status"] == "sent" for r in map(service.records, numbers)), 60,
                 "every offer sent", every=0.5)
    finally:
        jasmin.throttle(None)
    wait_for(lambda: all(jasmin.mts(to) for to in numbers), 30, "each offer in messages.log")
    assert all(len(jasmin.mts(to)) == 1 for to in numbers)
    metrics = service.http.get(service.base + "/metrics", timeout=5).text
    throttled = [line for line in metrics.splitlines()
                 if line.startswith('ussd_sms_total{provider="smpp",result="throttled"}')]
    assert throttled and float(throttled[0].split()[-1]) > 0, metrics[-1500:]
    assert "ussd_smpp_bound 1.0" in metrics and "ussd_smpp_submit_seconds_count" in metrics


def test_redis_down_while_an_mo_arrives_the_smsc_retries_it_is_handled_once(service, jasmin):
    service.redis.shutdown()
    jasmin.mo("+6281100000301", "STOP")
    wait_for(lambda: "smpp_deliver_retry" in service.smpp.log.read_text(), 30,
             "the binder telling the SMSC to try again")
    service.redis.start()
    (reply,) = wait_for(lambda: jasmin.mts("+6281100000301"), 40, "the answer to STOP")
    assert reply["src"] == "62168" and text_of(reply)
    time.sleep(5)  # Jasmin's further retries, had it any, would have come
    assert len(jasmin.mts("+6281100000301")) == 1
