"""Instructions per hop, counted by valgrind (callgrind): steady where wall
time is not (a shared machine), to about 1% between runs.

    python bench/hop_cost.py [--hops 300] [--journey check|redeem|consent] [--cluster]

Each peer handles the journey (bench/journeys.py) in-process through its WSGI app
against a real redis-server, twice (N and 2N sessions) under callgrind; the
difference divided by the extra hops is the cost of one hop in the app's
process (Flask, our code, redis-py; not the server, not Redis itself).
With --cluster, ussd-app alone against a 3-primary Redis Cluster.
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
sys.path.insert(0, str(ROOT))
from bench.journeys import JOURNEYS, msisdn  # noqa: E402  (run as a script: the package is on ROOT)

WARM = 20  # sessions played before the counted ones
PEERS = {"ussd-app": "ussd_app.wsgi:app", "floor (Flask+redis-py)": "bench.apps:floor",
         "ceiling (Flask END ok)": "bench.apps:ceiling"}


def environ(session: str, caller: str, text: str) -> dict:
    body = (f"sessionId={session}&serviceCode=%2A700%23&phoneNumber={caller.replace('+', '%2B')}"
            f"&text={text.replace('*', '%2A')}").encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/ussd", "SERVER_NAME": "bench",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded"}


def play(target: str, journey: str, first: int, sessions: int) -> None:
    """Run ``sessions`` journeys through the WSGI app ``target``, each for its
    own bench subscriber from the ``first``."""
    module, name = target.split(":")
    app = getattr(__import__(module, fromlist=[name]), name)
    for i in range(first, first + sessions):
        sid = uuid.uuid4().hex
        for text in JOURNEYS[journey]:
            b"".join(app(environ(sid, msisdn(i), text), lambda *a: None))


def count(target: str, journey: str, first: int, sessions: int, env: dict) -> int:
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, __file__, "--play", target, journey, str(first), str(sessions)],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hops", type=int, default=300)
    ap.add_argument("--journey", default="check", choices=list(JOURNEYS))
    ap.add_argument("--cluster", action="store_true",
                    help="ussd-app alone, on a 3-primary Redis Cluster (jobs on a single server)")
    ap.add_argument("--play", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.play:
        target, journey, first, sessions = args.play[0], args.play[1], int(args.play[2]), int(args.play[3])
        play(target, journey, first, WARM)  # imports, connections, scripts
        return play(target, journey, first + WARM, sessions)
    from bench.redis_cluster import LocalCluster
    from bench.run import seed, start_redis

    peers = {"ussd-app (cluster)": PEERS["ussd-app"]} if args.cluster else PEERS
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        cluster = LocalCluster(Path(tmp) / "cluster") if args.cluster else None
        try:
            if cluster:
                cluster.start()
                os.environ["JOBS_REDIS_URL"] = url  # the job queue on the single server
                url = cluster.url
            seed(url)
            env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
            hops = len(JOURNEYS[args.journey])
            n = max(1, args.hops // hops)
            # Every session is a new subscriber's (a consent takes the offer).
            firsts = iter(range(0, len(peers) * 2 * (WARM + 2 * n), WARM + 2 * n))
            rows = {name: (count(t, args.journey, next(firsts), 2 * n, env)
                           - count(t, args.journey, next(firsts), n, env)) / (n * hops)
                    for name, t in peers.items()}
        finally:
            if cluster:
                cluster.stop()
            proc.terminate()
    floor = rows.get("floor (Flask+redis-py)")
    print(f"{args.journey} journey, instructions per hop in the app process ({n * hops} hops)")
    for name, cost in rows.items():
        print(f"{name:26}{cost:12,.0f}" + (f"{floor / cost:8.2f} x floor's hops per instruction"
                                           if floor else ""))


if __name__ == "__main__":
    main()
