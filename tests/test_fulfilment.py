"""Provider outcomes: done, failed (refunded once) or unknown (asked again with
the same reference, with backoff, by rq's retry on a real worker; then
needs_review for a person, never refunded on its own); crash recovery asks a
provider nothing it has already answered."""
import json
import logging
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from ussd_app import cli, jobs
from ussd_app.core import keys
from ussd_app.core.queue import Jobs
from ussd_app.loyalty import fulfilment, points, redemptions, rewards
from ussd_app.sms import providers

M = "+6281234567890"


class Provider(BaseHTTPRequestHandler):
    """A provisioning stub: each call takes the next behaviour of ``plan``
    ('ok', 'timeout', or an HTTP status); 'ok' once the plan is used up."""
    plan: list = []
    calls: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Provider.calls.append((body["reference"], self.headers.get("Idempotency-Key")))
        step = Provider.plan.pop(0) if Provider.plan else "ok"
        if step == "timeout":
            time.sleep(2.5)  # the client gave up after FULFILMENT_TIMEOUT
            step = "ok"
        status = 200 if step == "ok" else step
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"confirmation": "PRV-7"} if status == 200 else {"error": "x"}).encode())

    def log_message(self, *a):
        pass


@pytest.fixture
def provider():
    Provider.plan, Provider.calls = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/provision"
    server.shutdown()
    server.server_close()


@pytest.fixture
def config(config, provider):
    # A real queue (a worker runs in the test), retries without waiting.
    return {**config, "JOBS_SYNC": False, "FULFILMENT_URL": provider, "FULFILMENT_TIMEOUT": 1.5,
            "FULFILMENT_RETRY": "0,0"}


@pytest.fixture
def setup(services):
    now = services.clock()
    points.earn(services.r, M, 1000, "topup", "t", math.inf, now)
    w = rewards.put(services.r, rewards.validate("PULSA10", {
        "name": "Pulsa Rp10.000", "category": "pulsa", "points": 100, "fulfilment": "airtime", "stock": 5}))
    return w


def redeem(services, phone):
    """Redeem one unit of the only reward by USSD; its redemption id."""
    phone.dial("2*1*1*1*1")  # rewards, category, reward, redeem, confirm
    assert phone.end and "diproses" in phone.screen, phone.screen
    (rec,) = redemptions.history(services.r, M)
    return rec["id"]


def balance(services):
    return points.view(services.r, M, services.clock()).balance


def sms(services):
    return [m["text"] for m in providers.outbox(services.r, M)]


def stock(services):
    return rewards.get(services.r, "PULSA10").stock


def test_a_timeout_is_asked_again_with_the_same_reference_and_not_refunded(services, setup, phone):
    Provider.plan = ["timeout"]
    rid = redeem(services, phone)
    jobs.work(services, burst=True)  # attempt 1 times out; rq's retry runs attempt 2
    assert Provider.calls == [(rid, rid), (rid, rid)]
    rec = redemptions.get(services.r, M, rid)
    assert (rec["status"], rec["delivered"]) == ("done", "PRV-7")
    assert balance(services) == 900
    assert [e["type"] for e in points.ledger(services.r, M)] == ["earn", "redeem"]
    assert len(sms(services)) == 1 and "berhasil" in sms(services)[0]
    assert stock(services) == 4


def test_an_expected_timeout_rq_retries_is_one_warning_line_without_a_traceback(
        services, setup, phone, caplog):
    """Issue 19.13: the provider timing out is an outcome the design expects;
    rq's retry runs the job again, and the log says so in one WARNING line
    (rq alone logged it as ERROR with a traceback)."""
    Provider.plan = ["timeout"]
    rid = redeem(services, phone)
    with caplog.at_level(logging.WARNING):
        jobs.work(services, burst=True)
    assert redemptions.get(services.r, M, rid)["status"] == "done"  # the retry delivered it
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
    retried = [r for r in caplog.records if '"job_retried"' in r.getMessage()]
    assert len(retried) == 1 and retried[0].levelno == logging.WARNING
    line = retried[0].getMessage()
    assert retried[0].exc_info is None and "Traceback" not in line and "\n" not in line
    assert "OutcomeUnknown: provider timed out" in line


def test_an_unexpected_error_in_a_job_is_still_an_error_with_its_traceback(services, caplog, monkeypatch):
    monkeypatch.setattr(fulfilment, "fulfil", lambda *a: 1 / 0)
    services.jobs.enqueue("ussd_app.loyalty.fulfilment.fulfil", M, "r-x", retry=(0,))
    with caplog.at_level(logging.WARNING):
        jobs.work(services, burst=True)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "ZeroDivisionError" in errors[0] and "Traceback" in errors[0]


def test_a_definite_failure_after_an_unknown_one_refunds_once(services, setup, phone):
    Provider.plan = [503, 422]
    rid = redeem(services, phone)
    jobs.work(services, burst=True)
    assert len(Provider.calls) == 2
    assert redemptions.get(services.r, M, rid)["status"] == "failed"
    assert balance(services) == 1000 and stock(services) == 5
    assert [e["type"] for e in points.ledger(services.r, M)] == ["earn", "redeem", "refund"]
    assert len(sms(services)) == 1 and "gagal dikirim" in sms(services)[0]


class TestReview:
    @pytest.fixture
    def reviewed(self, services, setup, phone, redis_url, monkeypatch):
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("SMS_PROVIDER", "console")
        Provider.plan = [503, "timeout", 502]
        rid = redeem(services, phone)
        jobs.work(services, burst=True)  # three attempts: FULFILMENT_RETRY holds two retries
        assert len(Provider.calls) == 3
        return rid

    def test_retries_run_out_into_review_never_refunded(self, services, reviewed, api):
        rec = redemptions.get(services.r, M, reviewed)
        assert rec["status"] == "needs_review"
        assert rec["reason"] == "provider answered 502; retries exhausted"
        assert balance(services) == 900 and stock(services) == 4  # points taken, unit held
        assert sms(services) == []
        listed = api("GET", "/api/v1/redemptions?status=needs_review", status=200)["redemptions"]
        assert [(r["id"], r["msisdn"], r["status"]) for r in listed] == [(reviewed, M, "needs_review")]
        assert api("GET", "/api/v1/redemptions?status=pending", status=200)["redemptions"] == []
        assert redemptions.recover(services, older_than=0) == {"refulfilled": 0, "released": 0, "settled": 0, "failed": 0}
        assert len(Provider.calls) == 3

    def test_the_review_command_masks_the_number(self, reviewed):
        out = CliRunner().invoke(cli.main, ["redemptions", "review"])
        assert out.exit_code == 0, out.output
        assert reviewed in out.output and "+62812*****890" in out.output and M not in out.output
        assert "1 redemptions need review" in out.output

    @pytest.mark.parametrize("rid", ["-lXwKcw5KMXK4JV79xUEBS3z", "--XwKcw5KMXK4JV79xUEBS3z"])
    def test_an_id_that_starts_with_a_dash_is_an_id(self, reviewed, rid):
        """Ids are base64url: one in 32 starts with '-' (this test once failed
        so, on a random id): it is the RID, not an option."""
        out = CliRunner().invoke(cli.main, ["redemptions", "settle", rid, "--refund"])
        assert out.exit_code == 1 and f"no redemption {rid} awaits review" in out.output, out.output

    def test_settled_as_refunded_once(self, services, reviewed, api):
        out = CliRunner().invoke(cli.main, ["redemptions", "settle", reviewed, "--refund"])
        assert out.exit_code == 0, out.output
        assert redemptions.get(services.r, M, reviewed)["status"] == "failed"
        assert balance(services) == 1000 and stock(services) == 5
        assert len(sms(services)) == 1 and "gagal dikirim" in sms(services)[0]
        again = CliRunner().invoke(cli.main, ["redemptions", "settle", reviewed, "--done"])
        assert again.exit_code != 0 and "awaits review" in again.output
        assert balance(services) == 1000 and len(sms(services)) == 1
        failed = api("GET", "/api/v1/redemptions?status=failed", status=200)["redemptions"]
        assert [r["id"] for r in failed] == [reviewed]
        assert api("GET", "/api/v1/redemptions?status=needs_review")["redemptions"] == []

    def test_settled_as_done_by_the_api(self, services, reviewed, api):
        rec = api("POST", f"/api/v1/redemptions/{reviewed}/settle", {"outcome": "done", "reference": "PRV-9"},
                  status=200)
        assert (rec["status"], rec["delivered"]) == ("done", "PRV-9")
        assert balance(services) == 900 and stock(services) == 4
        assert sms(services) == ["Penukaran Pulsa Rp10.000 berhasil dan sudah dikirim ke nomor Anda. Ref: PRV-9."]
        api("POST", f"/api/v1/redemptions/{reviewed}/settle", {"outcome": "refund"}, status=404)

    def test_an_id_is_never_a_pattern(self, services, reviewed, api):
        api("POST", "/api/v1/redemptions/*/settle", {"outcome": "refund"}, status=404)
        out = CliRunner().invoke(cli.main, ["redemptions", "settle", "?" * 24, "--refund"])
        assert out.exit_code != 0
        assert redemptions.get(services.r, M, reviewed)["status"] == "needs_review"

    @pytest.mark.parametrize("query", ["", "?status=lost", "?status=done&limit=0", "?status=done&cursor=x"])
    def test_bad_listing_queries_are_400(self, client, query):
        resp = client.get("/api/v1/redemptions" + query)
        assert resp.status_code == 400 and "error" in resp.get_json()


class TestRecovery:
    @pytest.fixture
    def config(self, config):
        return {**config, "FULFILMENT_RETRY": "3600"}  # the retry waits an hour

    def test_a_retry_waiting_for_its_backoff_is_left_alone(self, services, setup, phone):
        Provider.plan = ["timeout"]
        rid = redeem(services, phone)
        jobs.work(services, burst=True)
        assert len(Provider.calls) == 1
        assert redemptions.get(services.r, M, rid)["status"] == "pending"
        assert redemptions.recover(services, older_than=0)["refulfilled"] == 0
        jobs.work(services, burst=True)
        assert len(Provider.calls) == 1 and balance(services) == 900

    def test_a_redemption_a_worker_holds_is_left_alone(self, services, setup, phone):
        rid = redeem(services, phone)
        services.raw.delete("rq:queue:ussd", "rq:queue:ussd-partners")  # its job was lost...
        services.r.set(keys.fulfilling(M, rid), 1)  # ...while a worker is in the middle of it
        assert redemptions.recover(services, older_than=0)["refulfilled"] == 0
        services.r.delete(keys.fulfilling(M, rid))  # that worker died: its lease ran out
        assert redemptions.recover(services, older_than=0)["refulfilled"] == 1
        jobs.work(services, burst=True)
        assert Provider.calls == [(rid, rid)]
        assert redemptions.get(services.r, M, rid)["status"] == "done"

    def test_an_outcome_recorded_before_a_crash_is_not_asked_again(self, services, setup, phone):
        rid = redeem(services, phone)
        services.raw.delete("rq:queue:ussd", "rq:queue:ussd-partners")
        # The provider answered, the outcome was recorded, then the worker died.
        assert redemptions.confirm(services, M, rid, "PRV-1")
        assert redemptions.recover(services, older_than=0) == {"refulfilled": 0, "released": 0, "settled": 1, "failed": 0}
        assert Provider.calls == []
        assert sms(services) == ["Penukaran Pulsa Rp10.000 berhasil dan sudah dikirim ke nomor Anda. Ref: PRV-1."]
        assert stock(services) == 4
        assert redemptions.recover(services, older_than=0) == {"refulfilled": 0, "released": 0, "settled": 0, "failed": 0}
        assert len(sms(services)) == 1
        done = redemptions.listing(services.r, "done")[0]
        assert [r["id"] for r in done] == [rid]

    def test_a_redemption_that_cannot_be_recovered_does_not_hold_back_the_others(
            self, services, setup, phone, monkeypatch, caplog, redis_url):
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("SMS_PROVIDER", "console")
        first = redeem(services, phone)
        phone.dial("2*1*1*1*1")
        (second,) = {rec["id"] for rec in redemptions.history(services.r, M)} - {first}
        services.raw.delete("rq:queue:ussd", "rq:queue:ussd-partners")  # both jobs lost
        drop, failing = Jobs.drop, {f"fulfil-{first}"}

        def drop_or_fail(self, job_id):
            if job_id in failing:
                failing.discard(job_id)
                raise ValueError("rq could not delete the job")
            drop(self, job_id)

        monkeypatch.setattr(Jobs, "drop", drop_or_fail)
        out = CliRunner().invoke(cli.main, ["redemptions", "recover", "--older-than", "0"])
        assert out.exit_code == 1, out.output
        assert "refulfilled: 1, released: 0, settled: 0, failed: 1" in out.output
        assert "1 redemptions could not be recovered" in out.output and "Traceback" not in out.output
        assert f"recovery of redemption {first} failed" in caplog.text and M not in caplog.text
        # The next round recovers the one left.
        assert redemptions.recover(services, older_than=0) == {"refulfilled": 1, "released": 0, "settled": 0, "failed": 0}
        jobs.work(services, burst=True)
        assert {redemptions.get(services.r, M, rid)["status"] for rid in (first, second)} == {"done"}


@pytest.mark.parametrize("value", ["5,x", "-1", ",".join(["1"] * 21), "90000"])
def test_a_bad_retry_schedule_is_refused(value):
    from ussd_app.core import config as configuration
    from ussd_app.core.errors import ConfigError

    with pytest.raises(ConfigError, match="FULFILMENT_RETRY"):
        configuration.load({"FULFILMENT_RETRY": value}, environ={})
