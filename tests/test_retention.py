"""Retention: ledger entries and consent records older than RETENTION_DAYS
leave Redis for the archive files, in order, exactly once, even across a
crash; the balance never moves; the API says what was archived."""
import json
import math

import pytest
from click.testing import CliRunner

from ussd_app import cli, jobs, retention
from ussd_app.core import archive, formats, keys
from ussd_app.loyalty import points, redemptions, rewards

M = "+6281234567890"
DAY = 86400


@pytest.fixture
def config(config, tmp_path):
    return {**config, "ARCHIVE_DIR": str(tmp_path / "archive"), "RETENTION_DAYS": 396}


@pytest.fixture
def history(services, clock):
    """Two years of a subscriber: earnings, a redemption and consent records,
    most of them older than the retention."""
    now = clock.now
    r = services.r
    reward = rewards.put(r, rewards.validate("PULSA10", {
        "name": {"id": "Pulsa"}, "category": "pulsa", "points": 100, "fulfilment": "airtime"}))
    for i, age in enumerate((700, 600, 500, 30)):
        clock.now = now - age * DAY
        points.earn(r, M, 1000, "topup", f"tx-{i}", math.inf, clock.now)
        if age == 600:
            assert redemptions.redeem(services, M, reward, redemptions.new_quote(reward, 1), "ussd").status == "ok"
        r.rpush(keys.consent_log(M), json.dumps({"type": "optin", "channel": "sms", "at": clock.now}))
    clock.now = now
    return now


def lines(services, kind):
    return list(archive.read(services.config.ARCHIVE_DIR, kind))


def test_old_entries_are_archived_in_order_and_the_balance_stays(services, history, client):
    r = services.r
    before = points.view(r, M, history).balance
    ledger = points.ledger(r, M)
    assert retention.run(services) == {"subscribers": 1, "ledger": 4, "consent_log": 3,
                                       "recovered_files": 0}
    assert points.view(r, M, history).balance == before == 3900
    kept = points.ledger(r, M)
    assert kept == ledger[4:] and [e["type"] for e in kept] == ["earn"]
    archived = lines(services, "ledger")
    assert [(x["msisdn"], x["seq"]) for x in archived] == [(M, 0), (M, 1), (M, 2), (M, 3)]
    assert [x["entry"] for x in archived] == ledger[:4]  # earn, earn, redeem, earn
    assert [x["entry"]["type"] for x in lines(services, "consent_log")] == ["optin"] * 3
    body = client.get(f"/api/v1/subscribers/{M}/ledger").get_json()
    assert (body["archived"], len(body["entries"])) == (4, 1)
    assert body["archived_before"] == formats.iso(history - 396 * DAY)
    consents = client.get(f"/api/v1/subscribers/{M}/consents").get_json()
    assert (consents["archived"], len(consents["entries"])) == (3, 1)
    # the archived earnings' idempotency keys went with them; the kept one stays
    assert sorted(r.hkeys(keys.idempotency(M))) == ["earn:tx-3"]
    # the settled redemption left with its entry, without the voucher code it delivered
    redeemed = archived[2]
    assert redeemed["attached"]["status"] == "done" and "delivered" not in redeemed["attached"]
    assert r.hlen(keys.redemptions(M)) == 0


def test_a_pending_redemption_keeps_its_entry_and_the_later_ones(services, clock, monkeypatch):
    r, now = services.r, clock.now
    reward = rewards.put(r, rewards.validate("PULSA10", {
        "name": {"id": "Pulsa"}, "category": "pulsa", "points": 100, "fulfilment": "airtime"}))
    clock.now = now - 500 * DAY
    points.earn(r, M, 1000, "topup", "tx-0", math.inf, clock.now)
    monkeypatch.setattr(services.jobs, "enqueue", lambda *args, **kwargs: None)  # never fulfilled
    assert redemptions.redeem(services, M, reward, redemptions.new_quote(reward, 1), "ussd").status == "ok"
    points.earn(r, M, 1000, "topup", "tx-1", math.inf, clock.now)
    clock.now = now
    assert retention.run(services)["ledger"] == 1  # the first earning only
    assert [e["type"] for e in points.ledger(r, M)] == ["redeem", "earn"]
    assert r.hlen(keys.redemptions(M)) == 1


def test_a_second_run_archives_nothing_twice(services, history):
    retention.run(services)
    again = retention.run(services)
    assert (again["ledger"], again["consent_log"]) == (0, 0)
    assert [x["seq"] for x in lines(services, "ledger")] == [0, 1, 2, 3]


def test_what_becomes_old_later_follows_in_order(services, history, clock):
    retention.run(services)
    clock.now += 400 * DAY
    assert retention.run(services)["ledger"] == 1
    assert [x["seq"] for x in lines(services, "ledger")] == [0, 1, 2, 3, 4]
    assert points.ledger(services.r, M) == []


def crashed_run(services, cutoff, trim: bool):
    """A run killed after writing its lines (and, with ``trim``, after trimming):
    no seal, its part file left behind, its lock expired."""
    job = archive.Run(services.r, services.config.ARCHIVE_DIR, services.clock()).__enter__()
    raw = services.r.lrange(keys.ledger(M), 0, -1)
    old = [x for x in raw if json.loads(x)["at"] < cutoff]
    heads = job._attach(retention.LEDGER, [archive.Head(M, 0, old, [json.loads(x) for x in old])])
    job._write(retention.LEDGER, heads)
    if trim:
        job._trim(retention.LEDGER, heads, cutoff)
    for f in job.files.values():
        f.close()
    services.r.delete(keys.ARCHIVE_LOCK)


@pytest.mark.parametrize("trimmed", [False, True], ids=["before the trim", "after the trim"])
def test_a_crashed_run_leaves_every_entry_archived_exactly_once(services, history, trimmed):
    crashed_run(services, history - 396 * DAY, trim=trimmed)
    done = retention.run(services)
    assert done["recovered_files"] == 1
    assert done["ledger"] == (0 if trimmed else 4)
    assert [x["seq"] for x in lines(services, "ledger")] == [0, 1, 2, 3]
    assert len(points.ledger(services.r, M)) == 1


def test_one_run_at_a_time(services, history):
    with archive.Run(services.r, services.config.ARCHIVE_DIR, services.clock()):
        with pytest.raises(Exception, match="another archive run is under way"):
            retention.run(services)


def test_without_an_archive_dir_nothing_leaves_redis(services, history, monkeypatch):
    monkeypatch.delenv("ARCHIVE_DIR", raising=False)
    services.config = type(services.config)(**{**services.config.__dict__, "ARCHIVE_DIR": None})
    with pytest.raises(Exception, match="ARCHIVE_DIR is unset"):
        retention.run(services)
    assert len(points.ledger(services.r, M)) == 5
    assert services.r.llen(keys.consent_log(M)) == 4


def test_the_command_reports_what_it_archived(services, history, monkeypatch, redis_url):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ARCHIVE_DIR", services.config.ARCHIVE_DIR)
    monkeypatch.setenv("RETENTION_DAYS", "396")
    result = CliRunner().invoke(cli.main, ["archive", "run"])
    assert result.exit_code == 0, result.output
    assert "ledger: 4, consent_log: 3" in result.output


def test_the_worker_archives_once_a_day(services, history, clock):
    jobs.housekeeping(services)  # the worker's round (an rq job)
    assert services.r.llen(keys.ledger(M)) == 1  # archived by the round
    assert not retention.due(services)
    jobs.housekeeping(services)  # the next round, the same day: nothing more
    assert services.r.llen(keys.ledger(M)) == 1
    clock.now += DAY
    assert retention.due(services)
