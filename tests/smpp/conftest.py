"""Fixtures of the SMPP tests against a real SMSC (Jasmin, see jasmin.py).
Every test here carries the ``smpp`` marker; all skip, saying why, where
Jasmin or RabbitMQ is not installed (``bash .ci/jasmin`` installs both)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from smsc import Jasmin, missing
from faultstack import BIN, Process, RedisServer, free_port, wait_for
from procfile import command


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.smpp)


@pytest.fixture(scope="session")
def jasmin(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(why)
    j = Jasmin(tmp_path_factory.mktemp("jasmin"))
    try:
        j.start()
    except BaseException:
        print(j.tail())
        j.stop()
        raise
    yield j
    j.stop()


class Service:
    """Redis (AOF), and the Procfile's web, worker and smpp, bound to Jasmin."""

    def __init__(self, tmp: Path, jasmin: Jasmin, **env):
        self.tmp, self.jasmin = tmp, jasmin
        tmp.mkdir(exist_ok=True)
        self.redis = RedisServer(tmp)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PORT": str(self.port), "REDIS_URL": self.redis.url, "SMS_PROVIDER": "smpp",
                    "SMPP_URL": jasmin.url, "OFFER_SEND_WINDOW": "always", "LOG_LEVEL": "INFO",
                    **{k: str(v) for k, v in env.items()}}
        (tmp / "metrics").mkdir(exist_ok=True)
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics")  # this service's counts only
        for name in ("ADMIN_TOKEN", "GATEWAY_TOKEN", "METRICS_TOKEN", "USSD_APP_ENV", "PII_KEY"):
            self.env.pop(name, None)
        self.web = Process("web", command("web", self.port), self.env, tmp)
        self.worker = Process("worker", command("worker"), self.env, tmp)
        self.smpp = Process("smpp", command("smpp"), self.env, tmp)
        self.http = requests.Session()

    def start(self) -> None:
        self.redis.start()
        for p in (self.web, self.worker, self.smpp):
            p.start()
        wait_for(lambda: self.http.get(self.base + "/healthz", timeout=1).ok, 30, "the web server answering")
        self.wait_bound()

    def stop(self) -> None:
        for p in (self.smpp, self.worker, self.web, self.redis):
            p.stop()
        self.http.close()

    def wait_bound(self, seconds: float = 30) -> None:
        wait_for(lambda: self.http.get(self.base + "/readyz", timeout=2).json().get("smpp") == "bound",
                 seconds, "/readyz saying smpp: bound")

    def api(self, method: str, path: str, body=None, ok=(200, 201)) -> dict:
        resp = self.http.request(method, self.base + path, json=body, timeout=20)
        assert resp.status_code in ok, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
        return resp.json()

    def records(self, msisdn: str) -> list[dict]:
        return self.api("GET", f"/api/v1/outbox?to={requests.utils.quote(msisdn)}")["remote"]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(20)}" for p in (self.smpp, self.worker, self.web))


@pytest.fixture
def make_service(tmp_path, jasmin):
    """Start a :class:`Service` with settings of the test's own (stopped when it ends)."""
    started = []

    def make(**env) -> Service:
        s = Service(tmp_path / f"service{len(started)}", jasmin, **env)
        started.append(s)
        s.start()
        return s
    yield make
    for s in started:
        print(s.logs())
        s.stop()


@pytest.fixture
def service(make_service):
    return make_service()
