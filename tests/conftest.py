import shutil
import socket
import subprocess
import time
import uuid

import pytest
import redis

from ussd_app import create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A free loopback port, for a server a test starts."""
    return _free_port()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port, for the whole run."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield url
    client.close()
    proc.terminate()
    proc.wait(5)


class Clock:
    """A settable clock (epoch seconds)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config(redis_url):
    return {"REDIS_URL": redis_url, "JOBS_SYNC": True, "ADMIN_TOKEN": None, "GATEWAY_TOKEN": None,
            "SMS_PROVIDER": "console", "USSD_APP_ENV": "test",
            # Offers go out at once: a test's outcome must not depend on the hour it runs
            # (tests of the sending window set their own, with a fixed clock).
            "OFFER_SEND_WINDOW": "always"}


@pytest.fixture
def app(config, redis_url):
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    app = create_app(config)
    yield app
    r.flushdb()
    r.close()
    # The app's connections are closed now: left to the garbage collector (the
    # services hold a cycle), a socket may be finalized before the connection
    # that would close it (a ResourceWarning, an error here).
    app.extensions["ussd"].r.close()
    app.extensions["ussd"].raw.close()


@pytest.fixture
def services(app):
    return app.extensions["ussd"]


@pytest.fixture
def clock(services):
    c = Clock(time.time())
    services.clock = c
    return c


@pytest.fixture
def client(app):
    return app.test_client()


class Phone:
    """A subscriber's phone: dials, types, reads screens and SMS."""

    def __init__(self, client, msisdn="081234567890", code="*700#"):
        self.client, self.msisdn, self.code = client, msisdn, code
        self.session = None
        self.text = ""
        self.screen = ""
        self.end = False

    def dial(self, text: str = "", session: str | None = None) -> str:
        self.session = session or uuid.uuid4().hex
        self.text = text
        return self._send()

    def type(self, *inputs) -> str:
        for typed in inputs:
            self.text = str(typed) if self.text == "" else f"{self.text}*{typed}"
            self._send()
        return self.screen

    def resend(self) -> str:
        """The gateway posts the last hop again."""
        return self._send()

    def _send(self) -> str:
        resp = self.client.post("/ussd", data={"sessionId": self.session, "serviceCode": self.code,
                                               "phoneNumber": self.msisdn, "text": self.text})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_data(as_text=True)
        assert body[:4] in ("CON ", "END "), body
        self.end = body.startswith("END ")
        self.screen = body[4:]
        return self.screen

    def sms(self, text: str, message_id: str | None = None) -> None:
        resp = self.client.post("/sms/inbound", data={"from": self.msisdn, "to": "62168", "text": text,
                                                      "id": message_id or uuid.uuid4().hex})
        assert resp.status_code == 200

    def inbox(self) -> list[str]:
        data = self.client.get(f"/api/v1/outbox?to={self.msisdn}").get_json()
        return [m["text"] for m in data["messages"]]


@pytest.fixture
def phone(client):
    return Phone(client)


@pytest.fixture
def api(client):
    def call(method, path, body=None, status=None):
        resp = client.open(path, method=method, json=body)
        if status is not None:
            assert resp.status_code == status, resp.get_data(as_text=True)
        return resp.get_json()
    return call
