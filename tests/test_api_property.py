"""Property: whatever body any endpoint of the integration API gets, it answers
2xx or a JSON error (400, 401, 403, 404, 409), never a 500; and whatever the
API accepted, every menu screen it feeds still renders within the limit in
GSM-7, in both languages.

Bounded (200 examples in all: 160 bodies, then 40 write sequences each followed
by a walk of up to 90 screens; no deadline, derandomized), against the real
redis-server the fixtures start. The endpoints are read from the app's URL map,
so a route added later is fuzzed too.
"""
import json
import re
import time
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ussd_app.core import formats, gsm7
from ussd_app.ussd import hop as ussd
from ussd_app.ussd.types import Hop

DAY = 86400.0
NOW = time.time()
WALKER = "+6281355550000"
ANSWERS = {200, 201, 202, 204, 400, 401, 403, 404, 409}

HOSTILE = ["Kopi \u2615", "\u201cKopi\u201d", "Kopi\n9 HADIAH GRATIS", "a\r\nb", "\x00", "\x1b", "\t",
           "\u20ac5", "{", "{name}", "%s", "`", "\u0663", "\uff13\uff11", "\u00b2", "x" * 300, "", " ",
           "Caf\u00e9 \u00c4", "[]{}\\^~|", "\u00a0", "\u200b", "3171014506900001", "-1", "1e999",
           "+62812FLOWERS"]
text = st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
                 st.sampled_from(HOSTILE))
GSM = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,:;-+/()&%!?'\"@#*=<>"
       "\u00e9\u00e8\u00c4\u00d6\u00dc\u00f1\u00a3\u00a5\u00a7\u00bf\u00a1\u0394\u03a9[]{}\\^~|\u20ac")
gsm_text = st.text(st.sampled_from(GSM), min_size=1, max_size=70)
DATES = ["9999-12-31T23:59:00+00:00", "0001-01-01T00:00:00+00:00", "2026-13-01", "soon", "",
         formats.iso(NOW + DAY), formats.iso(NOW + 9.9 * 365 * DAY), formats.iso(NOW + 10.1 * 365 * DAY),
         formats.iso(NOW - DAY), formats.iso(NOW - 9.9 * 365 * DAY), "2027-01-01", "2027-01-01T00:00:00-14:00"]
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**80, 2**80), st.floats(), text,
                   st.sampled_from(DATES))
any_json = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(text, inner, max_size=3)),
                        max_leaves=10)


def reward_body() -> dict:
    return {"name": {"id": "Kopi susu", "en": "Milk coffee"}, "category": "voucher", "points": 100,
            "stock": 10, "max_per_transaction": 3, "monthly_limit": None, "partner": "Kafe",
            "fulfilment": "voucher", "generate_codes": True, "active_from": formats.iso(NOW - DAY),
            "active_until": formats.iso(NOW + 30 * DAY)}


def campaign_body() -> dict:
    return {"id": "kta-prop", "institution": {"id": "bank-p", "name": "Bank P", "support": "cs@bank-p.example"},
            "product": "Kredit Multiguna", "sender_id": "KreditSmart", "code": "KTP",
            "message": {"id": "Bank P menawarkan kredit.", "en": "Bank P offers a loan."},
            "consent_text": {"id": "Data Anda dikirim ke Bank P.", "en": "Your data goes to Bank P."},
            "terms": {"id": "hingga Rp50 juta", "en": "up to Rp50 million"},
            "consent_version": "1", "valid_from": formats.iso(NOW - DAY),
            "valid_until": formats.iso(NOW + 30 * DAY), "eligibility": {}}


TEMPLATES = {
    "api.put_subscriber": lambda: {"credit_score": 720, "status": "active", "language": "id",
                                   "attributes": {"region": "JKT", "tenure_months": 30}},
    "api.post_points": lambda: {"points": 5000, "source": "topup", "reference": "tx-1",
                                "expires_at": formats.iso(NOW + 100 * DAY)},
    "api.put_reward": reward_body,
    "api.post_campaign": campaign_body,
    "api.send_offers": lambda: {"msisdns": [WALKER, "081234567890"]},
    "api.add_vouchers": lambda: {"codes": ["KOPI-1", "KOPI-2"]},
}


@st.composite
def mutated(draw, template: dict, value=text):
    """``template`` with some fields kept, some dropped, some replaced by ``value``
    (or, now and then, any JSON at all), nested objects likewise."""
    out = {}
    for key, kept in template.items():
        how = draw(st.sampled_from(["keep"] * 4 + ["drop", "value", "value", "any", "nested"]))
        if how == "keep":
            out[key] = kept
        elif how == "value":
            out[key] = draw(st.one_of(value, st.sampled_from(DATES))) if "at" in key or "valid" in key or \
                "active" in key else draw(value)
        elif how == "any":
            out[key] = draw(any_json)
        elif how == "nested" and isinstance(kept, dict):
            out[key] = draw(mutated(kept, value))
        elif how == "nested":
            out[key] = kept
    if draw(st.integers(0, 9)) == 0:
        out.update(draw(st.dictionaries(text, any_json, max_size=2)))
    return out


PATH_ARGS = {
    "msisdn": st.sampled_from([WALKER, "081234567890", "6281355550000", "+62812FLOWERS", "+14155552671",
                               "\uff10\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10",
                               "0215551234", "x"]),
    "code": st.one_of(st.sampled_from(["KOPI", "kopi", "K" * 30, "A\nB", "\u2615", "%", "KOPI-7"]), text),
    "campaign_id": st.one_of(st.sampled_from(["kta-prop", "nope", "KTA", "kta-prop\n"]), text),
}
QUERY = st.dictionaries(st.sampled_from(["to", "institution", "cursor", "limit", "status", "from", "dialect"]),
                        st.one_of(text, st.sampled_from([WALKER, "bank-p", "0", "1", "1000", "\uff11",
                                                         formats.iso(NOW)])), max_size=3)


def endpoints(app) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(rule, method, endpoint, argument names) of every integration API route."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                out.append((rule.rule, method, rule.endpoint, tuple(sorted(rule.arguments))))
    return sorted(out)


def fill(rule: str, values: dict) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>",
                  lambda m: quote(values[m.group(1)], safe="") or "-", rule)


@st.composite
def request_for(draw, route):
    rule, method, endpoint, names = route
    values = {}
    for name in names:
        value = draw(PATH_ARGS.get(name, text))
        values[name] = value if value.strip(".") else "x"  # '.' and '..' are path syntax, not data
    path = fill(rule, values)
    query = draw(QUERY) if method == "GET" else {}
    if query:
        path += "?" + urlencode(query)
    if method == "GET":
        return method, path, None, None
    template = TEMPLATES.get(endpoint)
    kind = draw(st.sampled_from(["template"] * 4 + ["json", "raw", "deep"] if template
                                else ["json", "json", "raw", "deep"]))
    if kind == "deep":
        depth = draw(st.sampled_from([17, 50, 2000, 100_000]))
        return method, path, draw(st.sampled_from(["[", '{"a":'])) * depth, "application/json"
    if kind == "template":
        return method, path, json.dumps(draw(mutated(template()))), "application/json"
    if kind == "json":
        return method, path, json.dumps(draw(any_json)), "application/json"
    data, ctype = draw(st.tuples(st.binary(max_size=60), st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", None])))
    return method, path, data, ctype


def assert_answered(resp, method, path):
    assert resp.status_code in ANSWERS, (method, path, resp.status_code, resp.data[:300])
    if resp.status_code >= 400:
        body = resp.get_json(silent=True)
        assert isinstance(body, dict) and set(body) == {"error"}, (method, path, resp.data[:300])
        assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]


@pytest.fixture
def world(app):
    """A subscriber with points, a reward and a campaign offered to them, laid anew per example."""
    services = app.extensions["ussd"]
    client = app.test_client()
    for method, path, body in [
            ("PUT", f"/api/v1/subscribers/{WALKER}", TEMPLATES["api.put_subscriber"]()),
            ("POST", f"/api/v1/subscribers/{WALKER}/points", TEMPLATES["api.post_points"]()),
            ("PUT", "/api/v1/rewards/KOPI", reward_body()),
            ("POST", "/api/v1/campaigns", campaign_body()),
            ("POST", "/api/v1/campaigns/kta-prop/offers", {"msisdns": [WALKER]})]:
        assert client.open(path, method=method, json=body).status_code in (200, 201), path
    raw = services.raw
    snapshot = [(key, raw.pttl(key), raw.dump(key)) for key in raw.scan_iter()]

    def reset():
        pipe = raw.pipeline()
        pipe.flushdb()
        for key, ttl, payload in snapshot:
            pipe.restore(key, max(ttl, 0), payload)
        pipe.execute()
    return services, client, reset


SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=160, **SETTINGS)
@given(data=st.data())
def test_any_body_to_any_endpoint_is_answered_never_a_500(world, data):
    services, client, reset = world
    reset()
    for _ in range(data.draw(st.integers(1, 3))):
        route = data.draw(st.sampled_from(endpoints(client.application)))
        method, path, body, ctype = data.draw(request_for(route))
        resp = client.open(path, method=method, data=body, content_type=ctype)
        assert_answered(resp, method, path)
    for path in READS:  # whatever was accepted, what reads it answers still
        assert_answered(client.get(path), "GET", path)


READS = [f"/api/v1/subscribers/{WALKER}", f"/api/v1/subscribers/{WALKER}/points",
         f"/api/v1/subscribers/{WALKER}/ledger", f"/api/v1/subscribers/{WALKER}/redemptions",
         f"/api/v1/subscribers/{WALKER}/consents", f"/api/v1/outbox?to={quote(WALKER)}", "/api/v1/rewards",
         "/api/v1/rewards/KOPI", "/api/v1/campaigns", "/api/v1/campaigns/kta-prop",
         "/api/v1/leads?institution=bank-p"]


# -- what the API accepted, the menus show ------------------------------------------
def _choices(screen: str) -> list[str]:
    keys = [m.group(1) for m in re.finditer(r"^([0-9]+) ", screen, re.MULTILINE)]
    return [k for k in keys if k not in ("0", "00")]


def screens(services, msisdn: str, reset, roots=("1", "2", "3"), depth=5, limit=45):
    """A bounded walk (breadth first, from each root, on data laid anew per path):
    every screen a few inputs away, in both languages, as (path, reply)."""
    engine = services.engine
    for lang, choice in (("id", "1"), ("en", "2")):
        todo, seen, count = [(root,) for root in roots], set(), 0
        while todo and count < limit:
            path = todo.pop(0)
            count += 1
            reset()
            result = ussd.hop(services, Hop(f"prop-{lang}-{count}", msisdn, services.config.USSD_SERVICE_CODE,
                                            inputs=("5", choice, "00") + path, history=True))
            reply, state = result.reply, result.after
            if (state, reply.text) in seen:
                continue
            seen.add((state, reply.text))
            yield lang, path, reply
            if not reply.end and len(path) < depth:
                more = _choices(reply.text) + list(engine.screens[state].examples)
                todo.extend(path + (key,) for key in more)


text_field = st.one_of(gsm_text, gsm_text, text)
# The fields a subscriber sees (and the dates that decide what is shown), by endpoint.
SHOWN = {
    "api.put_reward": [("name", "id"), ("name", "en"), ("name",), ("category",), ("points",),
                       ("max_per_transaction",), ("active_from",), ("active_until",)],
    "api.post_campaign": [("product",), ("institution", "name"), ("institution", "support"),
                          ("message", "id"), ("message", "en"), ("consent_text", "id"),
                          ("consent_text", "en"), ("consent_version",), ("valid_from",), ("valid_until",),
                          ("terms", "id"), ("terms", "en")],
    "api.put_subscriber": [("credit_score",), ("language",), ("status",)],
    "api.post_points": [("points",), ("expires_at",), ("reference",)],
}


@st.composite
def shown_fields_changed(draw, endpoint: str) -> dict:
    """A valid body of ``endpoint`` with one to three of the fields a subscriber
    sees replaced: mostly GSM-7 text of any length, sometimes anything."""
    body = TEMPLATES[endpoint]()
    for path in draw(st.lists(st.sampled_from(SHOWN[endpoint]), min_size=1, max_size=3, unique=True)):
        *parents, last = path
        target = body
        for name in parents:
            target = target[name] if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue  # the object above it was replaced already
        dated = last in ("active_from", "active_until", "valid_from", "valid_until", "expires_at")
        target[last] = draw(st.sampled_from(DATES) if dated else st.one_of(
            text_field, st.integers(-5, 100_000), any_json) if last in ("points", "max_per_transaction",
                                                                        "credit_score") else text_field)
    return body


writes = st.lists(st.sampled_from([
    ("PUT", "/api/v1/rewards/KOPI", "api.put_reward"), ("PUT", "/api/v1/rewards/TEH", "api.put_reward"),
    ("POST", "/api/v1/campaigns", "api.post_campaign"), ("POST", "/api/v1/campaigns", "api.post_campaign"),
    ("PUT", f"/api/v1/subscribers/{WALKER}", "api.put_subscriber"),
    ("POST", f"/api/v1/subscribers/{WALKER}/points", "api.post_points")]), min_size=1, max_size=4)


@settings(max_examples=40, **SETTINGS)
@given(data=st.data(), calls=writes)
def test_whatever_the_api_accepted_every_screen_still_renders(world, data, calls):
    services, client, reset = world
    reset()
    limit = services.config.USSD_MAX_CHARS
    for n, (method, path, endpoint) in enumerate(calls):
        body = data.draw(shown_fields_changed(endpoint))
        if endpoint == "api.post_campaign":
            body["id"], body["code"] = f"kta-{n}", f"KT{n}"
        resp = client.open(path, method=method, json=body)
        assert_answered(resp, method, path)
        if endpoint == "api.post_campaign" and resp.status_code == 201:
            offered = client.post(f"/api/v1/campaigns/kta-{n}/offers", json={"msisdns": [WALKER]})
            assert_answered(offered, "POST", "offers")
    raw = services.raw
    after = [(key, raw.pttl(key), raw.dump(key)) for key in raw.scan_iter()]

    def restore():
        pipe = raw.pipeline()
        pipe.flushdb()
        for key, ttl, payload in after:
            pipe.restore(key, max(ttl, 0), payload)
        pipe.execute()
    shown = 0
    for lang, path, reply in screens(services, WALKER, restore):
        shown += 1
        assert not gsm7.problems(reply.text, limit), (lang, path, reply.text)
        assert "sibuk" not in reply.text and "busy" not in reply.text, (lang, path, reply.text)
    assert shown > 10
