"""What subscribers and newcomers read: texts, SMS replies and commands found
wrong while trying the service as a new user would."""
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ussd_app import cli, demo
from ussd_app.core import config as configuration, gsm7, keys, texts

README = (Path(__file__).parent.parent / "README.md").read_text()
CONTACT = "support.indonesia@trustingsocial.com"


@pytest.fixture
def seeded(services):
    demo.seed(services)
    services.r.delete(keys.outbox("+6281234567890"))


def test_tukar_with_too_few_points_refuses_at_once(services, phone, api):
    demo.seed(services)
    api("PUT", "/api/v1/subscribers/081299990001", {"credit_score": 600})
    api("POST", "/api/v1/subscribers/081299990001/points",
        {"points": 500, "source": "topup", "reference": "few"})
    poor = type(phone)(phone.client, msisdn="081299990001")
    poor.sms("TUKAR PULSA10")
    assert poor.inbox() == ["Penukaran gagal: Poin Anda kurang 600 untuk hadiah ini."]
    poor.sms("YA")  # nothing was quoted
    assert poor.inbox()[-1].startswith("Tidak ada yang perlu dikonfirmasi")


def test_ya_alone_while_holding_an_offer_points_to_ya_code_nik(services, phone):
    demo.seed(services)  # 081234567890 holds Bank A's offer KTA
    phone.sms("YA")
    assert "YA KTA <NIK" in phone.inbox()[-1]
    assert "Tidak ada yang perlu dikonfirmasi" not in phone.inbox()[-1]


def test_the_receipt_comes_before_the_delivery_when_jobs_run_at_once(seeded, phone, services):
    assert services.jobs.sync  # as in the embedded demo
    phone.sms("TUKAR PULSA10")
    phone.sms("YA")
    inbox = phone.inbox()
    assert inbox[1].startswith("Penukaran Pulsa Rp10.000 diproses")
    assert inbox[2].startswith("Penukaran Pulsa Rp10.000 berhasil")


def test_english_texts_read_as_english():
    assert "1 tries" not in texts.t("en", "offers.nik_bad", reason="must be 16 digits", left=1)
    assert "who answers for" not in texts.t("en", "offers.disclosure", institution="Bank A")


def test_stop_says_nothing_of_withdrawals_when_there_were_none(seeded, phone):
    phone.sms("STOP")
    reply = phone.inbox()[-1]
    assert reply == "Anda berhenti menerima penawaran keuangan. Ketik MULAI ke 62168 untuk menerima lagi."
    english = type(phone)(phone.client, msisdn="081234567891")  # holds the offer too
    english.sms("YA KTA 3171014506900001")
    english.sms("STOP")
    assert english.inbox()[-1] == ("You will receive no more financial offers. Consents withdrawn "
                                   "before they were passed on: 1. Send MULAI to 62168 to receive them again.")


def test_the_expiry_help_reads_plainly(phone, seeded):
    assert "tahun poin didapat" not in phone.dial(text="4*3")
    assert "31 Desember" in phone.screen


@pytest.mark.parametrize("lang", ["id", "en"])
def test_info_mentions_tukar_and_fits_one_sms(lang):
    help_sms = texts.t(lang, "sms.help", contact=CONTACT)
    assert "TUKAR" in help_sms
    assert gsm7.length(help_sms) <= 160
    assert "TUKAR" in texts.t(lang, "sms.unknown")


# -- commands -----------------------------------------------------------------------
def test_worker_help_says_how_often():
    out = CliRunner().invoke(cli.main, ["worker", "--help"]).output
    assert "every few seconds" not in out and "30 s" in " ".join(out.split())


def test_offers_send_prints_json(services, redis_url, monkeypatch):
    demo.seed(services)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFER_SEND_WINDOW", "always")
    result = CliRunner().invoke(cli.main, ["offers", "send", "kta-demo"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["sent"] == 0 and answer["skipped"]["already_offered"] == 2


@pytest.mark.parametrize("args", [["seed-demo"], ["offers", "send", "kta-demo"], ["points", "expire"],
                                  ["redemptions", "recover"], ["report", "funnel"],
                                  ["partners", "add", "bank-a"], ["partners", "list"],
                                  ["partners", "revoke", "bank-a"], ["archive", "run"]])
def test_commands_on_data_refuse_a_throwaway_store(args, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 1
    assert "REDIS_URL is unset" in result.output and "throwaway" in result.output
    assert "Traceback" not in result.output


def test_menus_check_runs_under_production(monkeypatch):
    monkeypatch.setenv("USSD_APP_ENV", "production")
    for name in ("REDIS_URL", "ADMIN_TOKEN", "GATEWAY_TOKEN", "PII_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli.main, ["menus", "check"])
    assert result.exit_code == 0, result.output
    assert "0 problems" in result.output


# -- README -----------------------------------------------------------------------------
def test_readme_names_every_setting():
    """In README.md or a page of docs/ (docs/smpp.md has the SMPP settings)."""
    docs = README + "".join(p.read_text() for p in sorted((Path(__file__).parent.parent / "docs").glob("*.md")))
    names = [f.name for f in configuration.fields(configuration.Config)] + ["PORT"]
    missing = [n for n in names if f"`{n}`" not in docs]
    assert missing == []


def test_readme_sends_nobody_to_documents_the_project_does_not_ship():
    assert "BRIEF" not in README
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith("http"):
            assert (Path(__file__).parent.parent / link).exists(), link


def test_readme_runs_the_benchmark_with_the_venvs_python():
    docs = (Path(__file__).parent.parent / "docs").glob("*.md")
    for text in [README, *(p.read_text() for p in docs)]:
        assert re.search(r"(?<![./])python bench/", text) is None
