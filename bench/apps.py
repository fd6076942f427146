"""The peers our /ussd is measured against, served by the same server stack.

floor:   bare Flask + redis-py doing a hop's Redis work (GET the session JSON,
         SET it back with a TTL), no menus.
ceiling: bare Flask answering ``END ok``: what the server stack can do at all.
"""
import json
import os

import redis
from flask import Flask, Response, request

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


ceiling = Flask("ceiling")


@ceiling.post("/ussd")
def ceiling_hop():
    return Response("END ok", mimetype="text/plain")


@floor.get("/healthz")
@ceiling.get("/healthz")
def healthz():
    return "ok"


# The same two behind the Procfile's RSGI adapter (bench/run.py picks these for it).
from ussd_app.web.rsgi import Buffered  # noqa: E402

floor_rsgi = Buffered(floor)
ceiling_rsgi = Buffered(ceiling)
