"""Production is what was tested, with real processes started as the Procfile
starts them: no simulated provider unless allowed, no slow client holding a
web worker, metrics counting one deployment."""
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from procfile import command
from waiting import wait_for

PII_KEY = "LxtcgdmYBx1Q94gEvbSQOdPxTAbk0wA6TKiHyfieRa4="


def production(**more) -> dict:
    return {"USSD_APP_ENV": "production", "GATEWAY_TOKEN": "gw", "ADMIN_TOKEN": "adm", "PII_KEY": PII_KEY,
            "ALLOW_VOLATILE_REDIS": "1", **more}


def status(url: str, **kw):
    try:
        return requests.get(url, timeout=2, **kw).status_code
    except requests.ConnectionError:
        return None


def exits(proc: subprocess.Popen, seconds: float = 30) -> tuple[int | None, str]:
    try:
        code = proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None, ""
    return code, proc.stderr.read().decode()


# -- 20.1: no simulated provider in production -----------------------------------------------
REFUSED = "USSD_APP_ENV=production refuses simulated providers"


@pytest.mark.parametrize("process", ["web", "worker"])
def test_production_refuses_to_start_with_simulated_providers(processes, free_port, process):
    proc = processes.start(*command(process, free_port), **production(SMS_PROVIDER="console"))
    code, err = exits(proc)
    assert code not in (None, 0), f"{process} kept running (or exited 0) with simulated providers"
    lines = [line for line in err.splitlines() if REFUSED in line]
    assert len(lines) == 1, err[-2000:]
    assert "SMS_PROVIDER=console" in lines[0] and "FULFILMENT_URL unset" in lines[0]
    assert "ALLOW_SIMULATED_PROVIDERS=1" in lines[0]
    assert "Traceback" not in err


def test_production_names_only_what_is_simulated(processes, free_port):
    proc = processes.worker(**production(SMS_PROVIDER="africastalking", AFRICASTALKING_API_KEY="k"))
    code, err = exits(proc)
    assert code not in (None, 0)
    assert "FULFILMENT_URL unset" in err and "SMS_PROVIDER=console" not in err


def test_a_staging_run_is_allowed_and_readyz_says_so(processes, free_port):
    env = production(ALLOW_SIMULATED_PROVIDERS="1")
    web = processes.start(*command("web", free_port), **env)
    worker = processes.worker(**env)
    base = f"http://127.0.0.1:{free_port}"
    assert wait_for(lambda: status(base + "/healthz") == 200, 30), exits(web, 0)
    ready = requests.get(base + "/readyz", timeout=5).json()
    assert ready["simulated"] == ["SMS_PROVIDER=console", "FULFILMENT_URL unset"]
    time.sleep(1)
    assert worker.poll() is None, exits(worker, 0)


# -- 19.7: no slow client holds a web worker ---------------------------------------------------
def slow_body(port: int, token: str = "gw") -> socket.socket:
    """A hop's headers with the gateway token, then 10 bytes of a 4,000-byte body."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall((f"POST /ussd HTTP/1.1\r\nHost: x\r\nX-Gateway-Token: {token}\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n"
               "sessionId=").encode())
    return s


def hop(base: str) -> float:
    started = time.perf_counter()
    resp = requests.post(base + "/ussd", timeout=10, headers={"X-Gateway-Token": "gw"},
                         data={"sessionId": uuid.uuid4().hex, "serviceCode": "*700#",
                               "phoneNumber": "081234567890", "text": ""})
    assert resp.status_code == 200 and resp.text.startswith("CON "), resp.text
    return time.perf_counter() - started


def test_eight_slow_bodies_hold_no_web_worker(processes, free_port):
    processes.start(*command("web", free_port), GATEWAY_TOKEN="gw", HTTP_BODY_TIMEOUT="3")
    base = f"http://127.0.0.1:{free_port}"
    assert wait_for(lambda: status(base + "/healthz") == 200, 30)
    time.sleep(2)  # both workers up (the first answers while the second may still load)
    for _ in range(4):  # each worker's first hops (caches) before the clock runs
        hop(base)
    slow = [slow_body(free_port) for _ in range(8)]
    try:
        time.sleep(0.5)
        took = [hop(base) for _ in range(10)]
        assert max(took) < 1, took
        # each slow client is answered 408 once HTTP_BODY_TIMEOUT has passed, and let go
        for s in slow:
            s.settimeout(10)
            assert s.recv(100).startswith(b"HTTP/1.1 408"), "no 408 for a body never finished"
    finally:
        for s in slow:
            s.close()


def test_a_body_over_the_limit_is_refused_before_it_is_read(processes, free_port):
    processes.start(*command("web", free_port), GATEWAY_TOKEN="gw")
    base = f"http://127.0.0.1:{free_port}"
    assert wait_for(lambda: status(base + "/healthz") == 200, 30)
    with socket.create_connection(("127.0.0.1", free_port)) as s:
        s.sendall(b"POST /api/v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{")
        s.settimeout(10)
        assert s.recv(100).startswith(b"HTTP/1.1 413")


# -- 20.6: metrics count one deployment ----------------------------------------------------------
@pytest.fixture
def second_redis(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    with redis.Redis.from_url(url) as r:
        assert wait_for(lambda: _pings(r), 10)
    yield url
    proc.terminate()
    proc.wait(10)


def _pings(r) -> bool:
    try:
        return r.ping()
    except redis.ConnectionError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hops_counted(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("ussd_hops_total{"))


def test_two_deployments_on_one_host_count_their_own_hops(processes, redis_url, second_redis, monkeypatch):
    from ussd_app.core import metrics

    processes.env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the default, as a deployment has it
    ports = [_free_port(), _free_port()]
    urls = [redis_url, second_redis]
    dirs = [metrics.deployment_dir({"REDIS_URL": u}, os.getcwd()) for u in urls]
    assert dirs[0] != dirs[1]
    for d in dirs:  # a stale file of a run long gone, as a host keeps them
        os.makedirs(d, exist_ok=True)
        shutil.copy(_stale_counts(), os.path.join(d, "counter_999999999.db"))
    try:
        def start(i):
            return processes.start(*command("web", ports[i]), REDIS_URL=urls[i], GATEWAY_TOKEN="gw")
        servers = [start(0), start(1)]
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base in bases:
            assert wait_for(lambda: status(base + "/healthz") == 200, 30)
        assert [hops_counted(b) for b in bases] == [0, 0]  # the stale run's 50 hops were emptied
        for _ in range(3):
            hop(bases[0])
        hop(bases[1])
        assert wait_for(lambda: [hops_counted(b) for b in bases] == [3, 1], 10), \
            [hops_counted(b) for b in bases]
        # a deployment started again starts from nothing (its dead processes' files emptied)
        processes.stop(servers[0])
        start(0)
        assert wait_for(lambda: status(bases[0] + "/healthz") == 200, 30)
        assert hops_counted(bases[0]) == 0 and hops_counted(bases[1]) == 1
    finally:
        processes.stop_all()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def _stale_counts() -> str:
    """A prometheus_client counter file holding 50 hops (written by a child process)."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).parent / f"stale-{os.getpid()}.db"
    if not path.exists():
        from prometheus_client.mmap_dict import MmapedDict, mmap_key

        values = MmapedDict(str(path))
        values.write_value(mmap_key("ussd_hops", "ussd_hops_total",
                                    ["dialect", "screen", "outcome"], ["africastalking", "main", "con"],
                                    {}), 50.0, 0.0)
        values.close()
    return str(path)
