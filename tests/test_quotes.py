"""The terms shown on a confirmation are the terms charged (USSD and SMS): a
reward changed between the screen and the confirm moves nothing and is shown
again with its new terms."""
import threading
import time
from datetime import datetime, timezone

import pytest

from ussd_app import demo
from ussd_app.core import keys

MSISDN = "081234567890"  # demo: 12,500 points
DATA1GB = {"name": {"id": "Kuota 1GB 7 hari", "en": "1GB data, 7 days"}, "category": "data",
           "points": 2500, "fulfilment": "data", "partner": "Operator"}
PULSA10 = {"name": {"id": "Pulsa Rp10.000", "en": "Airtime Rp10,000"}, "category": "pulsa",
           "points": 1100, "fulfilment": "airtime", "max_per_transaction": 3}


@pytest.fixture
def seeded(services):
    demo.seed(services)
    services.r.delete(keys.outbox("+6281234567890"))  # the demo offer's SMS: not read here


def balance(api):
    return api("GET", f"/api/v1/subscribers/{MSISDN}/points")["balance"]


def ledger(api):
    return [(e["type"], e["points"]) for e in api("GET", f"/api/v1/subscribers/{MSISDN}/ledger")["entries"]]


def test_a_price_raised_under_the_confirmation_is_shown_not_charged(seeded, phone, api):
    phone.dial(text="2*1*1*1")
    assert phone.screen.startswith("Tukar 1x Kuota 1GB 7 hari dengan 2.500 poin?")
    api("PUT", "/api/v1/rewards/DATA1GB", {**DATA1GB, "points": 9000}, status=200)
    screen = phone.type(1)
    assert not phone.end
    assert screen.startswith("Harga/ketentuan hadiah ini baru saja berubah. Poin Anda belum dipakai.\n"
                             "Tukar 1x Kuota 1GB 7 hari dengan 9.000 poin?\n1 Ya, tukar")
    assert balance(api) == 12_500 and ledger(api) == [("earn", 2500), ("earn", 10000)]
    phone.type(1)  # the new terms, confirmed
    assert phone.end and "Sisa poin: 3.500" in phone.screen
    assert ledger(api)[-1] == ("redeem", -9000)


def test_a_price_lowered_is_charged_only_once_confirmed(seeded, phone, api):
    phone.dial(text="2*4*2*1")  # Pulsa Rp10.000, quantity asked
    phone.type(2)
    assert phone.screen.startswith("Tukar 2x Pulsa Rp10.000 dengan 2.200 poin?")
    api("PUT", "/api/v1/rewards/PULSA10", {**PULSA10, "points": 1000}, status=200)
    assert "Tukar 2x Pulsa Rp10.000 dengan 2.000 poin?" in phone.type(1)
    assert balance(api) == 12_500
    phone.type(1)
    assert phone.end and balance(api) == 10_500


def test_changed_terms_hold_no_stock(seeded, phone, api):
    api("PUT", "/api/v1/rewards/DATA1GB", {**DATA1GB, "stock": 5}, status=200)
    phone.dial(text="2*1*1*1")
    api("PUT", "/api/v1/rewards/DATA1GB", {**DATA1GB, "stock": 5, "points": 3000}, status=200)
    phone.type(1)
    assert "3.000 poin" in phone.screen
    assert api("GET", "/api/v1/rewards/DATA1GB")["stock"] == 5
    assert api("GET", f"/api/v1/subscribers/{MSISDN}/redemptions")["redemptions"] == []


def test_new_terms_the_balance_cannot_cover_are_refused_on_the_screen(seeded, phone, api):
    phone.dial(text="2*1*1*1")
    api("PUT", "/api/v1/rewards/DATA1GB", {**DATA1GB, "points": 20_000}, status=200)
    screen = phone.type(1)
    assert "baru saja berubah" in screen and "Poin Anda kurang 7.500 untuk hadiah ini." in screen
    assert "1 Ya, tukar" not in screen
    assert balance(api) == 12_500


def test_a_reward_withdrawn_under_the_confirmation(seeded, phone, api):
    phone.dial(text="2*1*1*1")
    yesterday = datetime.fromtimestamp(time.time() - 86400, timezone.utc).isoformat()
    api("PUT", "/api/v1/rewards/DATA1GB", {**DATA1GB, "active_until": yesterday}, status=200)
    assert phone.type(1).startswith("Maaf, hadiah ini sudah tidak tersedia.")
    assert balance(api) == 12_500


def test_duplicate_confirms_of_one_quote_debit_once_across_a_change(seeded, app, phone, api):
    """The first confirm wins; copies of it (same quote) after a PUT are the same redemption."""
    phone.dial(text="2*1*1*1")
    form = {"sessionId": phone.session, "serviceCode": "*700#", "phoneNumber": phone.msisdn,
            "text": "2*1*1*1*1"}
    first = app.test_client().post("/ussd", data=form).get_data(as_text=True)
    assert first.startswith("END Penukaran Kuota 1GB")
    api("PUT", "/api/v1/rewards/DATA1GB", {**DATA1GB, "points": 9000}, status=200)
    replies = []

    def post():
        replies.append(app.test_client().post("/ussd", data=form).get_data(as_text=True))
    threads = [threading.Thread(target=post) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert replies == [first] * 6
    assert balance(api) == 10_000
    assert len(api("GET", f"/api/v1/subscribers/{MSISDN}/redemptions")["redemptions"]) == 1


def test_going_back_after_a_refusal_quotes_afresh(seeded, phone, api):
    phone.msisdn = "081234567891"  # 800 points, English
    phone.dial(text="2*4*1*1*1")  # airtime Rp5,000 (600 points), quantity 1
    assert phone.screen.startswith("Redeem 1x Airtime Rp5,000 for 600 points?")
    phone.sms("TUKAR PULSA5")  # meanwhile, by SMS
    phone.sms("YA")
    assert "You need 400 more points" in phone.type(1)
    api("POST", "/api/v1/subscribers/081234567891/points", {
        "points": 1000, "source": "t", "reference": "r"}, status=201)
    assert phone.type(0).startswith("Redeem 1x Airtime Rp5,000 for 600 points?")
    phone.type(1)
    assert phone.end and "Points left: 600" in phone.screen
    redeemed = api("GET", "/api/v1/subscribers/081234567891/redemptions")["redemptions"]
    assert [r["points"] for r in redeemed] == [600, 600]
    assert len({r["reference"] for r in redeemed}) == 2


class TestSms:
    def test_a_price_changed_between_tukar_and_ya_is_quoted_again(self, seeded, phone, api):
        phone.sms("TUKAR PULSA10")
        assert phone.inbox()[-1].startswith("Tukar Pulsa Rp10.000 dengan 1.100 poin? Balas YA")
        api("PUT", "/api/v1/rewards/PULSA10", {**PULSA10, "points": 9000}, status=200)
        phone.sms("YA")
        assert phone.inbox()[-1] == ("Harga/ketentuan Pulsa Rp10.000 berubah. Tukar dengan 9.000 poin? "
                                     "Balas YA dalam 5 menit untuk konfirmasi.")
        assert balance(api) == 12_500
        phone.sms("YA")
        assert balance(api) == 3_500
        assert ledger(api)[-1] == ("redeem", -9000)

    def test_ya_twice_for_one_quote_debits_once(self, seeded, phone, api, services):
        phone.sms("TUKAR PULSA10")
        api("PUT", "/api/v1/rewards/PULSA10", {**PULSA10, "points": 900}, status=200)
        phone.sms("YA")  # changed: quoted again at 900
        done = []
        threads = [threading.Thread(target=lambda i=i: done.append(phone.sms("YA", message_id=f"y{i}")))
                   for i in range(5)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert balance(api) == 11_600
        assert len(api("GET", f"/api/v1/subscribers/{MSISDN}/redemptions")["redemptions"]) == 1

    def test_tukar_of_a_reward_out_of_stock_quotes_nothing(self, seeded, phone, api):
        api("PUT", "/api/v1/rewards/PULSA10", {**PULSA10, "stock": 0}, status=200)
        phone.sms("TUKAR PULSA10")
        assert phone.inbox()[-1] == "Penukaran gagal: Maaf, stok hadiah ini habis."
        phone.sms("YA")  # nothing to confirm: the number's open offer is pointed to instead
        assert phone.inbox()[-1].startswith("Untuk setuju penawaran Bank A, ketik YA KTA")
        assert balance(api) == 12_500


def test_the_confirmation_shown_again_keeps_its_terms_until_confirmed(seeded, phone, api):
    phone.dial(text="2*1*1*1")
    api("PUT", "/api/v1/rewards/DATA1GB", {**DATA1GB, "points": 3000}, status=200)
    assert "dengan 2.500 poin?" in phone.type(9)  # not an option: the same terms again
    assert "baru saja berubah" in phone.type(1)  # the confirmation finds them changed
    assert "dengan 3.000 poin?" in phone.screen and balance(api) == 12_500
    phone.type(1)
    assert phone.end and "Sisa poin: 9.500" in phone.screen
