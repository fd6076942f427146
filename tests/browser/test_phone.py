"""The phone in the browser, in headless Chromium: every journey a QA engineer
does, then the recorded session replayed by `ussd-sim run`."""
from pathlib import Path

import pytest
from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ussd_app import sim

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
    browser.save_screenshot(str(ARTIFACTS / "simulator-page.png"))  # as README shows it
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
    page.press("4", "Bantuan")
    page.el("hangup").click()
    page.wait_for(lambda: page.screen == "(hung up)", "the hang-up")
    page.dial("Lanjutkan")
    assert "Bantuan" in page.press("1", "Bantuan")
