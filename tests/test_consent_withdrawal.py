"""A withdrawn consent is shown as withdrawn, and may be given afresh: a new
consent record with a new id, the withdrawn one kept in the log as the proof."""
import json

import pytest

from ussd_app.core import keys
from ussd_app.offers import campaigns, consents

from test_offers import NIK, NIK2, leads, offered, people, sub  # noqa: F401  (fixtures)

M = "+6281100000001"


@pytest.fixture
def withdrawn(offered, sub, api):
    """YA KTA <NIK> -> STOP (withdrawn: the lead is withheld) -> MULAI."""
    sub.sms(f"YA KTA {NIK}")
    sub.sms("STOP")
    assert sub.inbox()[-1].startswith("Anda berhenti menerima penawaran keuangan. "
                                      "1 persetujuan yang belum diteruskan dibatalkan.")
    sub.sms("MULAI")
    assert leads(api)["leads"] == []
    return sub


def consent_records(services) -> dict:
    return {cid: json.loads(v) for cid, v in services.r.hgetall(keys.consents(M)).items()}


def test_the_menu_shows_the_consent_as_withdrawn(withdrawn, phone):
    screen = withdrawn.dial(text="3")
    assert "1 Kredit Multiguna - Bank A (dibatalkan)" in screen and "(setuju)" not in screen
    detail = withdrawn.type(1)
    assert detail.startswith("Bank A: Kredit Multiguna. Dibatalkan ")
    assert "data tidak dikirim." in detail and "diteruskan" not in detail
    assert "\n1 Lanjut\n2 Tolak" in detail


def test_a_fresh_consent_by_sms_is_a_new_record_and_the_old_stays(withdrawn, services, api):
    first = consents.consent_id(M, "kta-nov")
    withdrawn.sms(f"YA KTA {NIK2}")
    assert withdrawn.inbox()[-1].startswith("No HP, skor kredit & NIK Anda dikirim")
    (lead,) = leads(api)["leads"]
    assert lead["nik"] == NIK2 and lead["consent_id"] != first
    records = consent_records(services)
    assert set(records) == {first, lead["consent_id"]}
    assert records[first]["withdrawn_at"] and "received_at" not in records[first]
    assert services.vault.decrypt(records[first]["nik_enc"]) == NIK  # the proof, unchanged
    kinds = [(e["type"], e.get("id") or e.get("consent_id")) for e in consents.log(services.r, M)]
    assert kinds == [("consent", first), ("optout", None), ("withdrawal", first), ("optin", None),
                     ("consent", lead["consent_id"])]
    withdrawn.sms(f"YA KTA {NIK2}")
    assert withdrawn.inbox()[-1].startswith("Anda sudah setuju sebelumnya")
    assert len(consent_records(services)) == 2


def test_a_fresh_consent_through_the_menu(withdrawn, api):
    withdrawn.dial(text="3*1*1*1")
    assert withdrawn.screen.startswith("Ketik NIK Anda")
    withdrawn.type(NIK2)
    assert withdrawn.end and withdrawn.screen.startswith("Terima kasih. Data Anda dikirim ke Bank A.")
    (lead,) = leads(api)["leads"]
    assert lead["nik"] == NIK2
    assert "(setuju)" in withdrawn.dial(text="3")


def test_a_plain_ya_finds_the_withdrawn_offer(withdrawn, api):
    withdrawn.sms(f"YA {NIK2}")
    assert [lead["nik"] for lead in leads(api)["leads"]] == [NIK2]


def test_no_fresh_consent_while_offers_are_stopped(offered, sub, api):
    sub.sms(f"YA KTA {NIK}")
    sub.sms("STOP")
    sub.sms(f"YA KTA {NIK2}")
    assert sub.inbox()[-1].startswith("Anda sudah berhenti menerima penawaran.")
    assert sub.dial(text="3").startswith("Anda sudah berhenti menerima penawaran keuangan.")
    assert leads(api)["leads"] == []


def test_a_consent_read_before_its_withdrawal_still_makes_a_new_record(offered, sub, services):
    sub.sms(f"YA KTA {NIK}")
    seen = json.loads(services.r.hget(keys.offers(M), "kta-nov"))  # 'consented', as a slow reader saw it
    sub.sms("STOP")
    sub.sms("MULAI")
    campaign = campaigns.get(services.r, "kta-nov")
    proof = consents.Proof("sms", "m-late", "", services.vault.encrypt("YA"), "id")
    status, cid = consents.consent(services.r, M, campaign, services.vault.encrypt(NIK2), 720, proof,
                                   services.clock(), seen)
    assert status == "ok" and cid != seen["consent_id"]
    records = consent_records(services)
    assert records[seen["consent_id"]]["withdrawn_at"]  # not overwritten
    assert services.vault.decrypt(records[cid]["nik_enc"]) == NIK2


def test_an_offer_stored_before_withdrawals_were_marked_heals(offered, sub, services, api):
    sub.sms(f"YA KTA {NIK}")
    sub.sms("STOP")
    sub.sms("MULAI")
    old = json.loads(services.r.hget(keys.offers(M), "kta-nov"))
    services.r.hset(keys.offers(M), "kta-nov", json.dumps({**old, "status": "consented"}))  # as before
    sub.sms(f"YA KTA {NIK2}")
    assert sub.inbox()[-1].startswith("No HP, skor kredit & NIK Anda dikirim ke Bank A")
    assert [lead["nik"] for lead in leads(api)["leads"]] == [NIK2]
