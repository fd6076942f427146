import shutil
import socket
import subprocess
import time

import pytest
import redis

from phones import Phone
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
