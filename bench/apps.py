"""The peers our /ussd is measured against, served by the same server stack.

floor:   bare Flask + redis-py doing a hop's Redis work (GET the session JSON,
         SET it back with a TTL), no menus.
floor_like: the like-for-like floor: bare Flask + redis-py doing the Redis work
         our hop does, no menus: the session and the resume pointer read with
         the caller's account (the same commands, in one round trip), the
         session written and its entry among the open ones moved (SET, ZREM,
         ZADD) in a second round trip; and on the answer that acts in the
         redeem and consent journeys (bench/journeys.py), the same scripts
         ours runs there, in the same round trips (redeem: the pending marker
         and the stock's hold, then the debit; consent: the lead's index entry
         and the consent). Not what ours does around them (the NIK attempt's
         count, the confirmation SMS, the fulfilment job): that is our cost.
floor_like_session: the like-for-like floor without the acts' scripts (the
         like-for-like floor of the earlier sittings, docs/benchmark.md).
ceiling: bare Flask answering ``END ok``: what the server stack can do at all.
"""
import functools
import json
import os
import time

import redis
from flask import Flask, Response, request

from bench.journeys import JOURNEYS
from ussd_app.core import pii
from ussd_app.loyalty import points, redemptions, rewards
from ussd_app.offers import campaigns, consents

floor = Flask("floor")
_r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True)


@floor.post("/ussd")
def floor_hop():
    sid, text = request.form["sessionId"], request.form.get("text", "")
    raw = _r.get(f"floor:session:{sid}")
    session = json.loads(raw) if raw else {"id": sid, "state": "main", "history": []}
    session["last_text"] = text
    _r.set(f"floor:session:{sid}", json.dumps(session), ex=180)
    return Response("CON Poin Plus\n1 Cek poin\n4 Bantuan\n5 Bahasa/Language", mimetype="text/plain")


floor_like = Flask("floor_like")
MENU = "CON Poin Plus\n1 Cek poin\n4 Bantuan\n5 Bahasa/Language"
for _script in (rewards.RESERVE, redemptions.REDEEM, consents.INDEX_LEAD, consents.CONSENT):
    _r.script_load(_script.source)
REWARD, CAMPAIGN = "DATA1GB", "kta-demo"  # what the journeys redeem and consent to (bench/seed.py)


@functools.cache
def _terms():
    """The reward, the campaign and an encrypted NIK, as the first act finds
    them (the seed comes before the first hop): Redis work, not app work, is
    what this floor does on every hop."""
    return rewards.get(_r, REWARD), campaigns.get(_r, CAMPAIGN), pii.Vault(None).encrypt("3171014506900001")


def _send(*commands) -> list:
    pipe = _r.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute()


def redeem(msisdn: str, sid: str, now: float) -> None:
    """The redemption's scripts as ours sends them on the confirmation's "1"."""
    reward = _terms()[0]
    quote = redemptions.new_quote(reward, 1)
    rid = redemptions.redemption_id(f"{msisdn}|{quote.id}")
    _send(*redemptions.hold_commands(msisdn, reward, quote, rid, now))
    _send(redemptions.debit_command(msisdn, reward, quote, rid, now, "ussd"))


def consent(msisdn: str, sid: str, now: float) -> None:
    """The consent's scripts as ours sends them on the NIK's answer."""
    _, campaign, nik_enc = _terms()
    proof = consents.Proof("ussd", sid, "disclosure", nik_enc, "id")
    _send(*consents.consent_commands(msisdn, campaign, nik_enc, 700, proof, now,
                                     consents.consent_id(msisdn, campaign.id)))


ACTS = {JOURNEYS["redeem"][-1]: redeem, JOURNEYS["consent"][-1]: consent}  # each (msisdn, sid, now)


@floor_like.post("/ussd")
def floor_like_hop():
    return like_hop(ACTS)


floor_like_session = Flask("floor_like_session")  # the like-for-like floor without the acts' scripts


@floor_like_session.post("/ussd")
def floor_like_session_hop():
    return like_hop({})


def like_hop(acts: dict):
    sid, text, msisdn = request.form["sessionId"], request.form.get("text", ""), request.form["phoneNumber"]
    key, pointer, now = f"floor:{{{msisdn}}}:session:{sid}", f"floor:{{{msisdn}}}:resume", time.time()
    (profile, *_, (raw, _)) = _send(*points.view_commands(msisdn, now, strings=(key, pointer)))
    session = json.loads(raw) if raw else {"id": sid, "state": "main", "history": [], "lang": profile[1]}
    before = f"{session['state']}|{msisdn}|{sid}"
    act = acts.get(text)
    if act:
        act(msisdn, sid, now)
    session["state"], session["last_text"] = f"s{len(text)}", text
    pipe = _r.pipeline(transaction=False)
    pipe.set(key, json.dumps(session), ex=180)
    pipe.zrem("floor:open", before)
    pipe.zadd("floor:open", {f"{session['state']}|{msisdn}|{sid}": int(now)})
    pipe.execute()
    return Response(MENU, mimetype="text/plain")


ceiling = Flask("ceiling")


@ceiling.post("/ussd")
def ceiling_hop():
    return Response("END ok", mimetype="text/plain")


@floor.get("/healthz")
@floor_like.get("/healthz")
@floor_like_session.get("/healthz")
@ceiling.get("/healthz")
def healthz():
    return "ok"


# The same four behind the Procfile's RSGI adapter (bench/run.py picks these for it).
from ussd_app.web.rsgi import Buffered  # noqa: E402

floor_rsgi = Buffered(floor)
floor_like_rsgi = Buffered(floor_like)
floor_like_session_rsgi = Buffered(floor_like_session)
ceiling_rsgi = Buffered(ceiling)
