"""The phone in the browser, in headless Chromium: every journey a QA engineer
does, then the recorded session replayed by `ussd-sim run`."""
from pathlib import Path

import pytest
from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from ussd_app import sim
from ussd_app.gateways import DIALECTS
from ussd_app.scenarios import schema

ARTIFACTS = Path(__file__).parent.parent / "artifacts"  # screenshots (gitignored)

pytestmark = pytest.mark.browser


class Page:
    """The simulator page, as a person uses it."""

    def __init__(self, driver, url):
        self.driver = driver
        driver.get(url + "/simulator")
        self.wait_for(lambda: self.inbox(), "the inbox")

    def el(self, id_):
        return self.driver.find_element(By.ID, id_)

    def wait_for(self, condition, what="the page"):
        return WebDriverWait(self.driver, 15).until(lambda d: condition(), message=f"waiting for {what}")

    @property
    def screen(self) -> str:
        return self.el("screen").text

    def keypad(self, keys: str):
        for k in keys:
            self.driver.find_element(By.CSS_SELECTOR, f'.key[data-key="{k}"]').click()

    def press(self, keys: str, expect: str):
        """Type ``keys`` on the keypad, press Call, wait for ``expect`` on the screen."""
        hops = len(self.log_rows())
        self.keypad(keys)
        self.el("call").click()
        self.wait_for(lambda: len(self.log_rows()) > hops and expect in self.screen, repr(expect))
        return self.screen

    def dial(self, expect: str):
        entry = self.el("entry")
        self.wait_for(lambda: entry.get_attribute("value") == "*700#", "the dial box to hold *700#")
        hops = len(self.log_rows())
        self.el("call").click()
        self.wait_for(lambda: len(self.log_rows()) > hops and expect in self.screen, repr(expect))

    def log_rows(self):
        return self.el("log").find_elements(By.CSS_SELECTOR, "tbody tr")

    def inbox(self) -> list[str]:
        # read in one go: the list is drawn anew whenever the inbox is refreshed
        return self.driver.execute_script(
            "return [...document.querySelectorAll('#inbox li')].map(li => li.innerText)")

    def sms(self, text: str, expect: str):
        before = len(self.inbox())
        self.el("sms-text").send_keys(text)
        self.el("sms-send").click()
        self.wait_for(lambda: len(self.inbox()) > before and expect in self.inbox()[-1], repr(expect))

    def dialect(self, name: str):
        Select(self.el("dialect")).select_by_value(name)

    def fresh(self) -> str:
        """Press "Fresh subscriber": a new number with points and the demo offer."""
        old = self.el("msisdn").get_attribute("value")
        self.el("fresh").click()
        self.wait_for(lambda: self.el("msisdn").get_attribute("value") != old, "a fresh subscriber")
        number = self.el("msisdn").get_attribute("value")
        self.wait_for(lambda: number in self.el("inbox-of").text and self.inbox(), "its inbox")
        return number

    def end(self, button: str, shown: str):
        self.el(button).click()
        self.wait_for(lambda: self.screen == shown, shown)

    def record(self):
        self.el("record").click()
        self.wait_for(lambda: "recording" in self.el("recording").text, "the recorder")

    def save(self) -> str:
        """Stop recording, save: the scenario's text."""
        self.el("record").click()
        self.wait_for(lambda: "steps recorded" in self.el("recording").text, "the recorder to stop")
        self.el("save").click()
        self.wait_for(lambda: self.el("scenario").is_displayed() and self.el("scenario").text, "the scenario")
        return self.el("scenario").text

    def shot(self, name: str):
        phone = self.driver.find_element(By.CSS_SELECTOR, ".phone")
        self.driver.execute_script("arguments[0].scrollIntoView(true)", phone)
        phone.screenshot(str(ARTIFACTS / f"{name}.png"))


def test_every_journey_in_the_browser_then_the_recording_replays_green(browser, live_server, tmp_path):
    page = Page(browser, live_server)
    assert "Bank A menawarkan" in page.inbox()[0]  # the demo offer, in the number's inbox
    page.el("record").click()
    page.wait_for(lambda: "recording" in page.el("recording").text, "the recorder")

    page.dial("Poin Plus")
    assert "1 Cek poin" in page.screen
    page.shot("phone-main-menu")
    assert "Poin Anda: 12.500" in page.press("1", "Poin Anda")
    page.press("00", "Poin Plus")
    page.press("2", "pilih kategori")
    page.press("5", "Voucher kopi")
    assert "Sisa setelah tukar: 12.000" in page.press("1", "Harga: 500 poin")
    page.press("1", "Tukar 1x Voucher kopi Rp25.000 dengan 500 poin?")
    page.shot("phone-confirm")
    page.press("1", "Sisa poin: 12.000")
    page.wait_for(lambda: any("Kode voucher" in m for m in page.inbox()), "the voucher SMS")
    assert sum("Kode voucher" in m for m in page.inbox()) == 1  # each SMS shown once

    page.sms("YA KTA 3171014506900001", "dikirim ke Bank A untuk Kredit Multiguna")

    page.dial("Poin Plus")
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(ARTIFACTS / "simulator-page.png"))  # as docs/simulator.md shows it
    page.el("hangup").click()
    page.wait_for(lambda: page.screen == "(hung up)", "the hang-up")
    assert page.el("entry").get_attribute("value") == "*700#"
    page.dial("Poin Plus")
    page.el("timeout").click()
    page.wait_for(lambda: page.screen == "(the session timed out)", "the time-out")

    # the log: each hop's text, its GSM-7 length against the limit, and its latency
    first = [td.text for td in page.log_rows()[0].find_elements(By.TAG_NAME, "td")]
    assert first[0] == "1" and first[1] == "*700#" and first[2].startswith("CON Poin Plus")
    assert first[3].endswith("/160") and float(first[4]) >= 0
    page.shot("phone-after-journeys")

    page.el("record").click()
    page.el("save").click()
    page.wait_for(lambda: page.el("scenario").is_displayed(), "the scenario")
    text = page.el("scenario").text
    assert "caller" in text and "kta-demo" in text
    downloaded = []
    page.wait_for(lambda: downloaded.extend(browser.downloads.glob("recorded-*.yaml")) or downloaded,
                  "the downloaded scenario file")
    path = downloaded[0]
    assert path.read_text() == text + "\n" or path.read_text().strip() == text.strip()

    result = CliRunner().invoke(sim.main, ["--url", live_server, "run", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 passed, 0 failed"
    # ... and again: a recording replays on a number of its own every time
    result = CliRunner().invoke(sim.main, ["--url", live_server, "run", str(path)])
    assert result.exit_code == 0, result.output


def test_the_phone_fits_a_360_px_screen(browser, live_server):
    browser.set_window_size(360, 800)
    page = Page(browser, live_server)
    page.dial("Poin Plus")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    inner = browser.execute_script("return window.innerWidth")
    assert width <= inner
    assert page.el("call").is_displayed() and page.el("sms-send").is_displayed()
    page.shot("phone-360px")


def test_the_menu_graph_is_drawn_from_the_engine(browser, live_server):
    browser.get(live_server + "/simulator/graph")
    screens = browser.find_elements(By.CSS_SELECTOR, "svg g.screen")
    edges = browser.find_elements(By.CSS_SELECTOR, "svg g.edge")
    from ussd_app.services import engine
    from ussd_app.web import menu_graph
    assert {s.get_attribute("data-screen") for s in screens} == set(engine().screens)
    assert len(edges) == len(menu_graph.edges(engine()))
    browser.save_screenshot(str(ARTIFACTS / "menu-graph.png"))


def test_hang_up_and_resume(browser, live_server):
    page = Page(browser, live_server)
    page.dial("Poin Plus")
    page.press("2", "pilih kategori")  # a list to choose from: on the way to an action
    page.el("hangup").click()
    page.wait_for(lambda: page.screen == "(hung up)", "the hang-up")
    page.dial("Lanjutkan")
    assert "pilih kategori" in page.press("1", "pilih kategori")


def to_the_confirmation(page):
    """Main menu -> rewards -> vouchers -> coffee -> its confirmation: a screen on
    the way to an action (a redial offers to resume it)."""
    page.dial("Poin Plus")
    page.press("2", "pilih kategori")
    page.press("5", "Voucher kopi")
    page.press("1", "Harga: 500 poin")
    page.press("1", "Tukar 1x Voucher kopi Rp25.000 dengan 500 poin?")


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_a_time_out_then_a_redial_offers_to_resume_in_every_dialect(browser, live_server, dialect):
    page = Page(browser, live_server)
    page.dialect(dialect)
    page.fresh()
    to_the_confirmation(page)
    page.end("timeout", "(the session timed out)")
    note = page.log_rows()[-1].text
    if dialect == "africastalking":  # its end-of-session notification, as it sends one
        assert "/ussd/events" in note and '"status": "Incomplete"' in note
    elif dialect in ("nalo", "arkesel"):
        assert "sends nothing" in note
    page.dial("Sesi Anda sebelumnya terputus.")
    assert "1 Lanjutkan" in page.screen
    assert "Tukar 1x Voucher kopi" in page.press("1", "Tukar 1x")
    assert "Sisa poin: 12.000" in page.press("1", "Sisa poin")


JOURNEYS = {
    "points": [("1", "Poin Anda: 12.500")],
    "redeem": [("2", "pilih kategori"), ("5", "Voucher kopi"), ("1", "Harga: 500 poin"),
               ("1", "Tukar 1x"), ("1", "Sisa poin: 12.000")],
    "offer consent": [("3", "Kredit Multiguna - Bank A"), ("1", "Bank A: Kredit Multiguna"),
                      ("1", "dikirim ke Bank A"), ("1", "Ketik NIK"),
                      ("3171014506900001", "Terima kasih")],
}


@pytest.mark.parametrize("journey", list(JOURNEYS))
def test_each_journey_recorded_replays_twice_and_on_a_later_day(browser, live_app, live_server, journey):
    page = Page(browser, live_server)
    page.fresh()
    page.dial("Poin Plus")  # a session the recording must not inherit
    page.press("1", "Poin Anda")
    page.press("00", "Poin Plus")
    page.press("2", "pilih kategori")
    page.end("hangup", "(hung up)")
    page.record()
    page.dial("Poin Plus")
    for keys, expect in JOURNEYS[journey]:
        page.press(keys, expect)
    if journey != "points":
        page.wait_for(lambda: any(w in page.inbox()[-1] for w in ("Kode voucher", "dikirim ke Bank A")),
                      "the SMS the journey sends")
    text = page.save()
    scenario = schema.load_text(text, "recorded.yaml")
    assert "Sesi Anda sebelumnya" not in text  # recorded from a clean state
    assert "2026-" not in text and "2027-" not in text  # times relative, dates any date
    assert scenario.steps[0].kind == "dial"
    path = Path(browser.downloads) / f"{journey.replace(' ', '-')}.yaml"
    path.write_text(text)
    for _ in range(2):
        result = CliRunner().invoke(sim.main, ["--url", live_server, "run", str(path)])
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == "1 passed, 0 failed"
    # three days and some hours later (the service's clock shifted), in-process on the same data
    services = live_app.extensions["ussd"]
    clock, later = services.clock, services.clock() + 3 * 86400 + 5 * 3600 + 17 * 60  # other times of day
    services.clock = lambda: later
    try:
        assert sim.play(sim.Client(app=live_app), schema.load_file(path), warn=lambda w: None) > 0
    finally:
        services.clock = clock


def test_the_page_speaks_every_dialect(browser, live_server):
    page = Page(browser, live_server)
    for dialect in DIALECTS:
        page.dialect(dialect)
        page.dial("Poin Plus")
        assert "Poin Anda: 12.500" in page.press("1", "Poin Anda")
        row = page.log_rows()[-1]
        sent = row.find_elements(By.TAG_NAME, "td")[1].get_attribute("title")
        assert sent.startswith(f"{dialect} sent: ")
        page.press("00", "Poin Plus")
        page.end("hangup", "(hung up)")


def test_the_phone_shows_time_left_and_an_inbox_that_keeps_itself_up_to_date(browser, live_app, live_server):
    page = Page(browser, live_server)
    number = page.fresh()
    page.dial("Poin Plus")
    page.wait_for(lambda: "session 2:" in page.el("clock").text and "this screen 0:" in page.el("clock").text,
                  "the time left")
    page.sms("POIN", "Poin Anda")
    mine = [m for m in page.inbox() if m.startswith("you → 62168")]
    assert mine and "POIN" in mine[-1] and "1 SMS" in mine[-1]
    assert page.inbox()[-1].startswith("from ") and " SMS" in page.inbox()[-1]
    # a late SMS (a worker sends a reward code after the hop): it shows by itself
    live_app.extensions["ussd"].sms.send(number, "Kode voucher: LATE-1234. " + "x" * 150)
    page.wait_for(lambda: "LATE-1234" in page.inbox()[-1], "the late SMS")
    assert "2 SMS segments" in page.inbox()[-1]
