"""Operator and partner text: refused on the way in unless a phone can show it
(GSM-7, one line, no control characters, within its limit: 400 naming the field),
and a stored text that cannot be shown anyway never takes a menu down (the
entry is left out and logged)."""
import dataclasses
import logging

import pytest

from ussd_app import demo
from ussd_app.core import gsm7
from ussd_app.loyalty import rewards
from ussd_app.offers import campaigns

from test_offers import campaign_body

REWARD = {"name": {"id": "Kopi susu", "en": "Milk coffee"}, "category": "voucher", "points": 100,
          "fulfilment": "voucher", "generate_codes": True}
UNSHOWABLE = ["Kopi \u2615", "\u201cKopi\u201d", "Kopi\n9 HADIAH GRATIS", "Kopi\rsusu", "Kopi\tsusu",
              "Kopi\x00", "Kopi\x1b", "Kopi `susu`", "Kopi\u00a0susu", "Kopi\u200bsusu"]


@pytest.fixture
def seeded(services):
    demo.seed(services)  # +6281234567890: 12,500 points, holds the KTA offer of kta-demo


class TestValidation:
    @pytest.mark.parametrize("name", UNSHOWABLE)
    @pytest.mark.parametrize("lang", ["id", "en"])
    def test_a_reward_name_a_phone_cannot_show_is_400_naming_it(self, client, name, lang):
        body = {**REWARD, "name": {**REWARD["name"], lang: name}}
        resp = client.put("/api/v1/rewards/KOPI", json=body)
        assert resp.status_code == 400
        assert resp.get_json()["error"].startswith(f"name.{lang} ")
        assert client.get("/api/v1/rewards/KOPI").status_code == 404

    @pytest.mark.parametrize("name", ["Kopi \u20ac2", "Caf\u00e9 \u00c4pfel", "Kopi [susu] {50%}"])
    def test_gsm7_letters_and_extension_characters_are_fine(self, client, name):
        assert client.put("/api/v1/rewards/KOPI", json={**REWARD, "name": name}).status_code == 200

    def test_the_name_limit_counts_septets(self, client):
        assert client.put("/api/v1/rewards/KOPI", json={**REWARD, "name": "K" * 40}).status_code == 200
        resp = client.put("/api/v1/rewards/KOPI", json={**REWARD, "name": "K" * 39 + "\u20ac"})
        assert resp.status_code == 400 and resp.get_json()["error"].startswith("name.id must be at most 40")

    @pytest.mark.parametrize("field", ["category", "code"])
    def test_a_trailing_line_break_slips_through_no_pattern(self, client, field):
        body = {**REWARD, "category": "voucher\n"} if field == "category" else REWARD
        code = "KOPI%0A" if field == "code" else "KOPI"
        assert client.put(f"/api/v1/rewards/{code}", json=body).status_code == 400

    @pytest.mark.parametrize("change, field", [
        ({"product": "Pulsa 5rb\n9 HADIAH GRATIS"}, "product"),
        ({"product": "Kredit \u201cMurah\u201d"}, "product"),
        ({"product": "K" * 31}, "product"),
        ({"institution": {"id": "bank-a", "name": "Bank \u2615"}}, "institution.name"),
        ({"institution": {"id": "bank-a", "name": "Bank\rA"}}, "institution.name"),
        ({"institution": {"id": "bank-a", "name": "Bank A", "support": "cs@bank\u00a0a"}},
         "institution.support"),
        ({"institution": {"id": "bank-a", "name": "Bank A", "support": "a\nb"}}, "institution.support"),
        ({"message": {"id": "Halo \u2615"}}, "message.id"),
        ({"message": {"id": "Halo", "en": "Hi\x07"}}, "message.en"),
        ({"consent_text": {"id": "Setuju?\nYA"}}, "consent_text.id"),
        ({"consent_version": "1\n2"}, "consent_version"),
        ({"id": "kta-nov\n"}, "id"),
        ({"code": "KTA\n"}, "code"),
    ])
    def test_campaign_texts_a_phone_cannot_show_are_400_naming_the_field(self, client, change, field):
        resp = client.post("/api/v1/campaigns", json=campaign_body(**change))
        assert resp.status_code == 400
        assert resp.get_json()["error"].startswith(f"{field} ")
        assert client.get("/api/v1/campaigns/kta-nov").status_code == 404

    def test_a_message_may_break_lines(self, client):
        body = campaign_body(message={"id": "Bank A menawarkan:\nKredit Multiguna."})
        assert client.post("/api/v1/campaigns", json=body).status_code == 201


def store_unchecked(services, reward=None, campaign=None):
    """Put data past validation, as an old release or a hand edit in Redis could."""
    if reward is not None:
        rewards.put(services.r, reward)
    if campaign is not None:
        campaigns.put(services.r, campaign)


def warnings_about(caplog, what):
    return [r for r in caplog.records if r.levelno == logging.WARNING and what in r.getMessage()]


class TestRenderingDefensively:
    @pytest.mark.parametrize("name", UNSHOWABLE)
    def test_a_stored_reward_that_cannot_be_shown_is_left_out_of_its_list(self, seeded, services, phone,
                                                                          name, caplog):
        good = rewards.validate("KOPI", REWARD)
        store_unchecked(services, reward=dataclasses.replace(good, code="KOPI2", name={"id": name}))
        store_unchecked(services, reward=good)
        phone.dial(text="2")
        assert "Voucher belanja" in phone.screen
        screen = phone.type(5)  # Voucher belanja: the demo's two, Kopi susu, not the broken one
        assert not phone.end and not gsm7.problems(screen, 160)
        assert "Kopi susu 100p" in screen and "HADIAH" not in screen and "\r" not in screen
        assert [line for line in screen.splitlines() if line[:1].isascii() and line[:1] in "123456789"] == [
            "1 Kopi susu 100p", "2 Voucher kopi Rp25.000 500p", "3 Voucher belanja Rp50.000 5.000p"]
        assert phone.type(1).startswith("Kopi susu\nHarga: 100 poin")  # numbering follows what is shown
        assert warnings_about(caplog, "list entry left out of screen reward_list")

    def test_a_category_of_only_unshowable_rewards_still_lists_the_others(self, seeded, services, phone):
        bad = dataclasses.replace(rewards.validate("KOPI", REWARD), category="kopi", name={"id": "\u2615"})
        store_unchecked(services, reward=bad)
        phone.dial(text="2")
        (kopi,) = [line.split()[0] for line in phone.screen.splitlines() if line.endswith(" Kopi")]
        screen = phone.type(kopi)  # the category shows, its one reward does not: an empty list, no crash
        assert not phone.end and screen.startswith("Kopi\n0 Kembali")

    @pytest.mark.parametrize("change", [{"product": "Pulsa 5rb\n9 HADIAH GRATIS"},
                                        {"product": "Kredit \u201cMurah\u201d"},
                                        {"institution": {"id": "bank-a", "name": "Bank \u2615", "support": ""}}])
    def test_a_stored_campaign_that_cannot_be_shown_leaves_the_offers_menu_up(self, seeded, services, phone,
                                                                               change, caplog):
        kta = campaigns.get(services.r, "kta-demo")
        store_unchecked(services, campaign=dataclasses.replace(kta, **change))
        screen = phone.dial(text="3")
        assert not phone.end and not gsm7.problems(screen, 160)
        assert "HADIAH" not in screen and "\n1 " not in screen  # the offer is left out, no fake option
        assert "9 Stop semua penawaran" in screen
        assert warnings_about(caplog, "list entry left out of screen offers")

    def test_a_screen_whose_own_text_cannot_be_shown_apologises_and_takes_no_option(
            self, seeded, services, phone, api, caplog):
        phone.dial(text="2*5*1")
        assert phone.screen.startswith("Voucher kopi Rp25.000")
        kopi = rewards.get(services.r, "KOPI25")
        store_unchecked(services, reward=dataclasses.replace(kopi, name={"id": "Kopi \u2615"}))
        assert phone.type(1) == "Maaf, ini tidak bisa ditampilkan saat ini.\n0 Kembali 00 Menu"
        assert not phone.end and warnings_about(caplog, "screen reward_confirm cannot show its text")
        assert phone.type(1) == ("Pilihan tidak dikenal.\nMaaf, ini tidak bisa ditampilkan saat ini.\n"
                                 "0 Kembali 00 Menu")  # the hidden 'Ya, tukar' is not taken
        assert api("GET", "/api/v1/subscribers/081234567890/points")["balance"] == 12_500
        assert "Kopi" not in phone.type(0)  # back to the list, which leaves KOPI25 out now
        assert phone.type("00").startswith("Poin Plus")
