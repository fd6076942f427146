"""Offer SMS out through SMPP to a real SMSC (Jasmin on loopback) beside the
Africa's Talking HTTP path to a local stub, in one run.

    python bench/smpp.py [--count 100000] [--tps 100000] [--window 10]

Both paths start from the same hand-over: ``services.sms.send_many`` of
``--count`` offers (kind offer, sender ID GeneRate, one number each), timed.
Then the process that sends them runs alone until every message has the
provider's answer:

* SMPP: ``ussd-app smpp`` (SMPP_TPS=--tps, SMPP_WINDOW=--window) submitting
  to Jasmin 0.11.0 (bash .ci/jasmin installs it; RabbitMQ, Jasmin's Redis and
  jasmind are started as tests/smpp does); done when the queue and the
  in-flight list are empty.
* HTTP: ``ussd-app worker --burst`` running one job per message against a
  stub answering as Africa's Talking does (a threaded HTTP server in this
  process).

It prints messages/s (hand-over, and send from the sending process's start
to the last answer) and the sending process's CPU per message (user+system,
from its rusage once it exited; it includes its start-up, about 1 s of CPU).
Jasmin's own CPU per message is printed beside it (read from /proc).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "smpp"))
os.environ.setdefault("METRICS", "1")

import redis  # noqa: E402

from bench.run import free_port, start_redis  # noqa: E402

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def proc_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its threads so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def hand_over(env: dict, n: int, tag: str) -> float:
    """send_many of ``n`` offers in a child process (its own settings); seconds taken."""
    code = f"""
import time
from ussd_app import create_app
s = create_app().extensions["ussd"]
msgs = [{{"id": "{tag}-%d" % i, "to": "+62811%08d" % i, "from": "GeneRate", "kind": "offer",
          "text": "Bank A menawarkan Kredit Multiguna. Balas YA KTA <NIK> ke 62168."}} for i in range({n})]
t = time.perf_counter()
for i in range(0, len(msgs), 1000):
    s.sms.send_many(msgs[i:i + 1000])
print(time.perf_counter() - t)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def setup(self):
        super().setup()
        # headers and body are two writes: without this, Nagle and the client's
        # delayed ACK hold each answer ~40 ms (a stub slower than any provider)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Stub.lock:
            Stub.count += 1
            n = Stub.count
        body = json.dumps({"SMSMessageData": {"Recipients": [{"messageId": f"ATXid_{n}", "status": "Success"}]}})
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def run_smpp(args, tmp: str, url: str) -> dict:
    from smsc import Jasmin, missing

    why = missing()
    if why:
        raise SystemExit(why)
    jasmin = Jasmin(Path(tmp) / "jasmin")
    jasmin.start()
    try:
        env = {**os.environ, "REDIS_URL": url, "SMS_PROVIDER": "smpp", "SMPP_URL": jasmin.url,
               "SMPP_TPS": str(args.tps), "SMPP_WINDOW": str(args.window), "LOG_LEVEL": "WARNING",
               "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        handed = hand_over(env, args.count, "smpp")
        r = redis.Redis.from_url(url)
        jasmin_before = proc_cpu(jasmin.jasmind.proc.pid)
        cpu_before = children_cpu()
        started = time.perf_counter()
        proc = subprocess.Popen([str(BIN / "ussd-app"), "smpp"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        while r.llen("ussd:{smpp}:queue") or r.llen("ussd:{smpp}:inflight"):
            if proc.poll() is not None:
                raise SystemExit(f"ussd-app smpp stopped: {proc.stderr.read()[-2000:]}")
            time.sleep(0.1)
        took = time.perf_counter() - started
        jasmin_cpu = proc_cpu(jasmin.jasmind.proc.pid) - jasmin_before
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        cpu = children_cpu() - cpu_before
        sent = sum(1 for i in range(0, args.count, max(1, args.count // 200))
                   if b'"sent"' in (r.hget(f"ussd:{{+62811{i:08d}}}:sms_records", f"smpp-{i}") or b""))
        return {"handed": handed, "took": took, "cpu": cpu, "jasmin_cpu": jasmin_cpu,
                "sampled_sent": sent, "sampled": len(range(0, args.count, max(1, args.count // 200)))}
    finally:
        jasmin.stop()


def run_http(args, url: str) -> dict:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "REDIS_URL": url, "SMS_PROVIDER": "africastalking",
               "AFRICASTALKING_URL": f"http://127.0.0.1:{server.server_address[1]}/version1/messaging",
               "LOG_LEVEL": "WARNING", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        handed = hand_over(env, args.count, "http")
        cpu_before = children_cpu()
        started = time.perf_counter()
        subprocess.run([str(BIN / "ussd-app"), "worker", "--burst"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - started
        cpu = children_cpu() - cpu_before
        return {"handed": handed, "took": took, "cpu": cpu, "stub_calls": Stub.count}
    finally:
        server.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--tps", type=int, default=100_000, help="SMPP_TPS (default: no cap in effect)")
    ap.add_argument("--window", type=int, default=10, help="SMPP_WINDOW")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-smpp-") as tmp:
        rproc, url = start_redis(tmp)
        try:
            smpp = run_smpp(args, tmp, url)
            redis.Redis.from_url(url).flushall()
            http = run_http(args, url)
        finally:
            rproc.terminate()
            rproc.wait(10)
    n = args.count
    print(f"{n:,} offer SMS, SMPP_TPS={args.tps} SMPP_WINDOW={args.window}, {os.cpu_count()} CPUs")
    print(f"{'path':<34}{'hand-over msg/s':>16}{'send msg/s':>12}{'CPU/msg':>10}")
    print(f"{'SMPP -> Jasmin (ussd-app smpp)':<34}{n / smpp['handed']:>16,.0f}{n / smpp['took']:>12,.0f}"
          f"{smpp['cpu'] / n * 1e6:>8,.0f}us")
    print(f"{'HTTP -> AT stub (ussd-app worker)':<34}{n / http['handed']:>16,.0f}{n / http['took']:>12,.0f}"
          f"{http['cpu'] / n * 1e6:>8,.0f}us")
    print(f"Jasmin's own CPU: {smpp['jasmin_cpu'] / n * 1e6:,.0f} us/msg; records sampled sent: "
          f"{smpp['sampled_sent']}/{smpp['sampled']}; stub calls: {http['stub_calls']:,}")


if __name__ == "__main__":
    main()
