"""Instructions per hop, counted by valgrind (callgrind): steady where wall
time is not (a shared machine), and the same on every run.

    python bench/hop_cost.py [--hops 300]

Each peer handles the check-points journey in-process through its WSGI app
against a real redis-server, twice (N and 2N sessions) under callgrind; the
difference divided by the extra hops is the cost of one hop in the app's
process (Flask, our code, redis-py; not the server, not Redis itself).
"""
from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOPS = ["", "1", "1*0", "1*0*1", "1*0*1*00", "1*0*1*00*1"]
PEERS = {"ussd-app": "ussd_app.wsgi:app", "floor (Flask+redis-py)": "bench.apps:floor",
         "ceiling (Flask END ok)": "bench.apps:ceiling"}


def environ(session: str, text: str) -> dict:
    body = (f"sessionId={session}&serviceCode=%2A700%23&phoneNumber=%2B628130000001"
            f"&text={text.replace('*', '%2A')}").encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/ussd", "SERVER_NAME": "bench",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded"}


def play(target: str, sessions: int) -> None:
    """Run ``sessions`` check-points journeys through the WSGI app ``target``."""
    module, name = target.split(":")
    app = getattr(__import__(module, fromlist=[name]), name)
    for _ in range(sessions):
        sid = uuid.uuid4().hex
        for text in HOPS:
            b"".join(app(environ(sid, text), lambda *a: None))


def count(target: str, sessions: int, env: dict) -> int:
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, __file__, "--play", target, str(sessions)],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hops", type=int, default=300)
    ap.add_argument("--play", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.play:
        play(args.play[0], 20)  # warm: imports, connections, scripts
        return play(args.play[0], int(args.play[1]))
    sys.path.insert(0, str(ROOT))
    from bench.run import seed, start_redis

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        try:
            seed(url)
            env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
            n = max(1, args.hops // len(HOPS))
            rows = {name: (count(t, 2 * n, env) - count(t, n, env)) / (n * len(HOPS))
                    for name, t in PEERS.items()}
        finally:
            proc.terminate()
    floor = rows["floor (Flask+redis-py)"]
    print(f"check-points journey, instructions per hop in the app process ({n * len(HOPS)} hops)")
    for name, cost in rows.items():
        print(f"{name:26}{cost:12,.0f}{floor / cost:8.2f} x floor's hops per instruction")


if __name__ == "__main__":
    main()
