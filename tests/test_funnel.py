"""The drop-off funnel: per screen, entries and how each left, fed by every
dialect's hops and end signals, the events callback and silent expiry."""
import time

import pytest
import redis
from click.testing import CliRunner

from phones import Phone
from ussd_app import cli, demo
from ussd_app.core import keys, store
from ussd_app.ussd import funnel, hop
from ussd_app.ussd.types import Hop

MSISDN = "+6281234567890"




def table(client, **query) -> dict:
    resp = client.get("/api/v1/analytics/funnel", query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {row.pop("screen"): row for row in resp.get_json()["screens"]}


def test_every_dialect_and_signal_feeds_the_funnel(client, demo_data, clock):
    redeemer = Phone(client, msisdn=MSISDN, dialect="hubtel")
    redeemer.dial()
    redeemer.type(2, 1, 1, 1, 1)  # completed on reward_done
    timed_out = Phone(client, msisdn="081311110001", dialect="truroute")
    timed_out.dial()
    clock.now += 12
    timed_out.type(4)
    clock.now += 30
    timed_out.hang_up("timeout")  # 30 s on help
    released = Phone(client, msisdn="081311110002", dialect="hubtel")
    released.dial()
    released.type(5)
    released.hang_up("release")
    silent = Phone(client, msisdn="081311110003", dialect="nalo")
    silent.dial()
    silent.type(4, 1)  # then nothing: Nalo never says
    rows = table(client)
    assert rows["main"]["entered"] == 4 and rows["main"]["next"] == 4
    assert rows["reward_done"] == {"entered": 1, "next": 0, "completed": 1, "timeout": 0, "released": 0,
                                   "error": 0, "still_open": 0, "median_seconds": 0}
    assert (rows["help"]["entered"], rows["help"]["timeout"], rows["help"]["next"]) == (2, 1, 1)
    assert rows["help"]["median_seconds"] == 0  # 30 s and 0 s: the lower middle
    assert rows["language"]["released"] == 1
    assert rows["help_about"]["still_open"] == 1
    assert rows["main"]["median_seconds"] == 0
    clock.now += hop.lifetime(demo_data.config) + 1  # the Nalo session expires silently
    rows = table(client)
    assert (rows["help_about"]["timeout"], rows["help_about"]["still_open"]) == (1, 0)
    assert table(client)["help_about"]["timeout"] == 1  # swept once
    assert table(client, dialect="nalo").keys() == {"main", "help", "help_about"}


def test_the_events_callback_closes_the_session_once(client, demo_data, services):
    phone = Phone(client, msisdn=MSISDN)
    phone.dial()
    phone.type(4)
    form = {"sessionId": phone.session, "phoneNumber": "081234567890", "serviceCode": "*700#",
            "status": "Incomplete", "input": "4", "hopsCount": "2", "durationInMillis": "25000",
            "errorMessage": "Session timed out", "lastAppResponse": "CON Bantuan", "date": "2025-01-01",
            "cost": "KES 0.1"}
    for _ in range(2):
        resp = client.post("/ussd/events", data=form)
        assert (resp.status_code, resp.get_data(as_text=True)) == (200, "OK")
    assert table(client)["help"]["timeout"] == 1
    doc = services.r.get(f"ussd:{{{MSISDN}}}:session:{phone.session}")
    assert '"event":{"status":"Incomplete","hops":2,"duration_ms":25000' in doc
    assert "CON Bantuan" not in doc  # what the gateway echoes is not kept
    resp = client.post("/ussd/events", data={**form, "status": "Lost"})
    assert (resp.status_code, resp.get_data(as_text=True)) == (400, "status must be Success, Incomplete or Failed")


def test_a_failed_hop_counts_an_error(client, demo_data, services, monkeypatch):
    phone = Phone(client, msisdn=MSISDN, dialect="arkesel")
    phone.dial()

    def broken(ctx, text):
        raise RuntimeError("boom")
    monkeypatch.setattr(services.engine, "step", broken)
    assert phone.type(4).startswith("Maaf, layanan sedang sibuk") and phone.end
    assert table(client)["main"]["error"] == 1


def test_report_funnel_prints_the_table(demo_data, monkeypatch, redis_url):
    monkeypatch.setenv("REDIS_URL", redis_url)
    hop.hop(demo_data, Hop("cli", MSISDN, "*700#", inputs=("4",), history=True))
    demo_data.funnel.flush()  # as the serving process does within a second
    result = CliRunner().invoke(cli.main, ["report", "funnel", "--dialect", "africastalking"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["screen", "entered", "next", "completed", "timeout", "released",
                                "error", "still_open", "median", "s"]
    assert lines[2].split() == ["help", "1", "0", "0", "0", "0", "0", "1", "-"]
    assert lines[3].split() == ["main", "1", "1", "0", "0", "0", "0", "0", "0"]
    bad = CliRunner().invoke(cli.main, ["report", "funnel", "--from", "yesterday"])
    assert bad.exit_code == 1 and "from must be an ISO 8601 time" in bad.output


def test_a_process_writes_its_counts_within_a_second(demo_data, redis_url):
    """Another process (a report on another web worker, the CLI) sees a
    hop's counts once the serving process has written them, by itself."""
    hop.hop(demo_data, Hop("w", MSISDN, "*700#", inputs=("4",), history=True))
    other = redis.Redis.from_url(redis_url, decode_responses=True)
    day_key = keys.funnel_day(funnel.day(demo_data.clock()))
    deadline = time.monotonic() + 10
    while not other.hget(day_key, "africastalking|help|entered") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other.hgetall(day_key) == {"africastalking|main|entered": "1", "africastalking|main|next": "1",
                                      "africastalking|main|~0": "1", "africastalking|help|entered": "1"}
    assert 0 < other.ttl(day_key) <= funnel.RETENTION_SECONDS
    other.close()


def test_counts_redis_did_not_take_are_kept_for_the_next_write(demo_data, monkeypatch):
    hop.hop(demo_data, Hop("k", MSISDN, "*700#", inputs=("4",), history=True))
    real = store.batch

    def refused(r, commands):
        raise redis.ConnectionError("Redis is restarting")
    monkeypatch.setattr(store, "batch", refused)
    with pytest.raises(redis.ConnectionError):
        demo_data.funnel.flush()
    monkeypatch.setattr(store, "batch", real)
    demo_data.funnel.flush()
    day_key = keys.funnel_day(funnel.day(demo_data.clock()))
    assert demo_data.r.hget(day_key, "africastalking|help|entered") == "1"
    assert demo_data.r.hget(day_key, "africastalking|main|entered") == "1"  # once, not twice


def test_bad_queries_are_refused(client):
    assert client.get("/api/v1/analytics/funnel?dialect=smoke").get_json() == {
        "error": "dialect must be one of africastalking, hubtel, nalo, arkesel, truroute"}
    resp = client.get("/api/v1/analytics/funnel?from=2020-01-01&to=2025-01-01")
    assert (resp.status_code, resp.get_json()) == (400, {"error": "at most 366 days at a time"})


def test_dwell_buckets_and_days():
    assert [funnel.bucket(s) for s in (0, 29.9, 30, 34, 119, 121, 299, 3000)] == \
        [0, 29, 30, 30, 115, 120, 285, 300]
    assert len(funnel.BUCKETS) == 61
    jakarta_midnight = 1735664400  # 2025-01-01 00:00 WIB
    assert funnel.day(jakarta_midnight - 1) == "2024-12-31" and funnel.day(jakarta_midnight) == "2025-01-01"
    assert funnel.days(jakarta_midnight - 1, jakarta_midnight) == ["2024-12-31", "2025-01-01"]


def test_a_hop_is_two_round_trips_of_plain_commands(client, demo_data, monkeypatch):
    """The session, account and resume pointer read in one round trip (the
    account's plain reads, no script), with the revisions the busiest screens check
    (tests/test_round_trips.py); the session (with the pointer where it may be resumed) and the
    session's move among the funnel's open ones written in the other, plain
    commands (the session's script only where it must take back a pointer it
    set); the funnel's counts are written by the process, once a second."""
    sent = []
    real = store.roundtrip
    monkeypatch.setattr(store, "roundtrip", lambda r, *commands: sent.append(
        [c[0] for c in commands]) or real(r, *commands))
    phone = Phone(client, msisdn="081311110009")
    phone.dial()
    phone.type(4)
    read = ["HMGET", "ZRANGEBYSCORE", "HGETALL", "HGETALL", "MGET"]
    assert sent == [read, ["SET", "ZADD"],  # the main menu: not resumable
                    read, ["SET", "ZREM", "ZADD"]]  # help: information, not resumable
    sent.clear()
    phone.type("00", 3)  # the offers list: on the way to an action, the resume pointer too
    assert sent[-1] == ["SET", "SET", "ZREM", "ZADD"]


def test_a_shortcut_dial_counts_every_screen_it_passes(demo_data):
    """A hop says before/after/closed and the screens it entered; the funnel
    works out the counts: each screen passed is entered and left at once."""
    hop.hop(demo_data, Hop("s", MSISDN, "*700#", inputs=("4", "1"), history=True))
    demo_data.funnel.flush()
    day_key = keys.funnel_day(funnel.day(demo_data.clock()))
    assert demo_data.r.hgetall(day_key) == {
        "africastalking|main|entered": "1", "africastalking|main|next": "1", "africastalking|main|~0": "1",
        "africastalking|help|entered": "1", "africastalking|help|next": "1", "africastalking|help|~0": "1",
        "africastalking|help_about|entered": "1"}
    assert demo_data.r.zrange(keys.FUNNEL_OPEN, 0, -1) == [f"africastalking|help_about|{MSISDN}|s"]


def test_one_ticker_writes_what_a_process_counts(demo_data):
    """The funnel's counts and the metrics are written by one thread of the
    process, not a timer each."""
    import threading

    from ussd_app.core import metrics, ticker

    hop.hop(demo_data, Hop("t", MSISDN, "*700#", inputs=("4",), history=True))
    metrics.sms("ticker-test", "sent")
    names = [t.name for t in threading.enumerate()]
    assert names.count("ussd-ticker") == 1 and not any(isinstance(t, threading.Timer)
                                                       for t in threading.enumerate())
    writers = [w() for w in ticker._writers]
    assert demo_data.funnel.flush in writers and metrics._flusher.flush in writers
    ticker.write_all()  # what the ticker does each second
    assert demo_data.r.hget(keys.funnel_day(funnel.day(demo_data.clock())), "africastalking|help|entered") == "1"
