import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

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
