"""What Redis durability costs a redemption: redemptions/s and latency with
no append-only file, with ``appendfsync everysec`` and with ``appendfsync always``.

    python bench/durability.py [--seconds 5] [--rounds 3] [--threads 1,16] [--dir DIR]

For each policy a real redis-server is started with its files in ``--dir``
(a temporary directory on the disk by default: fsync on tmpfs costs nothing),
and ``--threads`` threads of this process each redeem as fast as they can
through ``redemptions.redeem`` (the hold of stock, the debit script and the
fulfilment job's enqueue: three round trips, each a write), every redemption
its own idempotency key. Policies alternate within each round; the table
shows medians over the rounds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import start_redis  # noqa: E402  (run as a script: the package is on ROOT)

POLICIES = {
    "no AOF (save \"\")": ["--appendonly", "no"],
    "AOF everysec": ["--appendonly", "yes", "--appendfsync", "everysec"],
    "AOF always": ["--appendonly", "yes", "--appendfsync", "always"],
}


def measure(url: str, threads: int, seconds: float) -> dict:
    from ussd_app import create_app
    from ussd_app.core import subscribers
    from ussd_app.loyalty import points, redemptions, rewards

    services = create_app({"REDIS_URL": url, "USSD_APP_ENV": "bench"}).extensions["ussd"]
    r, now = services.r, time.time()
    reward = rewards.put(r, rewards.validate("BENCHDUR", {
        "name": "Pulsa bench", "category": "pulsa", "points": 10, "fulfilment": "airtime"}))
    callers = [f"+62816{i:07d}" for i in range(threads)]
    for m in callers:
        subscribers.put(r, m, {})
        points.earn(r, m, 10**9, "bench", "durability", now + 86400, now)
    latencies: list[list[float]] = [[] for _ in callers]
    failures: list[str] = []
    stop = time.monotonic() + seconds

    def redeem(i: int) -> None:
        mine = latencies[i]
        try:
            while time.monotonic() < stop:
                started = time.perf_counter()
                # a confirmation's terms, each under its own id (the idempotency key)
                out = redemptions.redeem(services, callers[i], reward,
                                         redemptions.new_quote(reward, 1), "bench")
                mine.append(time.perf_counter() - started)
                if out.status != "ok":
                    raise RuntimeError(f"redeem answered {out}")
        except Exception as e:  # reported by measure(), not lost in a thread
            failures.append(f"{type(e).__name__}: {e}")

    workers = [threading.Thread(target=redeem, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if failures:
        raise SystemExit(f"the benchmark's redemptions failed: {failures[0]}")
    every = sorted(x for mine in latencies for x in mine)
    return {"per_s": len(every) / seconds, "p50": every[len(every) // 2] * 1000,
            "p99": every[int(len(every) * 0.99)] * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,16")
    ap.add_argument("--dir", default=None, help="where redis-server keeps its files (default: a temp dir)")
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    rows: dict[tuple[str, int], list[dict]] = {}
    for round_ in range(args.rounds):
        for name, flags in POLICIES.items():
            with tempfile.TemporaryDirectory(dir=args.dir) as where:
                proc, url = start_redis(where, *flags)
                try:
                    for n in counts:
                        rows.setdefault((name, n), []).append(measure(url, n, args.seconds))
                finally:
                    proc.terminate()
                    proc.wait()
    print(f"redemptions through redemptions.redeem, medians of {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'redis':22}{'threads':>8}{'redemptions/s':>15}{'p50 ms':>9}{'p99 ms':>9}")
    for (name, n), runs in rows.items():
        med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        print(f"{name:22}{n:8}{med['per_s']:15,.0f}{med['p50']:9.2f}{med['p99']:9.2f}")


if __name__ == "__main__":
    main()
