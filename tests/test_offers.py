"""Financial offers: campaigns, sending, consent by SMS and USSD, opt-out, leads."""
import json
import logging
import threading
from datetime import datetime

import pytest

from ussd_app.offers import campaigns, consents
from ussd_app.sms import providers
from ussd_app.core import keys, subscribers
from ussd_app.core.formats import WIB

NIK = "3171014506900001"  # a woman born 5 June 1990 in Jakarta Pusat
NIK2 = "3273010101850002"


def campaign_body(**changes):
    body = {
        "id": "kta-nov", "institution": {"id": "bank-a", "name": "Bank A", "support": "cs@bank-a.example"},
        "product": "Kredit Multiguna", "sender_id": "KreditSmart", "code": "KTA",
        "message": {"id": "Bank A menawarkan Kredit Multiguna.", "en": "Bank A offers a loan."},
        "consent_text": {"id": "Jika setuju, nomor HP, skor kredit & NIK Anda dikirim ke Bank A.",
                         "en": "If you agree, your number, credit score & NIK go to Bank A."},
        "consent_version": "1", "valid_from": "2020-01-01T00:00:00+07:00",
        "valid_until": "2035-01-01T00:00:00+07:00",
        "eligibility": {"credit_score": {"min": 600}, "attributes": {
            "tenure_months": {"min": 12}, "region": {"in": ["JKT", "BDG"]}}}}
    body.update(changes)
    return body


@pytest.fixture
def people(api):
    """Eligible (two), low score, wrong region, blocked; one of them English."""
    for msisdn, profile in [
        ("081100000001", {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}}),
        ("081100000002", {"credit_score": 650, "attributes": {"region": "BDG", "tenure_months": 12},
                          "language": "en"}),
        ("081100000003", {"credit_score": 500, "attributes": {"region": "JKT", "tenure_months": 30}}),
        ("081100000004", {"credit_score": 800, "attributes": {"region": "SBY", "tenure_months": 30}}),
        ("081100000005", {"credit_score": 800, "status": "blocked",
                          "attributes": {"region": "JKT", "tenure_months": 30}}),
    ]:
        api("PUT", f"/api/v1/subscribers/{msisdn}", profile, status=200)


@pytest.fixture
def offered(api, people):
    api("POST", "/api/v1/campaigns", campaign_body(), status=201)
    return api("POST", "/api/v1/campaigns/kta-nov/offers", {}, status=200)


def leads(api, **query):
    q = "&".join(f"{k}={v}" for k, v in {"institution": "bank-a", **query}.items())
    return api("GET", f"/api/v1/leads?{q}", status=200)


@pytest.fixture
def sub(phone):
    phone.msisdn = "081100000001"
    return phone


class TestCampaigns:
    @pytest.mark.parametrize("change, error", [
        ({"id": "Bad Id"}, "id must be"),
        ({"institution": {"name": "X"}}, "institution.id must be"),
        ({"sender_id": "Spammer"}, "sender_id must be one of GeneRate, Rate-Kredit, KreditSmart"),
        ({"code": "YA"}, "code must be"),
        ({"message": {"en": "no indonesian"}}, "message.id must be an Indonesian text"),
        ({"consent_text": {"id": "x" * 200}}, "consent_text.id must be at most 110 characters"),
        ({"consent_text": {"id": "\u201cquoted\u201d"}}, "consent_text.id has characters outside GSM-7"),
        ({"valid_until": "2019-01-01T00:00:00+07:00"}, "valid_until must be after valid_from"),
        ({"valid_from": "soon"}, "valid_from must be an ISO 8601 time"),
        ({"eligibility": {"credit_score": {"above": 3}}}, "eligibility.credit_score may only have min, max"),
        ({"consent_version": ""}, "consent_version is required"),
    ])
    def test_invalid_campaigns_name_the_field(self, client, change, error):
        resp = client.post("/api/v1/campaigns", json=campaign_body(**change))
        assert resp.status_code == 400
        assert resp.get_json()["error"].startswith(error)

    def test_create_list_and_conflict(self, client, api):
        assert api("POST", "/api/v1/campaigns", campaign_body(), status=201)["code"] == "KTA"
        assert client.post("/api/v1/campaigns", json=campaign_body()).status_code == 409
        assert [c["id"] for c in api("GET", "/api/v1/campaigns")["campaigns"]] == ["kta-nov"]


class TestSending:
    def test_counts_and_one_sms_each_from_the_sender_id(self, offered, api, client):
        assert offered == {"sent": 2, "skipped": {"opted_out": 0, "ineligible": 2,
                                                  "already_offered": 0, "blocked": 1}}
        msgs = client.get("/api/v1/outbox?to=081100000001").get_json()["messages"]
        assert len(msgs) == 1 and msgs[0]["from"] == "KreditSmart"
        assert msgs[0]["text"].startswith("Bank A menawarkan Kredit Multiguna. Jika setuju")
        assert "Balas YA KTA <NIK> ke 62168" in msgs[0]["text"]
        english = client.get("/api/v1/outbox?to=081100000002").get_json()["messages"]
        assert english[0]["text"].startswith("Bank A offers a loan.")

    def test_a_second_send_repeats_nothing(self, offered, api, client):
        again = api("POST", "/api/v1/campaigns/kta-nov/offers", {"msisdns": ["081100000001", "6281100000002"]})
        assert again == {"sent": 0, "skipped": {"opted_out": 0, "ineligible": 0,
                                                "already_offered": 2, "blocked": 0}}
        assert len(client.get("/api/v1/outbox?to=081100000001").get_json()["messages"]) == 1

    def test_an_opted_out_subscriber_is_skipped_by_a_later_campaign(self, offered, api, sub):
        sub.sms("STOP")
        api("POST", "/api/v1/campaigns", campaign_body(id="kk-dec", code="KK"), status=201)
        got = api("POST", "/api/v1/campaigns/kk-dec/offers", {})
        assert got["sent"] == 1 and got["skipped"]["opted_out"] == 1
        sub.sms("MULAI")
        api("POST", "/api/v1/campaigns", campaign_body(id="kk-jan", code="KK2"), status=201)
        assert api("POST", "/api/v1/campaigns/kk-jan/offers", {})["sent"] == 2

    def test_campaign_not_running_is_409(self, api, client, people):
        api("POST", "/api/v1/campaigns", campaign_body(valid_until="2021-01-01T00:00:00+07:00"))
        assert client.post("/api/v1/campaigns/kta-nov/offers", json={}).status_code == 409
        assert client.post("/api/v1/campaigns/nope/offers", json={}).status_code == 404


class TestSendingWindow:
    @pytest.fixture
    def config(self, config):
        return {**config, "OFFER_SEND_WINDOW": "Mon-Sat 08:00-18:00"}

    def test_outside_the_window_offers_wait_then_go(self, api, people, services, clock, client):
        from ussd_app.offers import sending as offers
        clock.now = datetime(2026, 11, 22, 20, 0, tzinfo=WIB).timestamp()  # Sunday evening
        api("POST", "/api/v1/campaigns", campaign_body(), status=201)
        got = api("POST", "/api/v1/campaigns/kta-nov/offers", {})
        assert got["sent"] == 2 and got["scheduled"] == 2
        assert got["send_at"] == "2026-11-23T08:00:00+07:00"
        assert client.get("/api/v1/outbox?to=081100000001").get_json()["messages"] == []
        held = services.jobs.queue.scheduled_job_registry
        job_id, = held.get_job_ids()
        assert held.get_scheduled_time(job_id).timestamp() == datetime(
            2026, 11, 23, 8, 0, tzinfo=WIB).timestamp()
        job = services.jobs.queue.fetch_job(job_id)
        assert job.func_name == offers.RELEASE_JOB and len(job.args[0]) == 2
        clock.now = datetime(2026, 11, 23, 8, 0, tzinfo=WIB).timestamp()
        job.perform()  # what the worker does when rq's scheduler queues it
        assert len(client.get("/api/v1/outbox?to=081100000001").get_json()["messages"]) == 1

    def test_held_offers_that_run_while_the_window_is_closed_wait_again(self, services, clock, client):
        from ussd_app.offers import sending as offers
        clock.now = datetime(2026, 12, 25, 10, 0, tzinfo=WIB).timestamp()  # Christmas: a holiday
        offers.release(services, [services.sms.message("+6281100000009", "tawaran", "GeneRate")])
        assert client.get("/api/v1/outbox?to=081100000009").get_json()["messages"] == []
        held = services.jobs.queue.scheduled_job_registry
        job_id, = held.get_job_ids()
        assert held.get_scheduled_time(job_id).timestamp() == datetime(
            2026, 12, 26, 8, 0, tzinfo=WIB).timestamp()

    def test_holding_the_same_batch_twice_holds_it_once(self, services):
        from ussd_app.offers import sending as offers
        batch, when = [services.sms.message("+6281100000009", "tawaran", "GeneRate")], services.clock() + 60
        offers.hold(services, "kta-nov", batch, when)
        offers.hold(services, "kta-nov", batch, when)
        assert services.jobs.queue.scheduled_job_registry.count == 1

    def test_public_holidays_are_skipped(self):
        from ussd_app.offers.window import parse_window
        w = parse_window("Mon-Sat 08:00-18:00", "2026-12-26")
        christmas = datetime(2026, 12, 25, 10, 0, tzinfo=WIB).timestamp()
        assert not w.allows(christmas)
        assert datetime.fromtimestamp(w.next_open(christmas), WIB).isoformat() == "2026-12-28T08:00:00+07:00"


class TestConsentBySms:
    def test_consent_creates_one_lead_with_exactly_the_agreed_fields(self, offered, sub, api):
        sub.sms(f"YA {NIK}")
        assert sub.inbox()[-1].startswith("No HP, skor kredit & NIK Anda dikirim ke Bank A untuk Kredit "
                                          "Multiguna; belum tentu disetujui.")
        assert "cs@bank-a.example" in sub.inbox()[-1]
        got = leads(api)
        assert got["next_cursor"] is None
        (lead,) = got["leads"]
        assert set(lead) == {"msisdn", "credit_score", "nik", "campaign", "consented_at", "consent_id"}
        assert (lead["msisdn"], lead["credit_score"], lead["nik"], lead["campaign"]) == (
            "+6281100000001", 720, NIK, "kta-nov")
        sub.sms(f"YA KTA {NIK}")
        assert sub.inbox()[-1].startswith("Anda sudah setuju sebelumnya")
        assert len(leads(api)["leads"]) == 1

    def test_the_consent_record_holds_the_proof(self, offered, sub, services):
        sub.sms(f"ya*{NIK}", message_id="sms-77")
        (record,) = consents.log(services.r, "+6281100000001")
        assert record["type"] == "consent" and record["channel"] == "sms" and record["reference"] == "sms-77"
        assert record["fields"] == ["msisdn", "credit_score", "nik"]
        assert record["consent_version"] == "1" and record["institution"] == "bank-a"
        assert record["consent_text"].startswith("Jika setuju")
        assert "Balas YA KTA <NIK>" in record["text_shown"]
        assert services.vault.decrypt(record["raw_input_enc"]) == f"ya*{NIK}"
        assert NIK not in json.dumps(record)

    @pytest.mark.parametrize("text, reply", [
        ("YA", "Untuk setuju penawaran Bank A, ketik YA KTA <NIK 16 angka>"),
        ("YA 1 2 3", "Format salah."),
        ("YA 12345", "NIK harus 16 angka."),
        ("YA 9971014506900001", "NIK tidak valid: kode provinsi salah."),
        ("YA 3171013202900001", "NIK tidak valid: tanggal lahir salah."),
        ("YA 3171014506900000", "NIK tidak valid: nomor urut 0000."),
        ("YA XYZ 3171014506900001", "Kode penawaran itu tidak ada. Penawaran Anda: KTA."),
        ("TIDAK", "Anda menolak penawaran Bank A."),
    ])
    def test_every_failure_says_what_to_send(self, offered, sub, api, text, reply):
        sub.sms(text)
        assert sub.inbox()[-1].startswith(reply)
        assert leads(api)["leads"] == []

    def test_no_offer_for_this_number(self, offered, phone, api):
        phone.msisdn = "081100000003"  # ineligible: never offered
        phone.sms(f"YA {NIK}")
        assert phone.inbox()[-1].startswith("Tidak ada penawaran untuk nomor Anda.")
        assert leads(api)["leads"] == []

    def test_expired_offer(self, offered, sub, clock):
        clock.now = datetime(2099, 2, 1, tzinfo=WIB).timestamp()
        sub.sms(f"YA {NIK}")
        assert sub.inbox()[-1] == "Maaf, penawaran Bank A sudah berakhir."

    def test_two_offers_need_a_code(self, offered, sub, api):
        api("POST", "/api/v1/campaigns", campaign_body(id="kk-dec", code="KK", product="Kartu Kredit",
                                                       institution={"id": "bank-b", "name": "Bank B"}))
        api("POST", "/api/v1/campaigns/kk-dec/offers", {"msisdns": ["081100000001"]})
        sub.sms(f"YA {NIK}")
        assert sub.inbox()[-1].startswith("Anda punya beberapa penawaran: KK, KTA.")
        assert "contoh YA KK 3171014506900001" in sub.inbox()[-1]  # one code, as it is typed
        sub.sms(f"YA kk {NIK}")
        assert "Bank B untuk Kartu Kredit" in sub.inbox()[-1]
        assert leads(api, institution="bank-b")["leads"][0]["campaign"] == "kk-dec"
        assert leads(api)["leads"] == []

    def test_declined_offer_cannot_be_consented(self, offered, sub, api):
        sub.sms("TIDAK")
        sub.sms(f"YA {NIK}")
        assert sub.inbox()[-1] == "Penawaran Bank A sudah ditutup untuk nomor Anda."
        assert leads(api)["leads"] == []

    def test_replies_in_the_subscribers_language(self, offered, phone):
        phone.msisdn = "081100000002"
        phone.sms(f"YA {NIK2}")
        assert phone.inbox()[-1].startswith("Your number, credit score & NIK go to Bank A for Kredit Multiguna")

    def test_after_consenting_ya_and_tidak_answer_where_the_consent_stands(self, offered, sub, api):
        sub.sms(f"YA {NIK}")
        pending = ("Anda sudah setuju sebelumnya. Bank A belum mengambil data Anda; ketik STOP untuk "
                   "membatalkan (semua penawaran berhenti).")
        sub.sms(f"YA {NIK}")
        assert sub.inbox()[-1] == pending  # not "already passed on": the partner has not fetched it
        sub.sms("TIDAK")
        assert sub.inbox()[-1] == pending  # not "no offer for your number"
        assert len(leads(api)["leads"]) == 1  # the partner fetches the lead
        for text in (f"YA KTA {NIK}", "TIDAK", "TIDAK KTA"):
            sub.sms(text)
            assert sub.inbox()[-1] == ("Anda sudah setuju sebelumnya. Bank A sudah menerima data Anda; "
                                       "STOP hanya menghentikan penawaran baru. Info: cs@bank-a.example")

    def test_after_consenting_the_answers_are_in_english_too(self, offered, phone, api):
        phone.msisdn = "081100000002"
        phone.sms(f"YA {NIK2}")
        phone.sms("TIDAK")
        assert phone.inbox()[-1] == ("You already agreed. Bank A has not taken your data yet; "
                                     "send STOP to withdraw (stops all offers).")
        leads(api)
        phone.sms(f"YA {NIK2}")
        assert phone.inbox()[-1].startswith("You already agreed. Bank A has received your data; ")

    def test_consent_attempts_are_rate_limited(self, offered, sub):
        for _ in range(5):
            sub.sms("YA 123")
        sub.sms(f"YA {NIK}")
        assert sub.inbox()[-1] == "Terlalu banyak percobaan. Coba lagi dalam 1 jam."


class TestOptOutAndLeads:
    def test_stop_withdraws_consents_not_yet_received(self, offered, sub, phone, api, services, client):
        sub.sms(f"YA {NIK}")
        sub.sms("STOP")
        assert sub.inbox()[-1] == ("Anda berhenti menerima penawaran keuangan. 1 persetujuan yang "
                                   "belum diteruskan dibatalkan. Ketik MULAI ke 62168 untuk menerima lagi.")
        assert leads(api)["leads"] == []
        kinds = [e["type"] for e in consents.log(services.r, "+6281100000001")]
        assert kinds == ["consent", "optout", "withdrawal"]

    def test_a_lead_already_received_stays_received(self, offered, sub, api, services):
        sub.sms(f"YA {NIK}")
        assert len(leads(api)["leads"]) == 1  # received by the institution now
        sub.sms("BERHENTI")
        assert sub.inbox()[-1] == "Anda berhenti menerima penawaran keuangan. Ketik MULAI ke 62168 untuk menerima lagi."
        assert len(leads(api)["leads"]) == 1
        stored = json.loads(services.r.hget(keys.consents("+6281100000001"),
                                            consents.consent_id("+6281100000001", "kta-nov")))
        assert stored["received_at"] and "withdrawn_at" not in stored

    def test_leads_page_with_a_cursor(self, api, services, client):
        api("POST", "/api/v1/campaigns", campaign_body(eligibility={}), status=201)
        numbers = [f"0812000000{i:02d}" for i in range(5)]
        for m in numbers:
            api("PUT", f"/api/v1/subscribers/{m}", {"credit_score": 700})
        api("POST", "/api/v1/campaigns/kta-nov/offers", {"msisdns": numbers})
        for i, m in enumerate(numbers):
            client.post("/sms/inbound", data={"from": m, "to": "62168", "text": f"YA {NIK}", "id": f"m{i}"})
        first = leads(api, limit=2)
        second = leads(api, limit=2, cursor=first["next_cursor"])
        third = leads(api, limit=2, cursor=second["next_cursor"])
        got = [lead["msisdn"] for page in (first, second, third) for lead in page["leads"]]
        assert got == [f"+62812000000{i:02d}" for i in range(5)]
        assert third["next_cursor"] is None

    def test_concurrent_consents_give_one_consent_and_one_lead_each(self, offered, services, api):
        """Twenty consents at once from each eligible number (a gateway's
        retries, both channels): one consent, one lead, one SMS each."""
        campaign = campaigns.get(services.r, "kta-nov")
        numbers = ["+6281100000001", "+6281100000002"]
        outcomes = []
        barrier = threading.Barrier(40)

        def one(msisdn, i):
            proof = consents.Proof("sms", f"m{i}", "text", services.vault.encrypt(f"YA {NIK}"), "id")
            score = subscribers.get(services.r, msisdn).credit_score
            barrier.wait()
            outcomes.append(consents.give(services, msisdn, campaign, services.vault.encrypt(NIK), proof,
                                          None, score))
        threads = [threading.Thread(target=one, args=(m, i)) for m in numbers for i in range(20)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert sorted(outcomes) == ["already"] * 38 + ["ok"] * 2
        assert sorted(lead["msisdn"] for lead in leads(api)["leads"]) == numbers
        for m in numbers:
            assert [e["type"] for e in consents.log(services.r, m)] == ["consent"]
            assert len(providers.outbox(services.r, m)) == 2  # the offer, one confirmation

    def test_leads_need_an_institution(self, client):
        assert client.get("/api/v1/leads").get_json() == {"error": "missing institution"}

    def test_the_nik_is_encrypted_at_rest_and_never_logged(self, offered, sub, services, caplog):
        with caplog.at_level(logging.DEBUG):
            sub.sms(f"YA {NIK}")
            sub.dial(text="3")
        for name in services.r.scan_iter("*"):
            kind = services.r.type(name)
            dump = {"string": lambda: services.r.get(name), "hash": lambda: services.r.hgetall(name),
                    "list": lambda: services.r.lrange(name, 0, -1), "set": lambda: services.r.smembers(name),
                    "zset": lambda: services.r.zrange(name, 0, -1)}[kind]()
            assert NIK not in json.dumps(dump, default=str), name
        assert NIK not in caplog.text
        assert "81100000001" not in caplog.text


class TestConsentByUssd:
    def test_consent_through_the_menu(self, offered, phone, api):
        phone.msisdn = "081100000002"  # English
        assert phone.dial(text="3").startswith("Offers for you:\n1 Kredit Multiguna - Bank A\n9 Stop all offers")
        assert phone.type(1).startswith("Bank A: Kredit Multiguna. Code KTA.\n1 Continue\n2 Decline")
        assert phone.type(1).startswith("Your number, credit score & NIK go to Bank A, the product's "
                                        "provider. Approval not guaranteed.\n1 Agree")
        assert phone.type(1).startswith("Type your NIK")
        phone.type(NIK2)
        assert phone.end and phone.screen.startswith("Thank you. Your data goes to Bank A.")
        assert phone.inbox()[-1].startswith("Your number, credit score & NIK go to Bank A")
        (lead,) = leads(api)["leads"]
        assert (lead["msisdn"], lead["nik"], lead["credit_score"]) == ("+6281100000002", NIK2, 650)
        assert phone.dial(text="3*1").startswith("Bank A: Kredit Multiguna. You agreed ")

    def test_the_detail_of_an_agreed_offer_says_whether_the_partner_has_the_data(self, offered, sub, api):
        sub.sms(f"YA {NIK}")
        screen = sub.dial(text="3*1")
        assert screen.startswith("Bank A: Kredit Multiguna. Anda setuju ")
        assert "; data belum diambil mitra ini." in screen and "dikirim" not in screen
        leads(api)  # the partner fetches it
        assert "; data sudah diterima mitra ini." in sub.dial(text="3*1")

    def test_three_wrong_niks_end_the_session_with_advice(self, offered, sub, api):
        sub.dial(text="3*1*1*1")
        assert sub.type("123").startswith("NIK tidak valid (harus 16 angka). Sisa 2 kali.")
        assert sub.type("9971014506900001").startswith("NIK tidak valid (kode provinsi salah). Sisa 1 kali.")
        sub.type("3171014506900000")
        assert sub.end and sub.screen.startswith("NIK salah 3 kali.")
        assert leads(api)["leads"] == []

    def test_decline_and_stop_through_the_menu(self, offered, sub, services):
        sub.dial(text="3*1*2")
        assert sub.end and sub.screen == "Anda menolak penawaran Bank A. Data Anda tidak dibagikan."
        sub.dial(text="3*9")
        assert sub.screen.startswith("Berhenti terima semua penawaran keuangan?")
        sub.type(1)
        assert sub.end and consents.holdings(services.r, "+6281100000001", services.kept).opted_out
        assert sub.dial(text="3").startswith("Anda sudah berhenti menerima penawaran keuangan.\n1 Terima")
        assert sub.type(1).startswith("Anda akan menerima penawaran keuangan lagi.")
        assert not consents.holdings(services.r, "+6281100000001", services.kept).opted_out

    def test_stopping_through_the_menu_sends_the_same_sms_as_stop(self, offered, sub, phone, services):
        sub.sms(f"YA {NIK}")
        sub.dial(text="3*9")
        sent = len(sub.inbox())
        sub.type(1)
        assert sub.end and len(sub.inbox()) == sent + 1
        assert sub.inbox()[-1] == ("Anda berhenti menerima penawaran keuangan. 1 persetujuan yang "
                                   "belum diteruskan dibatalkan. Ketik MULAI ke 62168 untuk menerima lagi.")
        phone.msisdn = "081100000002"  # English, nothing to withdraw: STOP and the menu say the same
        phone.sms("STOP")
        by_sms = phone.inbox()[-1]
        phone.sms("MULAI")
        phone.dial(text="3*9*1")
        assert phone.inbox()[-1] == by_sms == (
            "You will receive no more financial offers. Send MULAI to 62168 to receive them again.")

    def test_campaigns_are_kept_until_one_is_stored(self, offered, sub, api, services):
        """Offer screens keep the campaigns they read while the revision stands."""
        assert sub.dial(text="3").startswith("Penawaran untuk Anda:\n1 Kredit Multiguna - Bank A")
        key = keys.campaign("kta-nov")
        services.r.hset(key, "def", services.r.hget(key, "def").replace("Kredit Multiguna", "KTA Baru"))
        assert "1 Kredit Multiguna - Bank A" in sub.dial(text="3", session="s-kept")
        api("POST", "/api/v1/campaigns", campaign_body(id="kpr-nov", code="KPR"), status=201)
        assert "1 KTA Baru - Bank A" in sub.dial(text="3", session="s-after")

    def test_no_offer_is_explained(self, offered, phone):
        phone.msisdn = "081100000003"
        assert phone.dial(text="3").startswith("Belum ada penawaran untuk nomor Anda.")
