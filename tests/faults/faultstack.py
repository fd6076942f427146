"""The fault-test harness: the real processes as the Procfile runs them, a stub
fulfilment provider, a stream of redemptions and consents, and the promises
checked after each fault.

Every process here runs on loopback, in a temporary directory, and is killed
(its whole process group) when the test ends, whatever happened.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import requests
from cryptography.fernet import Fernet

from procfile import command

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's console scripts: granian, ussd-app
NIK = "3171014506900001"
REWARD = "FAULTPULSA"
OFFER_CODE = "FLT"
FULFILMENT_TIMEOUT = 1.0  # seconds the worker waits for the stub provider


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, seconds: float, what: str, every: float = 0.05):
    """``check()``'s first true value within ``seconds``, else fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
        except Exception:  # noqa: BLE001  (a server still starting answers with anything)
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(every)


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc): not a zombie,
    a child killed and not yet reaped (a killed web worker stayed one for a
    moment in CI and was counted as running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not re.fullmatch("[0-9]+", entry.name):
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


class Process:
    """A command run in its own process group, its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, logdir: Path):
        self.name, self.argv, self.env = name, argv, env
        self.log = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        out.write(f"--- start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """kill -9 the process and everything it started (its group)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.kill9()
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.kill9()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RedisServer(Process):
    """redis-server with an append-only file in ``dir``; restarted on the same file."""

    def __init__(self, dir: Path, fsync: str = "everysec"):
        self.port = free_port()
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        super().__init__("redis", [exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--dir", str(dir), "--save", "", "--appendonly", "yes",
                                   "--appendfsync", fsync], os.environ.copy(), dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        super().start()
        wait_for(self.client.ping, 20, "redis-server answering PING (AOF loaded)")

    def shutdown(self) -> None:
        """SHUTDOWN: Redis writes and syncs its AOF, closes every client, exits."""
        try:
            self.client.shutdown()
        except redis.ConnectionError:
            pass
        self.proc.wait(20)


# -- the stub fulfilment provider ---------------------------------------------------
@dataclass
class Call:
    reference: str
    started: float
    ended: float | None = None
    status: int | None = None
    late: bool = False  # answered after the caller's timeout, on purpose
    interrupted: bool = False  # in flight (or just answered) when the caller was killed


@dataclass
class Provider:
    """A fulfilment provider on loopback: answers by ``mode`` and keeps every
    call per reference (the JSON body's ``reference``; extra fields are fine).

    ``ok`` answers at once; ``slow`` after ``delay`` (within the caller's
    timeout); ``timeout`` after the caller gave up (then it has delivered:
    the caller cannot know); ``fail`` answers 422, a definite refusal.
    """
    mode: str = "ok"
    delay: float = 0.3
    calls: dict[str, list[Call]] = field(default_factory=dict)

    def __post_init__(self):
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                provider.handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/provision"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = json.loads(req.rfile.read(int(req.headers.get("Content-Length") or 0)) or b"{}")
        reference = str(body.get("reference") or req.headers.get("Idempotency-Key") or "")
        call = Call(reference, time.monotonic())
        with self.lock:
            self.calls.setdefault(reference, []).append(call)
            mode = self.mode
        status, answer = 200, {"confirmation": "C-" + reference[:10], "status": "done"}
        if mode == "slow":
            time.sleep(self.delay)
        elif mode == "timeout":
            call.late = True
            time.sleep(FULFILMENT_TIMEOUT + 0.5)
        elif mode == "fail":
            status, answer = 422, {"status": "failed", "error": "rejected by the stub"}
        data = json.dumps(answer).encode()
        try:
            req.send_response(status)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data)
        except OSError:
            call.late = True  # the caller had gone
        call.status, call.ended = status, time.monotonic()

    def interrupt(self, grace: float = 1.0) -> None:
        """The caller was killed now: calls in flight, or answered within
        ``grace`` seconds, may never have been recorded by it."""
        now = time.monotonic()
        with self.lock:
            for calls in self.calls.values():
                for c in calls:
                    if c.ended is None or now - c.ended < grace:
                        c.interrupted = True

    def delivered(self) -> set[str]:
        """References the provider answered 2xx (whether or not the caller heard it)."""
        with self.lock:
            return {ref for ref, calls in self.calls.items()
                    if any(c.status and c.status < 300 for c in calls)}

    def called_after_confirming(self) -> dict[str, int]:
        """References called again after a 2xx answer the caller surely received."""
        out = {}
        with self.lock:
            for ref, calls in self.calls.items():
                heard = [c.ended for c in calls if c.status and c.status < 300 and not c.late
                         and not c.interrupted and c.ended is not None]
                if heard and any(c.started > min(heard) for c in calls):
                    out[ref] = len(calls)
        return out

    def in_flight(self) -> int:
        with self.lock:
            return sum(1 for calls in self.calls.values() for c in calls if c.ended is None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the service as the Procfile runs it ---------------------------------------------
class Stack:
    """redis-server (AOF), the web command and the worker of the Procfile, the stub provider."""

    def __init__(self, tmp: Path, fsync: str = "everysec"):
        self.tmp = tmp
        self.redis = RedisServer(tmp, fsync)
        self.provider = Provider()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.gateway_token, self.admin_token = "gw-" + uuid.uuid4().hex, "adm-" + uuid.uuid4().hex
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PORT": str(self.port), "REDIS_URL": self.redis.url, "USSD_APP_ENV": "production",
                    "GATEWAY_TOKEN": self.gateway_token, "ADMIN_TOKEN": self.admin_token,
                    "PII_KEY": Fernet.generate_key().decode(), "SMS_PROVIDER": "console",
                    "FULFILMENT_URL": self.provider.url, "FULFILMENT_TIMEOUT": str(FULFILMENT_TIMEOUT),
                    "OFFER_SEND_WINDOW": "always", "LOG_LEVEL": "WARNING",
                    "ALLOW_SIMULATED_PROVIDERS": "1"}  # SMS to the console: a test
        self.web = Process("web", command("web", self.port), self.env, tmp)
        self.worker = Process("worker", command("worker"), self.env, tmp)
        # fulfilment and lead push: the partners queue's worker of its own
        self.partners = Process("partners", command("partners"), self.env, tmp)
        self.http = requests.Session()

    def start(self) -> None:
        self.redis.start()
        self.web.start()
        self.worker.start()
        self.partners.start()
        self.wait_web()
        self.api("PUT", f"/api/v1/rewards/{REWARD}", {
            "name": "Pulsa Uji 5rb", "category": "pulsa", "points": 10, "fulfilment": "airtime"})
        self.api("POST", "/api/v1/campaigns", campaign())

    def stop(self) -> None:
        for p in (self.worker, self.partners, self.web, self.redis):
            p.stop()
        self.provider.close()
        self.http.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (last lines)\n{p.tail()}" for p in (self.web, self.worker, self.partners, self.redis))

    # -- talking to it
    def api(self, method: str, path: str, body=None, ok=(200, 201), http=None) -> dict:
        """The integration API's JSON answer (``http``: the calling thread's session)."""
        resp = (http or self.http).request(method, self.base + path, json=body, timeout=20,
                                           headers={"Authorization": f"Bearer {self.admin_token}"})
        assert resp.status_code in ok, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
        return resp.json()

    def answering(self) -> bool:
        try:
            return requests.get(self.base + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_web(self, seconds: float = 30) -> float:
        """Seconds until the web server answers /healthz (fails after ``seconds``)."""
        started = time.monotonic()
        wait_for(self.answering, seconds, "the web server answering /healthz")
        return time.monotonic() - started

    def ready(self) -> bool:
        try:
            return requests.get(self.base + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, seconds: float = 15) -> None:
        """Until /readyz answers 200: the web server reaches Redis again."""
        wait_for(self.ready, seconds, "the web server ready (/readyz) again")

    def web_workers(self) -> list[int]:
        """The web server's worker processes (the master's children)."""
        return children(self.web.proc.pid)

    def kill_web_worker(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def wait_for_web_workers(self, n: int, seconds: float) -> list[int]:
        return wait_for(lambda: len(self.web_workers()) == n and self.web_workers(), seconds,
                        f"{n} web workers running")

    def restart_worker(self) -> None:
        """As a supervisor does once the worker died."""
        for p in (self.worker, self.partners):
            p.stop()
            p.start()

    def recover(self) -> str:
        """``ussd-app redemptions recover --older-than 0``, as cron runs it."""
        out = subprocess.run(["ussd-app", "redemptions", "recover", "--older-than", "0"],
                             env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.strip()

    def enrol(self, msisdn: str, offered: bool, http: requests.Session) -> None:
        """A new subscriber with 1,000 points (holding the test campaign's offer)."""
        self.api("PUT", f"/api/v1/subscribers/{msisdn}",
                 {"credit_score": 700, "attributes": {"region": "JKT", "tenure_months": 24}}, http=http)
        self.api("POST", f"/api/v1/subscribers/{msisdn}/points",
                 {"points": 1000, "source": "fault-test", "reference": "seed"}, http=http)
        if offered:
            self.api("POST", "/api/v1/campaigns/flt/offers", {"msisdns": [msisdn]}, http=http)


def campaign() -> dict:
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    return {"id": "flt", "institution": {"id": "bank-f", "name": "Bank F", "support": "halo@bank-f.example"},
            "product": "Kredit Uji", "sender_id": "KreditSmart", "code": OFFER_CODE,
            "message": {"id": "Bank F menawarkan Kredit Uji.", "en": "Bank F offers a test loan."},
            "consent_text": {"id": "Jika setuju, data Anda dikirim ke Bank F.",
                             "en": "If you agree, your data goes to Bank F."},
            "consent_version": "1", "valid_from": iso(now - 86400), "valid_until": iso(now + 86400 * 30),
            "eligibility": {"credit_score": {"min": 600}}}


# -- the traffic ---------------------------------------------------------------------
USSD_REDEEM = ["", "2", "2*1", "2*1*1", "2*1*1*1", "2*1*1*1*1"]
USSD_CONSENT = ["", "3", "3*1", "3*1*1", "3*1*1*1", f"3*1*1*1*{NIK}"]


@dataclass
class Attempt:
    kind: str  # ussd-redeem, sms-redeem, ussd-consent, sms-consent
    msisdn: str
    confirmed: bool = False
    error: str | None = None
    at: float = 0.0


class Traffic:
    """Threads that each enrol a fresh subscriber, then redeem or consent once,
    by USSD (the Africa's Talking form, cumulative ``text``) or by SMS, until
    stopped. A subscriber is used once, so its ledger and consent log hold
    that one attempt only. Enrolling is part of the stream: an attempt whose
    enrolment failed (the fault hit it) is left out."""

    KINDS = ("ussd-redeem", "sms-redeem", "ussd-redeem", "ussd-consent", "sms-consent")

    def __init__(self, stack: Stack, threads: int = 4):
        self.stack = stack
        self.lock = threading.Lock()
        self.attempts: list[Attempt] = []
        self.unenrolled = 0
        self.numbers = iter(range(10**7))
        self.prefix = f"+62815{uuid.uuid4().int % 10:01d}"
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(60)

    def fresh(self) -> str:
        with self.lock:
            return f"{self.prefix}{next(self.numbers):07d}"

    def loop(self, i: int) -> None:
        http = requests.Session()
        n = i
        while not self.stopping.is_set():
            kind = self.KINDS[n % len(self.KINDS)]
            n += 1
            msisdn = self.fresh()
            try:
                self.stack.enrol(msisdn, kind.endswith("consent"), http)
            except (requests.RequestException, AssertionError):
                with self.lock:
                    self.unenrolled += 1
                continue
            attempt = Attempt(kind, msisdn, at=time.monotonic())
            try:
                attempt.confirmed = getattr(self, kind.replace("-", "_"))(http, msisdn)
            except (requests.RequestException, AssertionError) as e:
                attempt.error = f"{type(e).__name__}: {e}"[:200]
            with self.lock:
                self.attempts.append(attempt)

    # each returns whether the subscriber was told it went through
    def _ussd(self, http, msisdn: str, texts: list[str], said: str) -> bool:
        session = uuid.uuid4().hex
        for text in texts:
            resp = http.post(self.stack.base + "/ussd", timeout=20,
                             headers={"X-Gateway-Token": self.stack.gateway_token},
                             data={"sessionId": session, "serviceCode": "*700#",
                                   "phoneNumber": msisdn, "text": text})
            body = resp.text
            if resp.status_code != 200 or body.startswith("END "):
                return resp.status_code == 200 and text == texts[-1] and said in body
        return False

    def _sms(self, http, msisdn: str, text: str) -> str:
        """Send ``text``; every SMS the console provider kept for the subscriber,
        one a line ('' if the send failed). The subscriber is fresh, so a reply
        is found by its words wherever it is: the worker may already have added
        the fulfilment's SMS after it."""
        resp = http.post(self.stack.base + "/sms/inbound", timeout=20,
                         headers={"X-Gateway-Token": self.stack.gateway_token},
                         data={"from": msisdn, "to": "62168", "text": text, "id": uuid.uuid4().hex})
        if resp.status_code != 200:
            return ""
        out = http.get(self.stack.base + "/api/v1/outbox", params={"to": msisdn}, timeout=20,
                       headers={"Authorization": f"Bearer {self.stack.admin_token}"})
        messages = out.json().get("messages", []) if out.status_code == 200 else []
        return "\n".join(m["text"] for m in messages)

    def ussd_redeem(self, http, msisdn: str) -> bool:
        return self._ussd(http, msisdn, USSD_REDEEM, "diproses")

    def ussd_consent(self, http, msisdn: str) -> bool:
        return self._ussd(http, msisdn, USSD_CONSENT, "Terima kasih")

    def sms_redeem(self, http, msisdn: str) -> bool:
        if "YA" not in self._sms(http, msisdn, f"TUKAR {REWARD}"):
            return False
        return "diproses" in self._sms(http, msisdn, "YA")

    def sms_consent(self, http, msisdn: str) -> bool:
        return "NIK Anda dikirim ke" in self._sms(http, msisdn, f"YA {OFFER_CODE} {NIK}")  # sms.consent_ok


# -- the promises ---------------------------------------------------------------------
class Promises:
    """What every fault must leave true, read back through the integration API."""

    def __init__(self, stack: Stack, traffic: Traffic):
        self.stack, self.traffic = stack, traffic
        self.refunds: set[str] = set()  # redemption ids with a refund in their ledger

    def settle(self, seconds: float = 180) -> None:
        """Run the recovery, as cron would, until no redemption is pending (a
        worker killed mid-fulfilment holds its lease, 2 x FULFILMENT_TIMEOUT
        + 60 s, before the recovery may take it over: ~62 s of the killed
        worker test's ~74 here, so 180 s leaves a slower machine room)."""
        deadline = time.monotonic() + seconds
        touched = [a.msisdn for a in self.traffic.attempts if "redeem" in a.kind]
        while True:
            wait_for(lambda: self.stack.provider.in_flight() == 0, 10, "provider calls finishing")
            self.stack.recover()
            time.sleep(1.0)
            stuck = [m for m in touched if any(r["status"] == "pending" for r in self.redemptions(m))]
            if not stuck or time.monotonic() > deadline:
                break
        assert not stuck, f"{len(stuck)} redemptions still pending after recovery, e.g. {stuck[:3]}\n{self.stack.logs()}"

    def redemptions(self, msisdn: str) -> list[dict]:
        return self.stack.api("GET", f"/api/v1/subscribers/{msisdn}/redemptions")["redemptions"]

    def check(self, min_confirmed: int = 10) -> dict:
        """Every promise, for every subscriber the traffic used; returns counts."""
        stack, attempts = self.stack, self.traffic.attempts
        confirmed = [a for a in attempts if a.confirmed]
        assert len([a for a in confirmed if "redeem" in a.kind]) >= min_confirmed, (
            f"too few redemptions confirmed to judge: {summary(attempts)}\n{stack.logs()}")
        refs_done = set()
        for a in attempts:
            if "redeem" in a.kind:
                ledger = stack.api("GET", f"/api/v1/subscribers/{a.msisdn}/ledger")["entries"]
                balance = stack.api("GET", f"/api/v1/subscribers/{a.msisdn}/points")["balance"]
                redeems = [e for e in ledger if e["type"] == "redeem"]
                self.refunds |= {e.get("redemption") for e in ledger if e["type"] == "refund"}
                if a.confirmed:
                    assert len(redeems) == 1, f"{a}: confirmed, {len(redeems)} redeem entries: {ledger}"
                else:
                    assert len(redeems) <= 1, f"{a}: {len(redeems)} redeem entries: {ledger}"
                assert balance == sum(e["points"] for e in ledger), f"{a}: balance {balance} != ledger {ledger}"
                recs = self.redemptions(a.msisdn)
                assert not [r for r in recs if r["status"] == "pending"], f"{a}: pending {recs}"
                refs_done |= {r["id"] for r in recs if r["status"] == "done"}
            elif a.confirmed:
                log = stack.api("GET", f"/api/v1/subscribers/{a.msisdn}/consents")["entries"]
                given = [e for e in log if e.get("type") == "consent"]
                assert len(given) == 1, f"{a}: confirmed, {len(given)} consents in the log: {log}"
        again = stack.provider.called_after_confirming()
        assert not again, (f"provider called again after confirming: {dict(list(again.items())[:5])}\n"
                           f"{stack.logs()}")
        leads, cursor = [], None
        while True:
            page = stack.api("GET", "/api/v1/leads?institution=bank-f&limit=1000"
                             + (f"&cursor={cursor}" if cursor else ""))
            leads += page["leads"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        per = {}
        for lead in leads:
            per[lead["msisdn"]] = per.get(lead["msisdn"], 0) + 1
        for a in confirmed:
            if "consent" in a.kind:
                assert per.get(a.msisdn) == 1, f"{a}: {per.get(a.msisdn, 0)} leads"
        return {"attempts": len(attempts), "confirmed": len(confirmed), "done": len(refs_done),
                "refunded": len(self.refunds)}

    def refunded(self) -> set[str]:
        """Redemption ids refunded (read by :meth:`check`)."""
        return self.refunds


def summary(attempts: list[Attempt]) -> str:
    kinds = {}
    for a in attempts:
        k = kinds.setdefault(a.kind, [0, 0, 0])
        k[0] += 1
        k[1] += a.confirmed
        k[2] += a.error is not None
    errors = [a.error for a in attempts if a.error][:3]
    return ", ".join(f"{k}: {n} tried, {c} confirmed, {e} errors" for k, (n, c, e) in kinds.items()) + (
        f"; e.g. {errors}" if errors else "")
