"""Copy: every service SMS fits one segment, one way to say "contact us", the
offer's terms on its USSD detail, the expiry help as the policy configured."""
import string

import pytest

from ussd_app.core import gsm7, texts
from ussd_app.core.config import Config
from ussd_app.offers import campaigns

from test_offers import campaign_body

SEGMENT = 160  # one GSM-7 SMS

# The longest values each placeholder realistically takes. A campaign whose own
# names would make one of its SMS longer is refused when it is created (below).
LONGEST = {
    "balance": "10.000.000", "points": "10.000.000", "short": "10.000.000",
    "date": "31-12-2026 23:59 WIB",
    "contact": Config().SUPPORT_CONTACT,  # the default: 36 characters
    "support": "halo@bank-syariah.co.id, 14040",  # a partner's: an address and a number
    "institution": "Bank Syariah Indonesia",  # 22
    "product": "Kredit Pemilikan Rumah",  # 22
    "reward": "Voucher Belanja Indomaret Rp100.000",  # 35 (rewards.NAME_MAX: 40)
    "code": "ABCD-EFGH-IJKL-MNOP",  # a voucher code (the offer and reward codes are shorter)
    "codes": "KREDITMOTO, KTA2026",  # two offers held at once
    "example": "KREDITMOTO",
    "withdrawn": "2", "limit": "10", "short_code": "62168",
}
CODES = {"sms.ya_offer": "KREDITMOTO", "sms.tukar_inactive": "VOUCHER-INDOMARET-100K"}  # offer, reward


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def rendered(lang: str, key: str) -> list[str]:
    """``key`` filled with the longest values, once per variant of a composed value."""
    text = texts.catalog(lang)[key]
    unknown = placeholders(text) - set(LONGEST) - {"expiry", "reason"}
    assert not unknown, f"{lang}:{key}: add a realistic longest value for {unknown}"
    values = {**LONGEST, "code": CODES.get(key, LONGEST["code"])}
    out = []
    for expiry in (texts.t(lang, "sms.expiry", **LONGEST), texts.t(lang, "sms.no_expiry")):
        reasons = [texts.t(lang, k, **LONGEST) for k in texts.catalog(lang) if k.startswith("rewards.refused.")]
        for reason in reasons:
            out.append(text.format(**{**values, "expiry": expiry, "reason": reason}))
    return sorted(set(out), key=gsm7.length)


SERVICE_SMS = [(lang, key) for lang in texts.LANGUAGES for key in texts.catalog(lang) if key.startswith("sms.")
               and key not in ("sms.expiry", "sms.no_expiry")]  # parts of sms.balance


@pytest.mark.parametrize("lang, key", SERVICE_SMS, ids=[f"{lang}:{key}" for lang, key in SERVICE_SMS])
def test_every_service_sms_fits_one_segment(lang, key):
    longest = rendered(lang, key)[-1]
    assert gsm7.fits(longest)
    assert gsm7.length(longest) <= SEGMENT, f"{gsm7.length(longest)} characters: {longest}"


def test_the_consent_confirmation_with_the_demo_campaign_is_one_segment():
    """The SMS that was 162 characters (two segments)."""
    for lang in texts.LANGUAGES:
        text = texts.t(lang, "sms.consent_ok", institution="Bank A", product="Kredit Multiguna",
                       support="halo@bank-a.example, 1500-123")
        assert gsm7.length(text) <= SEGMENT


def test_every_sms_key_in_one_language_is_in_the_other():
    assert {k for _, k in SERVICE_SMS if _ == "id"} == {k for _, k in SERVICE_SMS if _ == "en"}


# -- "contact us": one phrase ------------------------------------------------------------
CONTACT = {"id": ("Hubungi kami (menu 4 Bantuan).", "Hubungi kami: "),
           "en": ("Contact us (menu 4 Help).", "Contact us: ")}


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_contact_us_is_said_one_way(lang):
    screen, sms = CONTACT[lang]
    catalog = texts.catalog(lang)
    assert catalog["help.contact"] == screen.split(" (")[0]  # the menu's own label
    pointing = {k: v for k, v in catalog.items() if "menu 4" in v or "pilih 4" in v or "choose 4" in v}
    assert pointing and all(v.endswith(screen) for v in pointing.values()), pointing
    for other in ("layanan pelanggan", "customer care", "Bantuan: {contact}", "Help: {contact}",
                  "Info: {contact}"):
        assert not [k for k, v in catalog.items() if other in v]
    ours = {k: v for k, v in catalog.items() if "{contact}" in v}
    assert all(sms + "{contact}" in v for k, v in ours.items() if k.startswith("sms.")), ours


def test_screens_say_contact_us_as_the_help_menu_does(phone, api):
    api("PUT", "/api/v1/subscribers/081200000009", {"credit_score": 600, "status": "blocked"}, status=200)
    phone.msisdn = "081200000009"
    assert phone.dial(text="1").startswith("Akun poin Anda sedang diblokir. Hubungi kami (menu 4 Bantuan).")
    assert phone.dial(text="4").split("\n")[4] == "4 Hubungi kami"


# -- the offer's terms on its USSD detail ------------------------------------------------
def test_the_offer_detail_shows_the_terms_the_sms_gives(api, phone):
    body = campaign_body(terms={"id": "hingga Rp50 juta", "en": "up to Rp50 million"},
                         message={"id": "Bank A menawarkan Kredit Multiguna hingga Rp50 juta."})
    api("PUT", "/api/v1/subscribers/081100000001",
        {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}}, status=200)
    api("POST", "/api/v1/campaigns", body, status=201)
    api("POST", "/api/v1/campaigns/kta-nov/offers", {}, status=200)
    phone.msisdn = "081100000001"
    assert "hingga Rp50 juta" in phone.inbox()[-1]
    assert phone.dial(text="3*1").startswith("Bank A: Kredit Multiguna, hingga Rp50 juta. Kode KTA.\n1 Lanjut")
    api("PUT", "/api/v1/subscribers/081100000001", {"language": "en"}, status=200)
    assert phone.dial(text="3*1").startswith("Bank A: Kredit Multiguna, up to Rp50 million. Code KTA.\n1 Continue")
    assert api("GET", "/api/v1/campaigns/kta-nov", status=200)["terms"]["id"] == "hingga Rp50 juta"


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_the_longest_offer_detail_fits_a_screen(lang):
    """Name, product, terms and code at their limits, with the detail's options."""
    detail = texts.t(lang, "offers.detail_terms", institution="I" * campaigns.NAME_MAX,
                     product="P" * campaigns.NAME_MAX, terms="T" * campaigns.TERMS_MAX, code="C" * 10)
    tail = [f"1 {texts.t(lang, 'offers.next')}", f"2 {texts.t(lang, 'offers.decline')}", texts.t(lang, "nav.footer")]
    assert gsm7.length("\n".join([detail, *tail])) <= Config().USSD_MAX_CHARS


@pytest.mark.parametrize("terms, error", [
    ({"id": "x" * 41}, "terms.id must be at most 40 characters"),
    ({"en": "up to Rp50 million"}, "terms.id must be an Indonesian text"),
    ({"id": "hingga\nRp50 juta"}, "terms.id must be one line"),
])
def test_terms_are_one_short_line(client, terms, error):
    resp = client.post("/api/v1/campaigns", json=campaign_body(terms=terms))
    assert resp.status_code == 400 and resp.get_json()["error"].startswith(error)


def test_a_campaign_whose_sms_would_not_fit_one_segment_is_refused(client, api):
    long = campaign_body(institution={"id": "bank-p", "name": "Bank Pembangunan Daerah Jatim",
                                      "support": "layanan.nasabah@bankpembangunandaerah.co.id, 1500-123"},
                         product="Kredit Tanpa Agunan Multiguna")
    resp = client.post("/api/v1/campaigns", json=long)
    assert resp.status_code == 400
    assert resp.get_json()["error"].startswith("institution.name, product and institution.support are too long "
                                               "together: the SMS sms.consent_ok (id) would take ")
    long["institution"]["support"] = "cs@bankjatim.co.id"
    api("POST", "/api/v1/campaigns", long, status=201)


def test_a_campaign_without_support_is_measured_with_the_default_contact(client):
    body = campaign_body(institution={"id": "bank-p", "name": "Bank Pembangunan Daerah Jatim"},
                         product="Kredit Tanpa Agunan Multiguna")
    assert client.post("/api/v1/campaigns", json=body).status_code == 400  # 36 characters of contact


def test_a_campaign_without_terms_shows_the_detail_as_before(api, phone):
    api("PUT", "/api/v1/subscribers/081100000001",
        {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}}, status=200)
    api("POST", "/api/v1/campaigns", campaign_body(), status=201)
    api("POST", "/api/v1/campaigns/kta-nov/offers", {}, status=200)
    phone.msisdn = "081100000001"
    assert phone.dial(text="3*1").startswith("Bank A: Kredit Multiguna. Kode KTA.\n1 Lanjut")


# -- the expiry help says the policy configured --------------------------------------------
@pytest.fixture
def rolling(config):
    return {**config, "POINTS_EXPIRY_POLICY": "rolling", "POINTS_EXPIRY_DAYS": 90}


def test_the_expiry_help_says_the_calendar_policy(phone):
    assert phone.dial(text="4*3").startswith("Poin berlaku s.d. 31 Desember tahun ini; sebagian poin punya "
                                             "tanggal sendiri (lihat menu 1).")


class TestRolling:
    @pytest.fixture
    def config(self, rolling):
        return rolling

    def test_the_expiry_help_says_the_rolling_policy(self, phone, api, services):
        screen = phone.dial(text="4*3")
        assert screen.startswith("Poin berlaku 90 hari sejak didapat;") and "31 Desember" not in screen
        api("PUT", "/api/v1/subscribers/081234567890", {"language": "en"}, status=200)
        assert phone.dial(text="4*3").startswith("Points last 90 days from when they are earned;")
