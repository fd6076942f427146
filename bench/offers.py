"""Offer sending: 100,000 generated eligible subscribers against a real redis-server.

    python bench/offers.py [--subscribers 100000] [--batch 1000] [--remote]

Prints offers/s for `offers.send` to every subscriber (scan, profile reads,
the once-per-campaign script, the SMS to the console outbox), beside its floor
in the same run: a bare redis-py loop doing the same batches with plain
HMGET, HSETNX and RPUSH (no eligibility, no opt-out check, no script).
With ``--remote`` the SMS go to a remote provider instead: each message is
queued as its own rq job (no worker runs, so none is sent).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.run import start_redis  # noqa: E402


def generate(r: redis.Redis, n: int, prefix: str) -> list[str]:
    msisdns = [f"+628{prefix}{i:08d}" for i in range(n)]
    for i in range(0, n, 5000):
        pipe = r.pipeline(transaction=False)
        for m in msisdns[i:i + 5000]:
            pipe.hset(f"ussd:{{{m}}}:profile", mapping={
                "status": "active", "credit_score": 700,
                "attributes": json.dumps({"region": "JKT", "tenure_months": 24})})
            pipe.sadd("ussd:subscribers", m)
        pipe.execute()
    return msisdns


def floor(r: redis.Redis, msisdns: list[str], batch: int) -> None:
    for i in range(0, len(msisdns), batch):
        chunk = msisdns[i:i + batch]
        pipe = r.pipeline(transaction=False)
        for m in chunk:
            pipe.hmget(f"floor:{{{m}}}:profile", "status", "credit_score", "attributes")
        pipe.execute()
        pipe = r.pipeline(transaction=False)
        for m in chunk:
            pipe.hsetnx(f"floor:{{{m}}}:offers", "c1", "{}")
            pipe.rpush(f"floor:{{{m}}}:outbox", "offer text")
        pipe.execute()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--remote", action="store_true", help="queue one rq job per SMS (Africa's Talking)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        try:
            os.environ.update(REDIS_URL=url, OFFER_SEND_WINDOW="always", LOG_LEVEL="WARNING")
            if args.remote:
                os.environ.update(SMS_PROVIDER="africastalking", AFRICASTALKING_URL="http://127.0.0.1:9/")
            from ussd_app.offers import campaigns, sending as offers
            from ussd_app import create_app, demo

            services = create_app().extensions["ussd"]
            r = services.r
            msisdns = generate(r, args.subscribers, "13")
            camp = campaigns.validate(demo.campaign(services.clock()), services.config.OFFER_SENDER_IDS.split(","))
            campaigns.put(r, camp)
            started = time.perf_counter()
            result = offers.send(services, camp, batch=args.batch)
            ours = time.perf_counter() - started
            assert result["sent"] == args.subscribers, result
            if args.remote:
                assert services.raw.llen("rq:queue:ussd") == args.subscribers
            started = time.perf_counter()
            floor(r, msisdns, args.batch)
            bare = time.perf_counter() - started
            print(f"{args.subscribers} eligible subscribers, batches of {args.batch}")
            print(f"{'':34}{'seconds':>9}{'offers/s':>10}{'x floor':>9}")
            label = "offers.send (a job per SMS)" if args.remote else "ussd-app offers.send (all)"
            print(f"{label:34}{ours:9.2f}{args.subscribers / ours:10.0f}"
                  f"{bare / ours:9.2f}")
            print(f"{'floor (HMGET+HSETNX+RPUSH)':34}{bare:9.2f}{args.subscribers / bare:10.0f}{1:9.2f}")
            again = offers.send(services, camp, batch=args.batch)
            print(f"second send: {again['sent']} sent, {again['skipped']['already_offered']} already offered")
        finally:
            proc.terminate()


if __name__ == "__main__":
    main()
