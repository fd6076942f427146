import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Metrics of this run in a directory of its own, chosen before ussd_app (and
# prometheus_client) is imported: never counts of another run on this host.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ussd-metrics-test-")
atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], True)

import pytest  # noqa: E402
import redis  # noqa: E402

from phones import Phone  # noqa: E402
from ussd_app import create_app  # noqa: E402
from ussd_app.core import store  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A free loopback port, for a server a test starts."""
    return _free_port()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
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


@pytest.fixture(scope="session")
def redis_url(redis_server):
    """The service's REDIS_URL: this single server (tests/cluster: a Redis Cluster)."""
    return redis_server


def flush(url: str) -> None:
    """Empty the Redis at ``url`` (a cluster: every primary)."""
    r = store.connect(url)
    r.flushdb()
    r.close()


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
def app(config):
    urls = {config["REDIS_URL"], config.get("JOBS_REDIS_URL") or config["REDIS_URL"]}
    for url in urls:
        flush(url)
    app = create_app(config)
    yield app
    app.extensions["ussd"].funnel.close()
    for url in urls:
        flush(url)
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
def demo_data(services, clock):
    """The demo catalog, subscribers and offers, on the test's clock."""
    from ussd_app import demo
    demo.seed(services)
    return services


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


class Processes:
    """Real ``ussd-app`` processes (the worker, a web server) a test starts,
    each in a session of its own; all stopped when the test ends."""

    def __init__(self, redis_url: str):
        self.env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
                    "OFFER_SEND_WINDOW": "always", "SMS_PROVIDER": "console"}
        for name in ("ADMIN_TOKEN", "GATEWAY_TOKEN", "METRICS_TOKEN", "USSD_APP_ENV"):
            self.env.pop(name, None)
        self.started: list[subprocess.Popen] = []

    def start(self, *argv: str, **env) -> subprocess.Popen:
        exe = str(Path(sys.executable).parent / argv[0])
        proc = subprocess.Popen([exe, *argv[1:]], env={**self.env, **env}, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.started.append(proc)
        return proc

    def worker(self, *args: str, **env) -> subprocess.Popen:
        return self.start("ussd-app", "worker", *args, **env)

    @staticmethod
    def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
        """Signal the process and whatever it started (rq's scheduler is a child)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None or _group_alive(proc.pid):
                self.stop(proc)
            if proc.stderr:
                proc.stderr.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@pytest.fixture
def processes(redis_url):
    procs = Processes(redis_url)
    yield procs
    procs.stop_all()


