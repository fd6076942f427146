"""A session the network dropped after it left the main menu is offered
again to a plain redial, in every dialect; never after an end, from the main
menu, on a shortcut dial, or after USSD_RESUME_SECONDS."""
import pytest

from phones import RESUME_OFFER as OFFER, Phone
from ussd_app.core import gsm7, texts
from ussd_app.gateways import DIALECTS
from ussd_app.ussd import hop

MSISDN = "+6281234567890"




@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_a_dropped_session_resumes_where_it_left_with_its_history(client, demo_data, dialect):
    phone = Phone(client, msisdn=MSISDN, dialect=dialect)
    phone.dial()
    left = phone.type(2, 1)  # the data rewards, then the network drops the session
    assert phone.dial() == OFFER
    assert phone.type(1) == left
    assert phone.type(0).startswith("Tukar poin: pilih kategori")  # 0 goes back, as before the drop


@pytest.mark.parametrize("dialect", ["hubtel", "truroute", "africastalking"])
@pytest.mark.parametrize("kind", ["timeout", "release"])
def test_a_session_the_gateway_closed_resumes_too(client, demo_data, dialect, kind):
    phone = Phone(client, msisdn=MSISDN, dialect=dialect)
    phone.dial()
    left = phone.type(2, 1)
    assert phone.hang_up(kind) == 200
    assert phone.dial() == OFFER
    assert phone.type(1) == left


def test_start_over(client, demo_data):
    phone = Phone(client, msisdn=MSISDN)
    phone.dial()
    phone.type(2)
    phone.dial()
    assert phone.type(2).startswith("Poin Plus\n1 Cek poin")


def test_another_answer_shows_the_offer_again(client, demo_data):
    phone = Phone(client, msisdn=MSISDN, dialect="nalo")
    phone.dial()
    phone.type(3)
    phone.dial()
    assert phone.type(7) == "Pilihan tidak dikenal.\n" + OFFER


@pytest.mark.parametrize("how", ["ended", "on the main menu", "shortcut dial", "too late", "switched off"])
def test_never_offered(client, demo_data, clock, monkeypatch, how):
    phone = Phone(client, msisdn=MSISDN, dialect="hubtel")
    phone.dial()
    if how == "ended":
        phone.type(2, 1, 1, 1, 1)
        assert phone.end
    elif how == "on the main menu":
        phone.type(2, "00")
    else:
        phone.type(2)
    if how == "too late":
        clock.now += demo_data.config.USSD_RESUME_SECONDS + 1
    if how == "switched off":
        monkeypatch.setattr(demo_data, "config", demo_data.config.__class__(
            **{**demo_data.config.__dict__, "USSD_RESUME_SECONDS": 0}))
    if how == "shortcut dial":
        assert phone.dial(text="1").startswith("Poin Anda: 12.500")
    else:
        assert phone.dial().startswith("Poin Plus\n1 Cek poin")


def test_a_confirmation_resumed_shows_and_charges_the_new_terms(client, demo_data, api):
    phone = Phone(client, msisdn=MSISDN, dialect="arkesel")
    phone.dial()
    assert phone.type(2, 1, 1, 1).startswith("Tukar 1x Kuota 1GB 7 hari dengan 2.500 poin?\n1 Ya")
    reward = api("GET", "/api/v1/rewards/DATA1GB", status=200)
    api("PUT", "/api/v1/rewards/DATA1GB", {**{k: reward[k] for k in (
        "name", "category", "fulfilment", "partner")}, "points": 3000}, status=200)
    phone.dial()
    assert phone.type(1).startswith("Tukar 1x Kuota 1GB 7 hari dengan 3.000 poin?")
    phone.type(1)
    assert api("GET", f"/api/v1/subscribers/{MSISDN}/points")["balance"] == 12_500 - 3000


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_the_offer_fits_a_screen(services, lang):
    assert gsm7.problems(hop.resume_offer(lang, "error.invalid_choice").text,
                         services.config.USSD_MAX_CHARS) == []
