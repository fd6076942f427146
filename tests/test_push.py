"""Leads pushed to a partner's webhook: signed, retried, withheld when
withdrawn, once per lead even when a worker is killed mid-delivery."""
import hashlib
import hmac
import json
import signal
import time
from http.server import BaseHTTPRequestHandler

import pytest

from slowhttp import Loopback, Trickle
from waiting import wait_for
from test_offers import NIK, campaign_body
from ussd_app import jobs
from ussd_app.offers import consents, push

SECRET = "a-partner-secret-of-32-characters"
M = "+6281100000001"
CID = consents.consent_id(M, "kta-nov")


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """The check docs/operating.md gives partners."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Receiver(Loopback):
    """A partner's webhook on loopback: answers each POST as ``actions`` says
    (``ok``, ``500``, ``hang``: no answer for ``hang_seconds``, ``slow``: 200
    after ``hang_seconds``), and keeps each lead once per delivery id."""

    def __init__(self, actions=(), hang_seconds=3.0):
        self.actions, self.hang_seconds = list(actions), hang_seconds
        self.posts: list[dict] = []
        self.leads: dict[str, dict] = {}  # delivery id -> lead: what a de-duplicating partner keeps
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                action = receiver.actions.pop(0) if receiver.actions else "ok"
                delivery = self.headers["X-Delivery-Id"]
                receiver.posts.append({"delivery": delivery, "body": body, "action": action,
                                       "signature": self.headers["X-Signature"],
                                       "type": self.headers["Content-Type"]})
                if action in ("hang", "slow"):
                    time.sleep(receiver.hang_seconds)
                ok = action in ("ok", "slow")
                if ok and verify(SECRET.encode(), body, self.headers["X-Signature"]):
                    receiver.leads.setdefault(delivery, json.loads(body)["leads"][0])
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.serve(Handler, "/leads")


@pytest.fixture
def receiver():
    made = []

    def make(*actions, hang_seconds=3.0):
        made.append(Receiver(actions, hang_seconds))
        return made[-1]
    yield make
    for r in made:
        r.close()


@pytest.fixture
def config(config):
    return {**config, "JOBS_SYNC": False, "LEAD_PUSH_TIMEOUT": 1.0, "LEAD_PUSH_BACKOFF": 1}


def with_webhook(url, secret=SECRET, **changes):
    return campaign_body(institution={"id": "bank-a", "name": "Bank A", "support": "cs@bank-a.example",
                                      "webhook": {"url": url, "secret": secret}}, **changes)


@pytest.fixture
def offered(api):
    def offer(url):
        api("PUT", f"/api/v1/subscribers/{M}",
            {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}}, status=200)
        api("POST", "/api/v1/campaigns", with_webhook(url), status=201)
        api("POST", "/api/v1/campaigns/kta-nov/offers", {}, status=200)
    return offer


@pytest.fixture
def consented(offered, phone):
    def consent(url):
        offered(url)
        phone.msisdn = M
        phone.sms(f"YA {NIK}")
    return consent


def deliveries(api):
    return api("GET", "/api/v1/leads/deliveries?institution=bank-a", status=200)["deliveries"]


def test_a_consented_lead_is_pushed_once_signed(consented, receiver, services, api):
    partner = receiver("ok")
    consented(partner.url)
    job = services.jobs.partners.fetch_job(consents.push_job_id(CID))  # the partners queue
    assert job is not None and job.retries_left == len(consents.push_retry(services.config))
    jobs.work(services, burst=True)
    post, = partner.posts
    assert verify(SECRET.encode(), post["body"], post["signature"])
    assert post["type"] == "application/json" and post["delivery"] == push.delivery_id(CID)
    pulled_shape = {"msisdn", "credit_score", "nik", "campaign", "consented_at", "consent_id"}
    body = json.loads(post["body"])
    assert set(body) == {"leads", "next_cursor"} and set(body["leads"][0]) == pulled_shape
    assert body["leads"][0]["nik"] == NIK and body["leads"][0]["consent_id"] == CID
    # received, as the pull API would have marked it: a later STOP withdraws nothing
    assert consents.opt_out(services, M, "sms", "m-stop", "STOP") == (0, 0)
    shown, = deliveries(api)
    assert (shown["state"], [a["status"] for a in shown["attempts"]]) == ("delivered", [200])
    assert push.deliver(services, "kta-nov", M, CID) == "delivered"  # a late duplicate job
    assert len(partner.posts) == 1


def test_retries_after_a_500_and_a_timeout_through_rq(consented, receiver, services, api, processes):
    partner = receiver("500", "hang", "ok", hang_seconds=2.5)
    consented(partner.url)
    processes.worker(LEAD_PUSH_TIMEOUT="1", LEAD_PUSH_BACKOFF="1")
    assert wait_for(lambda: partner.leads, 40)
    # The partner has the lead; the worker records its answer just after (a loaded host: later).
    assert wait_for(lambda: deliveries(api)[0]["state"] == "delivered", 20)
    shown, = deliveries(api)
    assert [(a["status"], a["error"]) for a in shown["attempts"]] == [
        (500, None), (None, "timeout"), (200, None)]
    assert shown["state"] == "delivered"
    assert [p["delivery"] for p in partner.posts] == [push.delivery_id(CID)] * 3
    assert all(verify(SECRET.encode(), p["body"], p["signature"]) for p in partner.posts)


def test_a_lead_withdrawn_before_delivery_is_never_sent(consented, receiver, services, api, phone):
    partner = receiver("ok")
    consented(partner.url)
    phone.sms("STOP")  # before any worker ran the push
    jobs.work(services, burst=True)
    assert partner.posts == []
    assert deliveries(api)[0]["state"] == "withheld"


def test_a_fresh_consent_after_stop_and_mulai_is_pushed(consented, receiver, services, api, phone):
    partner = receiver("ok")
    consented(partner.url)
    phone.sms("STOP")  # the first consent is withdrawn before any worker ran its push
    phone.sms("MULAI")
    phone.sms(f"YA KTA {NIK}")  # consenting again: a new consent, a new id
    fresh = consents.consent_id(M, "kta-nov", after=CID)
    assert services.jobs.partners.fetch_job(consents.push_job_id(fresh)) is not None
    jobs.work(services, burst=True)
    post, = partner.posts  # the fresh consent, and never the withdrawn one
    assert post["delivery"] == push.delivery_id(fresh)
    assert json.loads(post["body"])["leads"][0]["consent_id"] == fresh
    states = {d["consent_id"]: d["state"] for d in deliveries(api)}
    assert states == {CID: "withheld", fresh: "delivered"}


def test_no_second_delivery_after_a_worker_is_killed_mid_delivery(consented, receiver, services, api,
                                                                  processes, clock):
    partner = receiver("slow", hang_seconds=2)
    consented(partner.url)
    worker = processes.worker(LEAD_PUSH_TIMEOUT="3")
    assert wait_for(lambda: partner.posts, 30)
    processes.stop(worker, signal.SIGKILL)  # while the partner is still answering
    assert wait_for(lambda: partner.leads, 10)  # it did take the lead
    assert deliveries(api)[0]["state"] == "pending"  # but we never heard: the attempt died with us
    clock.now += 120  # housekeeping, later, once the dead worker's lock has lapsed
    assert wait_for(lambda: push.recover(services) == 1, 20)
    jobs.work(services, burst=True)
    assert len(partner.posts) == 2 and list(partner.leads) == [push.delivery_id(CID)]
    assert deliveries(api)[0]["state"] == "delivered"
    assert push.recover(services) == 0
    services.jobs.enqueue(consents.PUSH_JOB, "kta-nov", M, CID, job_id=consents.push_job_id(CID))
    jobs.work(services, burst=True)
    assert len(partner.posts) == 2  # recorded 2xx: never sent again


def test_only_campaigns_with_a_webhook_push(api, services, phone):
    api("PUT", f"/api/v1/subscribers/{M}",
        {"credit_score": 720, "attributes": {"region": "JKT", "tenure_months": 30}}, status=200)
    api("POST", "/api/v1/campaigns", campaign_body(), status=201)
    api("POST", "/api/v1/campaigns/kta-nov/offers", {}, status=200)
    phone.msisdn = M
    phone.sms(f"YA {NIK}")
    assert services.jobs.queue.fetch_job(consents.push_job_id(CID)) is None


def test_the_secret_is_kept_encrypted_and_never_shown(api, services):
    api("POST", "/api/v1/campaigns", with_webhook("https://bank-a.example/leads"), status=201)
    shown = api("GET", "/api/v1/campaigns/kta-nov", status=200)
    assert shown["institution"]["webhook"] == {"url": "https://bank-a.example/leads"}
    assert SECRET not in json.dumps(api("GET", "/api/v1/campaigns", status=200))
    stored = [services.raw.dump(k) or b"" for k in services.raw.keys("*")]
    assert not any(SECRET.encode() in v for v in stored)


@pytest.mark.parametrize("webhook, field", [
    ({"url": "ftp://bank-a.example/leads", "secret": SECRET}, "url"),
    ({"url": "https://user:pw@bank-a.example/leads", "secret": SECRET}, "url"),
    ({"url": "https:///leads", "secret": SECRET}, "url"),
    ({"url": "https://bank-a.example/leads", "secret": "short"}, "secret"),
    ({"url": "https://bank-a.example/leads"}, "webhook"),
    ("https://bank-a.example/leads", "webhook"),
])
def test_a_bad_webhook_is_400_naming_the_field(api, client, webhook, field):
    body = campaign_body(institution={"id": "bank-a", "name": "Bank A", "webhook": webhook})
    resp = client.post("/api/v1/campaigns", json=body)
    assert resp.status_code == 400 and field in resp.get_json()["error"]


class TestProduction:
    @pytest.fixture
    def config(self, config):
        return {**config, "USSD_APP_ENV": "production", "ADMIN_TOKEN": "a", "GATEWAY_TOKEN": "g",
                "ALLOW_VOLATILE_REDIS": True,  # the test server keeps nothing: it is a test
                "ALLOW_SIMULATED_PROVIDERS": True,
                "PII_KEY": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="}

    def test_a_webhook_must_be_https(self, client):
        resp = client.post("/api/v1/campaigns", json=with_webhook("http://bank-a.example/leads"),
                           headers={"Authorization": "Bearer a"})
        assert resp.status_code == 400 and "https URL" in resp.get_json()["error"]


class TestSlowPartners:
    """A partner's webhook answering one header line every 2 s (issue 19.8), with
    the Procfile's workers for real: the push is cut at LEAD_PUSH_TIMEOUT, and a
    subscriber's SMS meanwhile goes out at once (its own queue and worker)."""

    @pytest.fixture
    def sms_stub(self):
        sent = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                sent.append(time.monotonic())
                body = json.dumps({"SMSMessageData": {"Recipients": [{"messageId": f"m{len(sent)}"}]}}).encode()
                self.send_response(201)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        stub = Loopback()
        stub.serve(Handler, "/sms")
        yield stub.url, sent
        stub.close()

    @pytest.fixture
    def config(self, config, sms_stub):
        return {**config, "SMS_PROVIDER": "africastalking", "AFRICASTALKING_URL": sms_stub[0]}

    def test_a_trickling_webhook_holds_up_no_sms_and_is_cut_at_its_timeout(
            self, consented, services, api, processes, phone, sms_stub):
        import shlex
        from pathlib import Path



        url, sent = sms_stub
        partner = Trickle(interval=2, lines=60)  # two minutes of answer, a line every 2 s
        try:
            consented(partner.url)
            env = {"SMS_PROVIDER": "africastalking", "AFRICASTALKING_URL": url, "LEAD_PUSH_TIMEOUT": "5"}
            procfile = dict(line.split(":", 1) for line in
                            (Path(__file__).parent.parent / "Procfile").read_text().splitlines() if ":" in line)
            for name in ("worker", "partners"):
                processes.start(*shlex.split(procfile[name]), **env)
            assert wait_for(lambda: partner.calls, 20), "the lead push never started"
            time.sleep(1)  # the push is in flight, the partner trickling
            before = len(sent)
            asked = time.monotonic()
            phone.msisdn = M
            phone.sms("POIN")  # a subscriber's SMS, answered by SMS through the provider
            assert wait_for(lambda: len(sent) > before, 10), "the SMS waited for the partner"
            assert sent[-1] - asked < 2, f"the SMS took {sent[-1] - asked:.1f} s"
            shown = wait_for(lambda: [d for d in deliveries(api) if d["attempts"]], 15)
            attempt = shown[0]["attempts"][0]
            assert attempt["error"] == "timeout" and attempt["ms"] < 6000, attempt
        finally:
            partner.close()
