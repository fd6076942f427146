"""Instructions per hop, counted by valgrind (callgrind): steady where wall
time is not (a shared machine), to about 1% between runs.

    python bench/hop_cost.py [--hops 300] [--journey check|redeem|consent] [--dialect hubtel[,...]] [--cluster]
    python bench/hop_cost.py --profile [--journey ...] [--peers NAME]
    python bench/hop_cost.py --cpu [--journey ...] [--against DIR]

Each peer handles the journey (bench/journeys.py) in-process through its WSGI app
against a real redis-server, twice (N and 2N sessions) under callgrind; the
difference divided by the extra hops is the cost of one hop in the app's
process (Flask, our code, redis-py; not the server, not Redis itself).
``--profile`` plays the journey under cProfile instead (no valgrind) and
prints where a hop's time goes, by file and by function (its own time, per
hop): a guide to what to count with callgrind, not a measure.
``--cpu`` measures the app's CPU per hop in-process instead (user and system
time: the round trips' system calls, which callgrind does not count, included),
the best of 3 runs of 250 sessions, each peer on freshly seeded data, alternated
3 times; ``--against DIR`` adds the code in another checkout (the code before).
With --cluster, a row more: ussd-app against a 3-primary Redis Cluster (its job
queue on the single server, as JOBS_REDIS_URL has it in production).
"""
from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# --cpu --against plays the other checkout's code: it comes first on the path.
sys.path.insert(0, os.environ.get("BENCH_CODE", str(ROOT)))
from bench.journeys import JOURNEYS, MSISDN, SID, hops, msisdn  # noqa: E402  (run as a script: the package is on ROOT)

WARM = 20  # sessions played before the counted ones
PEERS = {"ussd-app": "ussd_app.wsgi:app", "ussd-app, METRICS=0": "ussd_app.wsgi:app",
         "floor (Flask+redis-py)": "bench.apps:floor", "floor, like-for-like": "bench.apps:floor_like",
         "ceiling (Flask END ok)": "bench.apps:ceiling"}
PEER_ENV = {"ussd-app, METRICS=0": {"METRICS": "0"}}  # the hop without its metrics
CLUSTER = "ussd-app (cluster)"  # with --cluster: on a 3-primary Redis Cluster


def environ(session: str, caller: str, hop: tuple[str, str, str]) -> dict:
    path, content_type, template = hop
    form = content_type == "application/x-www-form-urlencoded"
    body = template.replace(SID, session).replace(MSISDN, caller.replace("+", "%2B") if form else caller)
    body = body.encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "bench",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": content_type}


def play(target: str, journey: str, first: int, sessions: int, dialect: str = "africastalking") -> None:
    """Run ``sessions`` journeys through the WSGI app ``target``, each for its
    own bench subscriber from the ``first``, as ``dialect``'s gateway sends them."""
    module, name = target.split(":")
    app = getattr(__import__(module, fromlist=[name]), name)
    requests = hops(journey, dialect)
    for i in range(first, first + sessions):
        sid = uuid.uuid4().hex
        for hop in requests:
            b"".join(app(environ(sid, msisdn(i), hop), lambda *a: None))


def count(target: str, journey: str, first: int, sessions: int, env: dict) -> int:
    target, _, dialect = target.partition("@")
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, __file__, "--play", target, journey, str(first), str(sessions),
                          dialect or "africastalking"],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hops", type=int, default=300)
    ap.add_argument("--journey", default="check", choices=list(JOURNEYS))
    ap.add_argument("--dialect", default="",
                    help="gateway dialects (comma separated) to count ours through, beside Africa's Talking")
    ap.add_argument("--peers", default="", help="only the peers whose name holds this (e.g. ussd-app)")
    ap.add_argument("--cluster", action="store_true",
                    help="ussd-app on a 3-primary Redis Cluster too (jobs on the single server)")
    ap.add_argument("--profile", action="store_true", help="where a hop's time goes (cProfile, in-process)")
    ap.add_argument("--cpu", action="store_true", help="app CPU per hop in-process (system calls included)")
    ap.add_argument("--against", default="", help="with --cpu: a checkout of the code before, as a row")
    ap.add_argument("--play", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--play-cpu", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.profile:
        return profile(args)
    if args.play_cpu:
        target, journey, sessions = args.play_cpu
        return play_cpu(target, journey, int(sessions))
    if args.cpu:
        return cpu(args)
    if args.play:
        target, journey, first, sessions, dialect = args.play
        # What a process counted is written once at the end of each run, not
        # each second: under valgrind a second holds a few dozen hops, where a
        # serving worker's holds a thousand, so a once-a-second write would
        # weigh on each hop by how slow the run was (and how loaded the host).
        from ussd_app.core import ticker
        ticker.stop()
        play(target, journey, int(first), WARM, dialect)  # imports, connections, scripts
        play(target, journey, int(first) + WARM, int(sessions), dialect)
        return ticker.write_all()
    peers = dict(PEERS)
    for dialect in filter(None, args.dialect.split(",")):
        peers = {"ussd-app": PEERS["ussd-app"], f"ussd-app ({dialect})": f"{PEERS['ussd-app']}@{dialect}",
                 **{k: v for k, v in peers.items() if k != "ussd-app"}}
    if args.cluster:
        peers = {"ussd-app": PEERS["ussd-app"], CLUSTER: PEERS["ussd-app"],
                 **{k: v for k, v in peers.items() if k != "ussd-app"}}
    from bench.redis_cluster import LocalCluster
    from bench.run import seed, start_redis

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        cluster = LocalCluster(Path(tmp) / "cluster") if args.cluster else None
        try:
            seed(url)
            env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
            if cluster:
                cluster.start()
                seed(cluster.url)
                PEER_ENV[CLUSTER] = {"REDIS_URL": cluster.url, "JOBS_REDIS_URL": url}
            per_session = len(JOURNEYS[args.journey])
            n = max(1, args.hops // per_session)
            # Every session is a new subscriber's (a consent takes the offer).
            firsts = iter(range(0, len(peers) * 2 * (WARM + 2 * n), WARM + 2 * n))
            rows = {name: (count(t, args.journey, next(firsts), 2 * n, {**env, **PEER_ENV.get(name, {})})
                           - count(t, args.journey, next(firsts), n, {**env, **PEER_ENV.get(name, {})}))
                    / (n * per_session) for name, t in peers.items() if args.peers in name}
        finally:
            if cluster:
                cluster.stop()
            proc.terminate()
    floor, like = rows.get("floor (Flask+redis-py)"), rows.get("floor, like-for-like")
    print(f"{args.journey} journey, instructions per hop in the app process ({n * per_session} hops)")
    for name, cost in rows.items():
        print(f"{name:26}{cost:12,.0f}" + (f"{floor / cost:8.2f} x floor's hops per instruction" if floor else "")
              + (f"{like / cost:8.2f} x like-for-like's" if like else ""))
    if "ussd-app" in rows and "ussd-app, METRICS=0" in rows:
        ours, bare = rows["ussd-app"], rows["ussd-app, METRICS=0"]
        print(f"metrics cost {ours - bare:,.0f} instructions per hop ({(ours - bare) / bare:.1%})")


def play_cpu(target: str, journey: str, sessions: int) -> None:
    """Print this process's CPU per hop: the best of 3 runs of ``sessions`` journeys."""
    import time

    play(target, journey, 0, WARM)
    runs = []
    for n in range(3):
        start = time.process_time()
        play(target, journey, WARM + n * sessions, sessions)
        runs.append((time.process_time() - start) / (sessions * len(JOURNEYS[journey])) * 1e6)
    print(min(runs))


def cpu(args) -> None:
    """Each peer's app CPU per hop, in-process, alternated 3 times on fresh data."""
    from bench.run import seed, start_redis

    peers = {name: (PEERS[name], ROOT) for name in PEERS if args.peers in name}
    if args.against:
        peers = {"ussd-app": peers.pop("ussd-app", (PEERS["ussd-app"], ROOT)),
                 f"ussd-app @{Path(args.against).name}": (PEERS["ussd-app"], Path(args.against).resolve()),
                 **peers}
    rows = {name: [] for name in peers}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        try:
            for _ in range(3):
                for name, (target, root) in peers.items():
                    seed(url)
                    env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "ERROR", "BENCH_CODE": str(root),
                           "CONSENT_ATTEMPTS_PER_HOUR": "1000000", **PEER_ENV.get(name, {})}
                    out = subprocess.run([sys.executable, __file__, "--play-cpu", target, args.journey, "250"],
                                         env=env, cwd=root, capture_output=True, text=True, check=True).stdout
                    rows[name].append(float(out.split()[-1]))
        finally:
            proc.terminate()
    print(f"{args.journey} journey, app CPU per hop in-process (us; best of 3 runs, each of 3 alternations)")
    for name, runs in rows.items():
        print(f"{name:26}{statistics.median(runs):9.1f}   ({' '.join(f'{r:.0f}' for r in runs)})")


def profile(args) -> None:
    """One peer's journey played in this process under cProfile: own time
    per hop by file, then the busiest functions."""
    import collections
    import cProfile
    import pstats

    from bench.run import seed, start_redis

    name = next((n for n in PEERS if args.peers in n), "ussd-app")
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        try:
            os.environ.update({"REDIS_URL": url, "LOG_LEVEL": "WARNING", **PEER_ENV.get(name, {})})
            seed(url)
            n = max(1, args.hops // len(JOURNEYS[args.journey]))
            play(PEERS[name], args.journey, 0, WARM)
            profiler = cProfile.Profile()
            profiler.runcall(play, PEERS[name], args.journey, WARM, n)
        finally:
            proc.terminate()
    stats, hops = pstats.Stats(profiler).stats, n * len(JOURNEYS[args.journey])
    by_file, calls = collections.Counter(), collections.Counter()
    for (path, _, func), (_, ncalls, own, _, _) in stats.items():
        where = (path.split("site-packages/")[-1].split("/")[0] if "site-packages/" in path
                 else os.path.relpath(path, ROOT) if path.startswith(str(ROOT)) else f"{path}:{func}")
        by_file[where] += own
        calls[where] += ncalls
    print(f"{name}, {args.journey} journey, {hops} hops under cProfile "
          f"({sum(calls.values()) / hops:.0f} calls a hop; socket waits included)")
    for where, own in by_file.most_common(25):
        print(f"{own / hops * 1e6:9.1f} us/hop {calls[where] / hops:7.1f} calls/hop  {where}")


if __name__ == "__main__":
    main()
