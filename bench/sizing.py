"""Sizing: measured bytes per subscriber and Redis work per hop, turned into
memory and nodes for 10M and 100M subscribers; the offer sending and the hops
on a 3-primary Redis Cluster beside one server, in the same run.

    python bench/sizing.py [memory] [ops] [hops] [offers] [--offers 100000] [--rounds 10]

memory  K distinct subscribers get 25 months of a busy member's history through
        the service itself (weekly top-ups, a redemption a month, an offer a
        quarter, a consent, the monthly expiry job), then are copied (DUMP and
        RESTORE under new numbers) to N; bytes per subscriber from INFO
        used_memory (and MEMORY USAGE per key kind), before and after
        `archive run` with the 13-month retention: the steady state.
ops     Redis commands, round trips and Redis CPU per hop of each journey
        (bench/journeys.py), on one server and on the cluster.
hops    hops/s of the check-points journey played in-process (one thread, the
        WSGI app, no HTTP server), one server and cluster in alternate rounds,
        with the app's and Redis's CPU per hop (steadier on a shared machine).
offers  `offers.send` to N generated eligible subscribers on each (SMS provider
        africastalking: each batch's SMS one job on the queue, as in production).
Without a step named, all four run, then the model.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.journeys import JOURNEYS, SUBSCRIBERS, msisdn  # noqa: E402
from bench.redis_cluster import LocalCluster  # noqa: E402
from bench.run import start_redis  # noqa: E402

DAY = 86400.0
os.environ.setdefault("LOG_LEVEL", "WARNING")


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def services_on(url: str, jobs_url: str, **extra):
    from ussd_app import create_app

    config = {"REDIS_URL": url, "JOBS_REDIS_URL": jobs_url, "JOBS_SYNC": True,
              "OFFER_SEND_WINDOW": "always", "SMS_PROVIDER": "console",
              "CONSENT_ATTEMPTS_PER_HOUR": 10**6, **extra}
    return create_app(config).extensions["ussd"]


def used_memory(urls: list[str]) -> int:
    return sum(redis.Redis.from_url(u).info("memory")["used_memory"] for u in urls)


def node_urls(cluster: LocalCluster | None, url: str) -> list[str]:
    return [f"redis://127.0.0.1:{p}/0" for p in cluster.primaries()] if cluster else [url]


# -- memory ------------------------------------------------------------------------
PROFILES = {
    # top-ups a month (from, to), a redemption every N months, a consent
    "busy": {"topups": (3, 5), "redeem_every": 1, "consent": True},
    "typical": {"topups": (1, 1), "redeem_every": 6, "consent": False},
    "quiet": {"topups": (0, 1), "redeem_every": 24, "consent": False},
}
MIX = {"busy": 0.1, "typical": 0.5, "quiet": 0.4}  # the model's assumption (docs/benchmark.md)


def live_history(services, m: str, months: int, rng: random.Random, camps, reward,
                 profile: dict) -> None:
    """``months`` of a member: top-ups (each its own bucket and ledger entry),
    redemptions, an offer a quarter, maybe one consent, the monthly expiry job
    (calendar expiry)."""
    from ussd_app.core import subscribers
    from ussd_app.loyalty import points, redemptions
    from ussd_app.offers import consents

    r, clock = services.r, services.clock
    start = clock.now
    subscribers.put(r, m, {"credit_score": rng.randint(550, 850),
                           "attributes": {"region": rng.choice(["JKT", "BDG", "SBY"]),
                                          "tenure_months": rng.randint(12, 120)}})
    for month in range(months):
        base = start + month * 30 * DAY
        for week in range(rng.randint(*profile["topups"])):
            clock.now = base + week * 7 * DAY + rng.random() * DAY
            points.earn(r, m, rng.choice([100, 250, 500, 1000]), "topup", uuid.uuid4().hex[:16],
                        points.default_expiry(clock.now, "calendar", 365), clock.now)
        clock.now = base + 25 * DAY
        if month % profile["redeem_every"] == profile["redeem_every"] - 1:
            redemptions.redeem(services, m, reward, 1, f"{uuid.uuid4().hex}:2*1*1*1*1", "ussd")
        if month % 3 == 0:
            camp = camps[(month // 3) % len(camps)]
            consents.offer(r, m, camp, "x" * 220, clock.now)
            if month == 6 and profile["consent"]:
                proof = consents.Proof("sms", uuid.uuid4().hex, "x" * 220,
                                       services.vault.encrypt("YA 3171014506900001"), "id")
                consents.consent(r, m, camp, services.vault.encrypt("3171014506900001"), 700,
                                 proof, clock.now)
        clock.now = base + 29 * DAY
        points.expire(r, m, clock.now)
    clock.now = start


def copy(src, dst, originals: list[str], copies: list[str]) -> None:
    """Each of ``copies`` gets the keys of one of ``originals`` (DUMP and
    RESTORE under its own number) and a place in the subscriber index."""
    from ussd_app.core import keys

    found: dict[bytes, list[bytes]] = {}
    for key in src.scan_iter(match=b"ussd:{+62819*", count=5000):  # the originals' keys, one pass
        found.setdefault(key.split(b"}", 1)[0][6:], []).append(key)
    dumped = [(m, [(key, src.dump(key), src.pttl(key)) for key in found.get(m.encode(), [])])
              for m in originals]
    for i in range(0, len(copies), 500):
        pipe = dst.pipeline(transaction=False)
        for j, m in enumerate(copies[i:i + 500]):
            original, keyed = dumped[(i + j) % len(dumped)]
            for key, payload, ttl in keyed:
                pipe.restore(key.replace(original.encode(), m.encode()), max(ttl, 0), payload,
                             replace=True)
            pipe.sadd(keys.SUBSCRIBERS, m)
        pipe.execute()


KINDS = ("profile", "buckets", "bucket_points", "ledger", "idem", "redemptions", "offers",
         "consents", "consent_log", "expiry_notices", "seq", "archive", "monthly")


def kind_of(key: str) -> str:
    what = key.split("}:", 1)[1]
    return "monthly" if what.startswith("monthly:") else what


def per_kind(r, msisdns: list[str], prefix: str) -> dict[str, float]:
    """MEMORY USAGE of ``msisdns``' keys (all under ``prefix``), summed by kind, per subscriber."""
    sizes: dict[str, int] = {}
    for key in r.scan_iter(match=f"ussd:{{{prefix}*", count=5000):
        sizes[kind_of(key)] = sizes.get(kind_of(key), 0) + (r.memory_usage(key, samples=0) or 0)
    return {k: v / len(msisdns) for k, v in sizes.items()}


def memory(profile: str, k: int, n: int, months: int, retention_days: int) -> dict:
    from ussd_app import demo, retention
    from ussd_app.core import formats, keys
    from ussd_app.loyalty import rewards
    from ussd_app.offers import campaigns

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        try:
            now = time.time()
            services = services_on(url, url, ARCHIVE_DIR=str(Path(tmp) / "archive"),
                                   RETENTION_DAYS=retention_days)
            services.clock = Clock(now - months * 30 * DAY)
            r = services.r
            reward = rewards.put(r, rewards.validate("VOUCHER5", {
                "name": {"id": "Voucher belanja Rp5.000"}, "category": "voucher", "points": 500,
                "fulfilment": "voucher", "generate_codes": True}))
            camps = []
            for i in range(4):
                body = {**demo.campaign(services.clock.now), "id": f"camp-{i}", "code": f"KT{i}"}
                body["valid_until"] = formats.iso(now + 365 * DAY)
                camps.append(campaigns.validate(body, services.config.OFFER_SENDER_IDS.split(",")))
                campaigns.put(r, camps[-1])
            firsts = [f"+62819{i:07d}" for i in range(k)]
            for m in firsts:
                live_history(services, m, months, rng, camps, reward, PROFILES[profile])
            for key in r.scan_iter(match="ussd:{*}:outbox"):  # the console provider's (dev only)
                r.delete(key)
            for key in r.scan_iter(match="ussd:{*}:sms_seen:*"):
                r.delete(key)
            recent = {time.strftime("%Y-%m", time.gmtime(now - d * DAY)) for d in (0, 31)}
            for key in r.scan_iter(match="ussd:{*}:monthly:*"):  # 40 days' TTL in real time
                if key.rsplit(":", 1)[1] not in recent:
                    r.delete(key)
            services.clock.now = now
            raw = redis.Redis.from_url(url)
            base = used_memory([url])
            others = [f"+62818{i:07d}" for i in range(n)]
            copy(raw, raw, firsts, others)
            full = (used_memory([url]) - base) / n
            kinds_full = per_kind(r, firsts, "+62819")
            ledger_full = statistics.mean(r.llen(keys.ledger(m)) for m in firsts)
            started = time.perf_counter()
            counts = retention.run(services)
            archive_s = time.perf_counter() - started
            after = used_memory([url])
            kept = (after - base) / n  # the K originals are in base; their archive shrinks it a little
            kinds_kept = per_kind(r, firsts, "+62819")
            ledger_kept = statistics.mean(r.llen(keys.ledger(m)) for m in firsts)
            with LocalCluster(Path(tmp) / "cluster", masters=3) as cluster:  # the same, on a cluster
                from redis.cluster import RedisCluster
                nodes = node_urls(cluster, cluster.url)
                target = RedisCluster.from_url(f"redis://127.0.0.1:{cluster.ports[0]}")
                base_c = used_memory(nodes)
                copy(raw, target, firsts, others)
                kept_cluster = (used_memory(nodes) - base_c) / n
            from ussd_app.ussd import sessions  # a session on a confirmation screen, as a hop leaves it
            live = sessions.Session(id=uuid.uuid4().hex, msisdn=firsts[0], state="rewards.confirm",
                                    history=["main", "rewards", "rewards.list", "rewards.detail"],
                                    data={"reward": "VOUCHER5", "qty": 1}, last_text="2*5*1*1",
                                    last_reply="x" * 150, hops=5)
            sessions.save(r, live, 180)
            session = r.memory_usage(keys.session(live.msisdn, live.id), samples=0)
        finally:
            proc.terminate()
    return {"profile": profile, "k": k, "n": n, "months": months, "bytes_full": full, "bytes_kept": kept,
            "bytes_kept_cluster": kept_cluster,
            "kinds_full": kinds_full, "kinds_kept": kinds_kept, "ledger_full": ledger_full,
            "ledger_kept": ledger_kept, "archive_s": archive_s, "archived": counts,
            "session_bytes": session}


# -- ops per hop --------------------------------------------------------------------
def environ(session: str, caller: str, text: str) -> dict:
    body = (f"sessionId={session}&serviceCode=%2A700%23&phoneNumber={caller.replace('+', '%2B')}"
            f"&text={text.replace('*', '%2A')}").encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/ussd", "SERVER_NAME": "bench", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/x-www-form-urlencoded"}


def seed(url: str, jobs: str) -> object:
    """The bench subscribers (bench/seed.py) on ``url``; returns the app."""
    from ussd_app import create_app, demo
    from ussd_app.core import subscribers
    from ussd_app.loyalty import points
    from ussd_app.offers import campaigns, sending

    app = create_app({"REDIS_URL": url, "JOBS_REDIS_URL": jobs, "JOBS_SYNC": False,
                      "OFFER_SEND_WINDOW": "always", "CONSENT_ATTEMPTS_PER_HOUR": 10**6})
    services = app.extensions["ussd"]
    demo.seed(services)
    r, now = services.r, services.clock()
    pipe_size = 500
    numbers = [msisdn(i) for i in range(SUBSCRIBERS)]
    for i in range(0, len(numbers), pipe_size):
        for m in numbers[i:i + pipe_size]:
            subscribers.put(r, m, {"credit_score": 700, "attributes": {"region": "JKT", "tenure_months": 24}})
            points.earn(r, m, 10**8, "topup", "bench", now + 864000, now)
    sending.send(services, campaigns.get(r, "kta-demo"), numbers)
    return app


def play(app, journey: str, first: int, sessions: int) -> int:
    hops = 0
    for i in range(first, first + sessions):
        sid = uuid.uuid4().hex
        for text in JOURNEYS[journey]:
            b"".join(app(environ(sid, msisdn(i), text), lambda *a: None))
            hops += 1
    return hops


class Counter:
    """Round trips: packed writes on any connection (roundtrip, pipelines, plain commands)."""

    def __init__(self):
        self.sends = 0
        self._orig = redis.connection.AbstractConnection.send_packed_command
        counter = self

        def counting(conn, command, check_health=True):
            counter.sends += 1
            return counter._orig(conn, command, check_health)
        redis.connection.AbstractConnection.send_packed_command = counting

    def close(self):
        redis.connection.AbstractConnection.send_packed_command = self._orig


def redis_stats(urls: list[str]) -> tuple[int, float]:
    """(commands so far, CPU seconds so far) summed over ``urls``."""
    calls = cpu = 0
    for u in urls:
        c = redis.Redis.from_url(u)
        calls += sum(v["calls"] for v in c.info("commandstats").values())
        info = c.info("cpu")
        cpu += info["used_cpu_user"] + info["used_cpu_sys"]
    return calls, cpu


def idle_cpu(urls: list[str], seconds: float = 2.0) -> float:
    """CPU seconds per second the servers spend idle (timers, the cluster bus):
    taken out of what a hop costs them."""
    _, before = redis_stats(urls)
    time.sleep(seconds)
    _, after = redis_stats(urls)
    return max(0.0, (after - before - 0.0004 * len(urls)) / seconds)


def measured(app, journey: str, first: int, sessions: int, urls: list[str], idle: float) -> dict:
    """Play ``sessions`` of ``journey``; per hop: Redis commands (a script's own
    calls included), round trips, Redis CPU, this process's CPU; and hops/s."""
    counter = Counter()
    calls, cpu = redis_stats(urls)
    started, mine = time.perf_counter(), time.process_time()
    try:
        hops = play(app, journey, first, sessions)
    finally:
        counter.close()
    elapsed, mine = time.perf_counter() - started, time.process_time() - mine
    calls2, cpu2 = redis_stats(urls)
    return {"commands": (calls2 - calls - 2 * len(urls)) / hops,
            "round_trips": (counter.sends - 4 * len(urls)) / hops,
            "redis_us": max(0.0, cpu2 - cpu - idle * elapsed) / hops * 1e6,
            "app_us": mine / hops * 1e6, "hops_s": hops / elapsed}


def ops(apps: dict, urls: dict, sessions: int, idle: dict) -> dict:
    out = {}
    first = 0
    for journey in JOURNEYS:
        for name, app in apps.items():
            play(app, journey, first, 5)  # warm: scripts, connections, kept copies
            first += 5
            out[(journey, name)] = measured(app, journey, first, sessions, urls[name], idle[name])
            first += sessions
    return out


def hops_per_s(apps: dict, urls: dict, rounds: int, sessions: int, idle: dict) -> dict:
    runs: dict[str, list[dict]] = {name: [] for name in apps}
    first = 3000
    for _ in range(rounds):
        for name, app in apps.items():
            runs[name].append(measured(app, "check", first, sessions, urls[name], idle[name]))
            first += sessions
    return {name: {k: statistics.median(r[k] for r in got) for k in got[0]}
            | {"all": [r["hops_s"] for r in got]} for name, got in runs.items()}


# -- offer sending --------------------------------------------------------------------
def offers(url: str, jobs: str, n: int) -> dict:
    from bench.offers import generate
    from ussd_app import create_app, demo
    from ussd_app.offers import campaigns, sending

    # The production path: the SMS of each batch become one delivery job on the
    # job queue (a worker sends them; none runs here), not the console outbox.
    services = create_app({"REDIS_URL": url, "JOBS_REDIS_URL": jobs, "OFFER_SEND_WINDOW": "always",
                           "SMS_PROVIDER": "africastalking"}).extensions["ussd"]
    r = services.r
    started = time.perf_counter()
    generate(r, n, "17")
    generated = time.perf_counter() - started
    camp = campaigns.validate(demo.campaign(services.clock()), services.config.OFFER_SENDER_IDS.split(","))
    campaigns.put(r, camp)
    started = time.perf_counter()
    result = sending.send(services, camp, batch=1000)
    took = time.perf_counter() - started
    assert result["sent"] == n, result
    return {"seconds": took, "per_s": n / took, "generate_s": generated}


# -- the model -------------------------------------------------------------------------
NODE_GB = 25.0  # maxmemory per primary (a 32 GB VM: headroom for fork, buffers)
FILL = 0.7  # of it used by data (fragmentation, growth, resharding)
OVERHEAD = 1.15  # jemalloc fragmentation over used_memory
PEAK = {10_000_000: 500, 100_000_000: 5000}  # stated peak hops/s
CPU_BUDGET = 0.5  # of a primary's one core for hops at peak


def model(profiles: dict, per_hop: dict) -> list[str]:
    mem = {key: sum(MIX[p] * profiles[p][key] for p in MIX) for key in ("bytes_full", "bytes_kept")}
    mem["months"] = profiles["busy"]["months"]
    rows = ["| subscribers | bytes/sub (13 months) | data GB | primaries by memory (25 GB, 70% full) "
            "| peak hops/s | Redis CPU at peak (cores) | primaries | with 1 replica each | no retention, after 5 years |",
            "|---|---|---|---|---|---|---|---|---|"]
    grow = (mem["bytes_full"] - mem["bytes_kept"]) / ((mem["months"] - 13) / 12)  # bytes/sub/year
    redeem_us = max(v["redis_us"] for (j, name), v in per_hop.items() if name == "cluster")
    for subs in (10_000_000, 100_000_000):
        gb = subs * mem["bytes_kept"] * OVERHEAD / 1e9
        by_memory = math.ceil(gb / (NODE_GB * FILL))
        cores = PEAK[subs] * redeem_us / 1e6
        by_cpu = math.ceil(cores / CPU_BUDGET)
        primaries = max(3, by_memory, by_cpu)
        five = subs * (mem["bytes_kept"] + grow * 4) * OVERHEAD / 1e9
        rows.append(f"| {subs / 1e6:.0f}M | {mem['bytes_kept']:,.0f} | {gb:,.0f} | {by_memory} "
                    f"| {PEAK[subs]:,} | {cores:.2f} | {primaries} | {2 * primaries} nodes "
                    f"| {five:,.0f} GB |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("steps", nargs="*", default=["memory", "ops", "hops", "offers"])
    ap.add_argument("--distinct", type=int, default=40, help="subscribers with a history of their own")
    ap.add_argument("--subscribers", type=int, default=20_000, help="copies measured (memory)")
    ap.add_argument("--months", type=int, default=25)
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--sessions", type=int, default=40, help="sessions per measured round")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--results", help="a JSON file: steps measured before are read from it, "
                                      "the new ones added (the model needs memory and ops)")
    args = ap.parse_args()
    found: dict = {}
    if args.results and Path(args.results).exists():
        found = json.loads(Path(args.results).read_text())
        if "ops" in found:
            found["ops"] = {tuple(k.split("|")): v for k, v in found["ops"].items()}
    if "memory" in args.steps:
        found["memory"] = {}
        for profile in PROFILES:
            mem = found["memory"][profile] = memory(profile, args.distinct, args.subscribers,
                                                    args.months, 396)
            print(f"\n## memory, {profile} member ({PROFILES[profile]}): {mem['k']} histories of "
                  f"{mem['months']} months copied to {mem['n']:,} subscribers")
            print(f"bytes per subscriber: {mem['bytes_full']:,.0f} with every entry, "
                  f"{mem['bytes_kept']:,.0f} after `archive run` (13 months kept; "
                  f"{mem['bytes_kept_cluster']:,.0f} on the cluster); ledger entries "
                  f"{mem['ledger_full']:.0f} -> {mem['ledger_kept']:.0f}; archive run "
                  f"{mem['archive_s']:.1f} s for {mem['archived']}")
            print("| key | bytes, 25 months | bytes, 13 months kept |\n|---|---|---|")
            for kind in sorted(set(mem["kinds_full"]) | set(mem["kinds_kept"]),
                               key=lambda k: -mem["kinds_full"].get(k, 0)):
                print(f"| {kind} | {mem['kinds_full'].get(kind, 0):,.0f} "
                      f"| {mem['kinds_kept'].get(kind, 0):,.0f} |")
        print(f"a live USSD session: ~{mem['session_bytes']} bytes (expires after USSD_SESSION_TTL)")
    if {"ops", "hops", "offers"} & set(args.steps):
        with tempfile.TemporaryDirectory() as tmp:
            proc, single = start_redis(tmp)
            try:
                with LocalCluster(Path(tmp) / "cluster", masters=3) as cluster:
                    urls = {"one server": [single], "cluster": node_urls(cluster, cluster.url)}
                    if {"ops", "hops"} & set(args.steps):
                        apps = {"one server": seed(single, single), "cluster": seed(cluster.url, single)}
                        idle = {name: idle_cpu(u) for name, u in urls.items()}
                        if "ops" in args.steps:
                            per_hop = found["ops"] = ops(apps, urls, args.sessions, idle)
                            print("\n## Redis work per hop (each journey, in-process; commands "
                                  "include a script's own calls)")
                            print("| journey | store | commands/hop | round trips/hop | Redis CPU us/hop "
                                  "| app CPU us/hop |\n|---|---|---|---|---|---|")
                            for (journey, name), v in per_hop.items():
                                print(f"| {journey} | {name} | {v['commands']:.1f} | {v['round_trips']:.1f} "
                                      f"| {v['redis_us']:.0f} | {v['app_us']:.0f} |")
                        if "hops" in args.steps:
                            rates = found["hops"] = hops_per_s(apps, urls, args.rounds, args.sessions, idle)
                            print(f"\n## check-points hops in-process, one thread, {args.rounds} alternate "
                                  f"rounds of {args.sessions} sessions (medians)")
                            print("| store | hops/s | app CPU us/hop | Redis CPU us/hop | rounds, hops/s |")
                            print("|---|---|---|---|---|")
                            for name, v in rates.items():
                                print(f"| {name} | {v['hops_s']:,.0f} | {v['app_us']:.0f} | "
                                      f"{v['redis_us']:.0f} | " + ", ".join(f"{x:,.0f}" for x in v["all"]) + " |")
                        for u in [single, *urls["cluster"]]:
                            redis.Redis.from_url(u).flushall()
                    if "offers" in args.steps:
                        sent = found["offers"] = {
                            "one server": offers(single, single, args.offers),
                            "cluster": offers(cluster.url, single, args.offers)}
                        print(f"\n## offer sending to {args.offers:,} eligible subscribers")
                        for name, v in sent.items():
                            print(f"{name:12} {v['seconds']:7.1f} s  {v['per_s']:8,.0f} offers/s  "
                                  f"(1M extrapolated: {1e6 / v['per_s']:,.0f} s)")
            finally:
                proc.terminate()
    if args.results:
        Path(args.results).write_text(json.dumps(
            {**found, **({"ops": {"|".join(k): v for k, v in found["ops"].items()}} if "ops" in found else {})},
            indent=1))
    if "memory" in found and "ops" in found:
        print("\n## sizing model\n" + "\n".join(model(found["memory"], found["ops"])))


if __name__ == "__main__":
    main()
