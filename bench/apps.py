"""The peers our /ussd is measured against, served by the same server stack.

floor:   bare Flask + redis-py doing a hop's Redis work (GET the session JSON,
         SET it back with a TTL), no menus.
floor_like: the like-for-like floor: bare Flask + redis-py doing the Redis work
         our hop does, no menus: the session and the resume pointer read by
         the caller's account script (the same Lua script, by EVALSHA), the
         session written and its entry among the open ones moved (SET, ZREM,
         ZADD) in a second round trip.
ceiling: bare Flask answering ``END ok``: what the server stack can do at all.
"""
import json
import os
import time

import redis
from flask import Flask, Response, request

from ussd_app.loyalty import points

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
# Loaded once and run by its SHA: redis-py's Script in a pipeline would ask
# SCRIPT EXISTS on every execute, work our hop does not do.
_account = _r.script_load(points.VIEW.source)
MENU = "CON Poin Plus\n1 Cek poin\n4 Bantuan\n5 Bahasa/Language"


@floor_like.post("/ussd")
def floor_like_hop():
    sid, text, msisdn = request.form["sessionId"], request.form.get("text", ""), request.form["phoneNumber"]
    key, pointer, now = f"floor:{{{msisdn}}}:session:{sid}", f"floor:{{{msisdn}}}:resume", time.time()
    account_keys, account_args = points.view_args(msisdn, now, strings=(key, pointer))
    account = _r.evalsha(_account, len(account_keys), *account_keys, *account_args)
    raw = account[2][-2]
    session = json.loads(raw) if raw else {"id": sid, "state": "main", "history": [], "lang": account[1]}
    before = f"{session['state']}|{msisdn}|{sid}"
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
@ceiling.get("/healthz")
def healthz():
    return "ok"


# The same three behind the Procfile's RSGI adapter (bench/run.py picks these for it).
from ussd_app.web.rsgi import Buffered  # noqa: E402

floor_rsgi = Buffered(floor)
floor_like_rsgi = Buffered(floor_like)
ceiling_rsgi = Buffered(ceiling)
