import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ussd_app.core import logs


def test_hop_log_masks_the_msisdn(phone, caplog):
    with caplog.at_level(logging.INFO, logger="ussd_app.hops"):
        phone.dial()
        phone.type(1)
        phone.sms("POIN")
    lines = [r.getMessage() for r in caplog.records if r.name == "ussd_app.hops"]
    assert len(lines) == 3
    assert '"msisdn": "+62812*****890"' in lines[1]
    assert '"before": "main", "after": "points"' in lines[1]
    assert all("81234567890" not in line for line in lines)


def test_every_log_line_masks_numbers_whoever_wrote_it():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.RedactingFormatter("%(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning('"GET /api/v1/outbox?to=%s HTTP/1.1" 200', "%2B6281234567890")
        try:
            raise ValueError("bad NIK 3171014506900001 for 081234567890")
        except ValueError:
            logger.exception("job failed at %d", 1763884800)
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "%2B628*******890" in text and "************0001" in text and "081234***890" in text
    assert "81234567890" not in text and "3171014506900001" not in text
    assert "1763884800" in text  # not every long number is a phone


def test_the_dev_servers_access_log_is_masked(free_port):
    """``ussd-app run``'s server logs each request line, query string and all."""
    port = free_port
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ussd-app"), "run", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/outbox?to=%2B6281234567890"
        for _ in range(100):
            try:
                assert requests.get(url, timeout=2).status_code == 200
                break
            except requests.ConnectionError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    requests_logged = [line for line in output.splitlines() if "/api/v1/outbox" in line]
    assert requests_logged and all("%2B628*******890" in line for line in requests_logged), output


class Lines:
    """The lines a JsonFormatter writes for the loggers under ``ussd_app``, parsed."""

    def __init__(self):
        self.out = io.StringIO()
        self.handler = logging.StreamHandler(self.out)
        self.handler.setFormatter(logs.JsonFormatter())
        self.logger = logging.getLogger("ussd_app")

    def __enter__(self):
        self.logger.addHandler(self.handler)
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)

    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


def hop(client, text, request_id=None, session="s-log"):
    headers = {"X-Request-Id": request_id} if request_id else {}
    return client.post("/ussd", headers=headers, data={
        "sessionId": session, "serviceCode": "*700#", "phoneNumber": "081234567890", "text": text})


def test_each_line_is_one_json_object_with_the_request_id(client):
    with Lines() as lines:
        resp = hop(client, "", request_id="gw-abc.123")
        logging.getLogger("ussd_app.test").warning("plain text about 081234567890")
    assert resp.headers["X-Request-Id"] == "gw-abc.123"
    hop_line, plain = lines.parsed()
    assert hop_line["request_id"] == "gw-abc.123" and hop_line["event"] == "ussd_hop"
    assert hop_line["msisdn"] == "+62812*****890" and hop_line["level"] == "INFO"
    assert plain["msg"] == "plain text about 081234***890" and "request_id" not in plain


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "nik=3171014506900001;",
                                   "nik-3171014506900001", "req.081234567890", "\uff11\uff12"])
def test_a_missing_or_odd_request_id_is_replaced(client, given):
    with Lines() as lines:
        resp = hop(client, "", request_id=given)
    made = resp.headers["X-Request-Id"]
    assert made and made != given and lines.parsed()[0]["request_id"] == made
    assert hop(client, "", session="s-other").headers["X-Request-Id"] != made


class TestJobsCarryTheRequestId:
    @pytest.fixture
    def config(self, config):
        return {**config, "JOBS_SYNC": False}  # the job waits for a worker

    def test_the_job_logs_the_id_of_the_hop_that_enqueued_it(self, services, client):
        import rq

        from ussd_app import demo
        demo.seed(services)
        for text in ("", "2", "2*5", "2*5*1", "2*5*1*1"):
            hop(client, text, session="s-redeem")
        assert "diproses" in hop(client, "2*5*1*1*1", request_id="hop-redeem-1",
                                 session="s-redeem").get_data(as_text=True)
        job, = services.jobs.partners.get_jobs()  # fulfilment: the partners queue
        assert job.meta["request_id"] == "hop-redeem-1"
        with Lines() as lines:
            rq.SimpleWorker([services.jobs.partners], connection=services.jobs.connection,
                            job_class=services.jobs.job_class).work(burst=True)
        ran = [line for line in lines.parsed() if line.get("event") == "job"]
        assert [(line["func"], line["outcome"], line["request_id"], line["job_id"]) for line in ran] == [
            ("ussd_app.loyalty.fulfilment.fulfil", "ok", "hop-redeem-1", job.id)]
