"""Digits are ASCII 0-9 only: '²' passes str.isdigit() and int() reads '３' as 3,
so neither may judge what a subscriber or a partner typed. Anything else is an
invalid input answered on the screen (or by SMS), never an error."""
import logging

import pytest

from ussd_app import demo
from ussd_app.core import digits
from ussd_app.offers import nik

NIK = "3171014506900001"
FULL_WIDTH_NIK = "".join(chr(ord(c) + 0xFEE0) for c in NIK)  # ３１７１…
SUPERSCRIPT = "\u00b2"  # ²: a 'digit' to str.isdigit()


@pytest.fixture
def seeded(services):
    demo.seed(services)  # +6281234567890: 12,500 points, holds the KTA offer


def no_errors_logged(caplog):
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("text, length, number", [
    ("12", None, 12), ("007", 3, 7), (SUPERSCRIPT, None, None), ("\uff13", None, None),
    ("\u0663", None, None), ("1 ", None, None), ("-1", None, None), ("", None, None), ("12", 3, 12),
])
def test_only_ascii_digits_are_digits(text, length, number):
    assert digits.only(text, length) is (number is not None and (length is None or len(text) == length))
    assert digits.number(text, 0, 1000) == number


def test_a_number_of_a_thousand_digits_is_no_number():
    assert digits.number("9" * 1000, 1, 10) is None


@pytest.mark.parametrize("typed", [NIK.replace("3", SUPERSCRIPT), FULL_WIDTH_NIK, SUPERSCRIPT * 16,
                                   "\u0663" * 16])
def test_a_nik_of_other_digits_is_invalid(typed):
    assert len(typed) == 16
    assert nik.problem(typed) == "length"


class TestUssd:
    def test_a_superscript_list_choice_is_an_invalid_choice(self, seeded, phone, caplog):
        phone.dial(text="2*1")
        screen = phone.type(SUPERSCRIPT)
        assert not phone.end and screen.startswith("Pilihan tidak dikenal.\nKuota data\n1 Kuota 1GB")
        assert no_errors_logged(caplog)

    @pytest.mark.parametrize("typed", [SUPERSCRIPT, "\uff13", "\u0663"])
    def test_a_quantity_in_other_digits_is_asked_again(self, seeded, phone, typed, caplog):
        phone.dial(text="2*4*1*1")
        assert phone.screen.startswith("Berapa jumlahnya? (1-5)")
        assert phone.type(typed).startswith("Ketik angka 1 sampai 5.")
        assert not phone.end and no_errors_logged(caplog)

    def test_a_full_width_nik_is_refused_on_the_screen(self, seeded, phone, api):
        phone.dial(text="3*1*1*1")
        assert phone.type(FULL_WIDTH_NIK).startswith("NIK tidak valid (harus 16 angka). Sisa 2 kali.")
        assert api("GET", "/api/v1/leads?institution=bank-a")["leads"] == []


class TestSms:
    @pytest.mark.parametrize("typed", [SUPERSCRIPT * 16, FULL_WIDTH_NIK, NIK[:-1] + "\uff11"])
    def test_consent_with_other_digits_is_answered_and_reaches_no_partner(self, seeded, phone, api,
                                                                          typed, caplog):
        phone.sms(f"YA KTA {typed}")  # Phone.sms asserts the gateway got 200
        assert phone.inbox()[-1].startswith("NIK harus 16 angka.")
        phone.sms(f"YA {typed}")
        assert phone.inbox()[-1].startswith("NIK harus 16 angka.")
        assert api("GET", "/api/v1/leads?institution=bank-a")["leads"] == []
        assert no_errors_logged(caplog)


class TestApiAndGateway:
    @pytest.mark.parametrize("query", ["cursor=\uff11", "limit=\uff15", "cursor=%C2%B2", "limit=1%200",
                                       "cursor=-1"])
    def test_leads_paging_takes_ascii_digits_only(self, client, query):
        resp = client.get(f"/api/v1/leads?institution=bank-a&{query}")
        assert resp.status_code == 400 and resp.get_json()["error"].split()[0] in ("cursor", "limit")

    @pytest.mark.parametrize("number", ["\uff10\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10",
                                        "08123456789" + SUPERSCRIPT])
    def test_a_msisdn_in_other_digits_is_refused(self, client, number):
        assert client.put(f"/api/v1/subscribers/{number}", json={}).status_code == 400
