"""The benchmark's like-for-like floor does what it claims: on the answer
that redeems or consents it runs the same scripts as ours, and they act (a
debit in the ledger, a consent recorded); without its acts it leaves both
alone. Run in a child process: bench/apps.py connects at import to REDIS_URL."""
import json
import os
import subprocess
import sys
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
PLAY = """
import json, sys
from bench import hop_cost, seed
from bench.journeys import msisdn
seed.main()
for n, (target, journey) in enumerate([("bench.apps:floor_like", "redeem"), ("bench.apps:floor_like", "consent"),
                                       ("bench.apps:floor_like_session", "redeem"),
                                       ("bench.apps:floor_like_session", "consent")]):
    hop_cost.play(target, journey, n, 1)
print(json.dumps([msisdn(n) for n in range(4)]))
"""


def test_the_like_for_like_floor_redeems_and_consents_as_ours_does(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    try:
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
        done = subprocess.run([sys.executable, "-c", PLAY], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        redeemed, consented, untouched, unconsented = json.loads(done.stdout.splitlines()[-1])

        def ledger(m):
            return [json.loads(e)["type"] for e in r.lrange(f"ussd:{{{m}}}:ledger", 0, -1)]

        def offer(m):
            return json.loads(r.hget(f"ussd:{{{m}}}:offers", "kta-demo"))["status"]
        assert ledger(redeemed) == ["earn", "redeem"]
        assert offer(consented) == "consented"
        assert ledger(untouched) == ["earn"] and offer(unconsented) == "open"
    finally:
        r.flushdb()
