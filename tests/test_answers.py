"""A consequence happens only on the subscriber's explicit answer on the screen
that showed it (issue: resume redeemed without a confirmation, resume undid a
STOP, an answer read against a screen never shown). Entering a screen by any
way (resume, back, home, a retried hop) only shows it."""
import pytest

from phones import RESUME_OFFER as OFFER, Phone
from ussd_app.core import keys
from ussd_app.offers import consents
from ussd_app.services import engine as the_engine

MSISDN = "+6281234567890"




def balance(api, msisdn=MSISDN):
    return api("GET", f"/api/v1/subscribers/{msisdn}/points")["balance"]


def reprice(api, code, points):
    reward = api("GET", f"/api/v1/rewards/{code}", status=200)
    api("PUT", f"/api/v1/rewards/{code}", {**{k: reward[k] for k in (
        "name", "category", "fulfilment", "partner")}, "points": points}, status=200)


def test_no_screen_acts_on_entry():
    """Consequences are transitions' acts: no screen has an entry action that
    could run on a resume, a back or a retry."""
    eng = the_engine()
    assert set(eng.acts()) == {("language", "1"), ("language", "2"), ("reward_confirm", "1"),
                               ("reward_done", "1"), ("offers", "1"), ("offer", "2"),
                               ("offer_disclosure", "2"), ("offer_nik", "<input>"),
                               ("offers_stop", "1")}
    for screen in eng.screens.values():
        assert not hasattr(screen, "enter")


@pytest.mark.parametrize("dialect", ["africastalking", "hubtel"])
def test_a_resume_after_changed_terms_shows_the_confirmation_and_waits_for_1(client, demo_data, api, dialect):
    phone = Phone(client, msisdn=MSISDN, dialect=dialect)
    phone.dial()
    assert phone.type(2, 1, 1, 1).startswith("Tukar 1x Kuota 1GB 7 hari dengan 2.500 poin?\n1 Ya")
    reprice(api, "DATA1GB", 3000)
    shown = phone.type(1)
    assert "3.000 poin" in shown and balance(api) == 12_500  # new terms shown, not accepted
    assert phone.dial() == OFFER  # the phone dropped
    resumed = phone.type(1)
    assert resumed.startswith("Tukar 1x Kuota 1GB 7 hari dengan 3.000 poin?\n1 Ya"), resumed
    assert balance(api) == 12_500  # resuming spent nothing
    phone.type(1)
    assert balance(api) == 12_500 - 3000


def test_a_resume_after_a_refusal_and_a_top_up_waits_for_1(client, demo_data, api):
    phone = Phone(client, msisdn=MSISDN)
    phone.dial()
    phone.type(2, 1, 1, 1)  # Kuota 1GB, 2,500 points: the confirmation
    reprice(api, "DATA1GB", 20_000)
    assert "Poin Anda kurang" in phone.type(1) or balance(api) == 12_500
    api("POST", f"/api/v1/subscribers/{MSISDN}/points",
        {"points": 10_000, "source": "topup", "reference": "t-answers-1"}, status=201)
    assert phone.dial() == OFFER
    resumed = phone.type(1)
    assert resumed.startswith("Tukar 1x Kuota 1GB 7 hari dengan 20.000 poin?\n1 Ya"), resumed
    assert balance(api) == 22_500
    phone.type(1)
    assert balance(api) == 2_500


def test_a_resume_never_undoes_a_stop(client, demo_data, services):
    phone = Phone(client, msisdn=MSISDN)
    phone.sms("STOP")
    phone.dial()
    assert phone.type(3).startswith("Anda sudah berhenti menerima penawaran keuangan.\n1 Terima")
    assert phone.type(1).startswith("Anda akan menerima penawaran keuangan lagi.")
    phone.sms("STOP")  # the phone dropped; the subscriber stops by SMS
    assert not phone.dial().startswith("Sesi Anda sebelumnya")  # "opted in again" is no step on a way
    log = [e["type"] for e in consents.log(services.r, MSISDN) if e["type"] in ("optout", "optin")]
    assert log == ["optout", "optin", "optout"]
    assert consents.holdings(services.r, MSISDN, services.kept).opted_out


def test_an_answer_on_a_screen_whose_state_changed_acts_on_nothing(client, demo_data, services):
    phone = Phone(client, msisdn=MSISDN)
    phone.dial()
    assert phone.type(3).startswith("Penawaran untuk Anda:\n1 Kredit Multiguna - Bank A")
    phone.sms("STOP")  # arrives between the screen and the answer
    fresh = phone.type(1)  # meant the offer; on the opted-out menu "1" would opt back in
    assert fresh.startswith("Menu ini telah berubah. Silakan pilih lagi.\n"
                            "Anda sudah berhenti menerima penawaran keuangan.\n1 Terima"), fresh
    assert consents.holdings(services.r, MSISDN, services.kept).opted_out
    assert phone.type(1).startswith("Anda akan menerima penawaran keuangan lagi.")  # now it was shown
    assert not consents.holdings(services.r, MSISDN, services.kept).opted_out


def test_a_confirmation_whose_terms_changed_under_a_retry_is_shown_afresh(client, demo_data, api):
    phone = Phone(client, msisdn=MSISDN, dialect="hubtel")
    phone.dial()
    phone.type(2, 1, 1, 1)
    phone.type(1)
    spent = balance(api)
    assert spent == 12_500 - 2500
    phone.resend()  # the gateway repeats the confirming hop
    assert balance(api) == spent


@pytest.mark.parametrize("path", [("1",), ("4",), ("4", "2"), ("5", "1")])
def test_no_resume_after_an_information_screen(client, demo_data, path):
    phone = Phone(client, msisdn=MSISDN)
    phone.dial()
    phone.type(*path)  # the balance, help, a help text, "language saved"
    assert not phone.dial().startswith("Sesi Anda sebelumnya")


@pytest.mark.parametrize("path", [("2",), ("2", "1"), ("2", "1", "1"), ("2", "1", "1", "1"), ("3",),
                                  ("3", "1"), ("3", "1", "1"), ("3", "1", "1", "1"), ("3", "9")])
def test_resume_on_the_way_to_an_action(client, demo_data, path):
    phone = Phone(client, msisdn=MSISDN)
    phone.dial()
    left = phone.type(*path)
    assert phone.dial() == OFFER
    assert phone.type(1) == left


def test_a_session_on_a_screen_a_new_release_removed_goes_on_from_the_main_menu(client, demo_data, services):
    phone = Phone(client, msisdn=MSISDN)
    phone.dial()
    phone.type(5)
    key = keys.session(MSISDN, phone.session)
    raw = services.r.get(key)
    services.r.set(key, raw.replace('"language"', '"language_id"'), keepttl=True)
    assert phone.type(1).startswith("Poin Anda: 12.500")  # "1" on the main menu, no error
