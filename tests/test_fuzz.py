"""Fuzz: whatever a subscriber types or texts, in whatever order, every hop
answers a screen that fits, every SMS gets an answer, and points leave only
through recorded redemptions.

Bounded (a fixed number of examples, no deadline), against the real
redis-server the fixtures start; Hypothesis shrinks a failure to the shortest
input sequence that shows it.
"""
import logging
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phones import send
from ussd_app import demo
from ussd_app.core import gsm7
from ussd_app.gateways import DIALECTS

MSISDN = "+6281234567890"  # demo: 12,500 points
START = 12_500

typed = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
nik_like = st.from_regex(r"\A(3171014506900001|\d{15,17})\Z")
navigation = st.sampled_from(["0", "00", "98", "99", "1", "10", ""])


def offered(screen: str) -> list[str]:
    """The choices a screen lists (its lines that start with a number)."""
    return [m.group(1) for m in re.finditer(r"^(\d+) ", screen, re.MULTILINE)]


def next_input(data, screen: str) -> str:
    """Mostly a choice the screen offers (so walks go deep), sometimes
    navigation, a NIK-like number or anything at all."""
    choices = offered(screen)
    kind = data.draw(st.sampled_from(["offered"] * 12 + ["navigation", "nik", "anything"]))
    if kind == "offered" and choices:
        return data.draw(st.sampled_from(choices))
    if kind == "nik":
        return data.draw(nik_like)
    return data.draw(typed if kind == "anything" else navigation)


@pytest.fixture
def fresh(app):
    """A client, the screen limit, and a way to start each example from the demo data
    (what the walk draws depends on the screens it sees)."""
    services = app.extensions["ussd"]
    demo.seed(services)
    r = services.raw  # bytes: DUMP payloads are binary
    snapshot = [(key, r.pttl(key), r.dump(key)) for key in r.scan_iter()]

    def reset():
        r.flushdb()  # on a Redis Cluster (tests/cluster): every primary
        pipe = r.pipeline(transaction=False)
        for key, ttl, payload in snapshot:
            pipe.restore(key, max(ttl, 0), payload)
        pipe.execute()
    return app.test_client(), services.config.USSD_MAX_CHARS, reset


def assert_only_recorded_redemptions_took_points(client):
    redemptions = client.get(f"/api/v1/subscribers/{MSISDN}/redemptions").get_json()["redemptions"]
    balance = client.get(f"/api/v1/subscribers/{MSISDN}/points").get_json()["balance"]
    assert balance == START - sum(r["points"] for r in redemptions if r["status"] != "failed") >= 0


def assert_nothing_raised(caplog):
    """A hop or SMS that raised still answers politely, so look for it in the log."""
    assert not [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_inputs_get_a_screen_that_fits_and_charge_only_what_is_recorded(fresh, data, caplog):
    client, limit, reset = fresh
    reset()
    caplog.clear()
    # Behind any gateway: Africa's Talking sends the history, the others the latest input.
    gateway = DIALECTS[data.draw(st.sampled_from(sorted(DIALECTS)))]
    # Sometimes a shortcut dial (*700*2*1#): inputs typed in advance, replayed in order.
    ahead = data.draw(st.lists(st.sampled_from(["1", "2", "3", "4", "5", "0", "00", "98"]), max_size=5))
    session, history = uuid.uuid4().hex, list(ahead)
    request = gateway.encode(session, MSISDN, "*700#", list(ahead), None, "dial")
    status, content_type, body = send(client, request)
    for _ in range(12):
        screen, end = gateway.decode(status, content_type, body)
        assert status == 200 and not gsm7.problems(screen, limit), (status, body)
        if end:
            break
        # Mostly a new input (sometimes the last key again: a step of its own),
        # sometimes the gateway posting the same hop again: a retry, which acts on
        # nothing, where the gateway can tell (its history or Sequence, or a first hop).
        kind = data.draw(st.sampled_from(["new"] * 8 + ["same key", "retry"]))
        if kind == "retry" and (gateway.NAME in ("africastalking", "hubtel") or len(history) == len(ahead)):
            again = send(client, request)
            assert gateway.decode(*again) == (screen, end)
            continue
        typed = history[-1] if kind == "same key" and history else next_input(data, screen)
        request = gateway.encode(session, MSISDN, "*700#", list(history), typed, "input")
        history.append(typed)
        status, content_type, body = send(client, request)
        if status == 400:  # over a gateway's limit or not a string it carries: refused, named
            assert re.search(r"\b(text|Message|USERDATA|userData|msg|body must be)\b",
                             gateway.decode(status, content_type, body)[0]), body
            break
    assert_only_recorded_redemptions_took_points(client)
    assert_nothing_raised(caplog)


sms_words = st.sampled_from(["POIN", "HANGUS", "INFO", "BANTUAN", "TUKAR", "YA", "TIDAK", "STOP",
                             "MULAI", "KTA", "DATA1GB", "PULSA5", "3", "0", "ya", " "])
sms_text = st.one_of(st.lists(st.one_of(*[sms_words] * 4, nik_like, typed), max_size=4).map(" ".join),
                     st.sampled_from(["TUKAR DATA1GB", "TUKAR PULSA5 2", "YA", "YA KTA 3171014506900001"]),
                     typed)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=st.lists(sms_text, min_size=1, max_size=5))
def test_any_sms_gets_an_answer_in_gsm7_and_charges_only_what_is_recorded(fresh, texts, caplog):
    client, _, reset = fresh
    reset()
    caplog.clear()
    outbox = f"/api/v1/outbox?to={MSISDN.replace('+', '%2B')}"
    for i, text in enumerate(texts):
        before = len(client.get(outbox).get_json()["messages"])
        resp = client.post("/sms/inbound", data={"from": MSISDN, "to": "62168", "text": text,
                                                 "id": f"fuzz-{i}"})
        assert resp.status_code == 200
        replies = client.get(outbox).get_json()["messages"][before:]
        assert replies and all(gsm7.fits(m["text"]) for m in replies), (text, replies)
    assert_only_recorded_redemptions_took_points(client)
    assert_nothing_raised(caplog)
