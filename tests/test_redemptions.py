"""Redeeming: exactly once, atomic, refunded on failure, recovered after a crash."""
import math
import threading

import pytest

from ussd_app.loyalty import fulfilment, points, redemptions, rewards
from ussd_app import jobs
from ussd_app.core import formats, keys

M = "+6281234567890"


def reward(services, code="PULSA10", points_=100, **extra):
    body = {"name": {"id": f"Hadiah {code}", "en": f"Reward {code}"}, "category": "pulsa",
            "points": points_, "fulfilment": "airtime", **extra}
    return rewards.put(services.r, rewards.validate(code, body))


def redeem(services, w, key, qty=1, channel="ussd"):
    """Redeem ``qty`` of ``w`` on its terms as they stand, ``key`` naming the quote."""
    return redemptions.redeem(services, M, w, redemptions.Quote(key, w.code, w.revision, w.points, qty),
                              channel)


def credit(services, pts, ref="t", expires=math.inf):
    now = services.clock()
    points.earn(services.r, M, pts, "topup", ref, expires, now)


def balance(services):
    return points.view(services.r, M, services.clock()).balance


def ledger_sum(services):
    return sum(e["points"] for e in points.ledger(services.r, M) if e["type"] != "expire")


def test_fifty_concurrent_redemptions_take_exactly_what_the_balance_covers(services):
    credit(services, 1000)  # covers exactly 10 at 100 points
    w = reward(services, stock=30)
    outcomes = []
    barrier = threading.Barrier(50)

    def one(i):
        barrier.wait()
        outcomes.append(redeem(services, w, f"hop-{i}", 1).status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes.count("ok") == 10
    # The rest are refused: short, or (while the others' units were held) out of stock.
    assert set(outcomes) - {"ok"} <= {"short", "out_of_stock"} and len(outcomes) == 50
    assert balance(services) == 0
    assert rewards.get(services.r, "PULSA10").stock == 20
    assert ledger_sum(services) == balance(services)


def test_stock_never_goes_negative(services):
    credit(services, 100_000)
    w = reward(services, stock=5)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        redeem(services, w, f"s-{i}", 1).status)) for i in range(30)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count("ok") == 5 and results.count("out_of_stock") == 25
    assert rewards.get(services.r, "PULSA10").stock == 0
    assert balance(services) == 100_000 - 500


def test_the_same_key_redeems_once(services):
    credit(services, 1000)
    w = reward(services, stock=10)
    first = redeem(services, w, "sess:2*1*1*1*1", 1)
    again = redeem(services, w, "sess:2*1*1*1*1", 1)
    assert (first.status, again.status) == ("ok", "dup")
    assert first.redemption == again.redemption
    assert balance(services) == 900
    assert rewards.get(services.r, "PULSA10").stock == 9
    assert [e["type"] for e in points.ledger(services.r, M)] == ["earn", "redeem"]


def test_soonest_expiring_points_go_first_never_expiring_last(services, clock):
    now = clock.now
    points.earn(services.r, M, 50, "topup", "never", math.inf, now)
    points.earn(services.r, M, 70, "topup", "late", now + 9000, now)
    points.earn(services.r, M, 40, "topup", "soon", now + 100, now)
    w = reward(services, points_=100)
    redeem(services, w, "k1", 1)
    left = {b.id: b.points for b in points.view(services.r, M, now).buckets}
    assert left == {"b0000000001": 50, "b0000000002": 10}  # soon: 40 gone, late: 60 gone
    entry = points.ledger(services.r, M)[-1]
    assert (entry["balance_before"], entry["balance_after"], entry["by"]) == (160, 60, "ussd")


@pytest.mark.parametrize("status, setup", [
    ("not_enrolled", lambda s: None),
    ("blocked", lambda s: (credit(s, 1000), s.r.hset(keys.profile(M), "status", "blocked"))),
    ("short", lambda s: credit(s, 99)),
])
def test_refusals(services, status, setup):
    setup(services)
    w = reward(services, stock=3)
    assert redeem(services, w, "k", 1).status == status
    assert rewards.get(services.r, "PULSA10").stock == 3  # the held unit went back


def test_monthly_limit(services):
    credit(services, 1000)
    w = reward(services, monthly_limit=2)
    got = [redeem(services, w, f"k{i}", 1).status for i in range(3)]
    assert got == ["ok", "ok", "limit"]


def test_inactive_reward(services, clock):
    credit(services, 1000)
    w = reward(services, active_until=formats.iso(clock.now - 86400))
    assert redeem(services, w, "k", 1).status == "inactive"


class TestFailedFulfilment:
    @pytest.fixture
    def config(self, config):
        return {**config, "FULFILMENT_FAIL_RATE": 1.0}

    def test_points_and_stock_come_back_with_an_sms(self, services, client):
        credit(services, 500, "a", expires=services.clock() + 1000)
        credit(services, 500, "b")
        before = {b.id: b.points for b in points.view(services.r, M, services.clock()).buckets}
        w = reward(services, points_=700, stock=4)
        out = redeem(services, w, "k", 1)
        assert out.status == "ok"
        assert balance(services) == 1000
        assert {b.id: b.points for b in points.view(services.r, M, services.clock()).buckets} == before
        assert rewards.get(services.r, "PULSA10").stock == 4
        types = [e["type"] for e in points.ledger(services.r, M)]
        assert types == ["earn", "earn", "redeem", "refund"]
        assert ledger_sum(services) == 1000
        assert redemptions.get(services.r, M, out.redemption)["status"] == "failed"
        sms = client.get(f"/api/v1/outbox?to={M}").get_json()["messages"]
        assert "700 poin sudah dikembalikan" in sms[-1]["text"]
        # a second settlement of the same redemption changes nothing
        assert not redemptions.refund(services, M, out.redemption, "again")
        assert balance(services) == 1000


class TestCrashes:
    @pytest.fixture
    def config(self, config):
        return {**config, "JOBS_SYNC": False}  # jobs wait for a worker that is not running

    def test_pending_redemption_is_fulfilled_by_recovery_once(self, services, client):
        credit(services, 1000)
        w = reward(services, stock=2)
        out = redeem(services, w, "k", 1)
        assert redemptions.get(services.r, M, out.redemption)["status"] == "pending"
        services.raw.delete("rq:queue:ussd", "rq:queue:ussd-partners")  # the worker crashed and the job was lost
        assert redemptions.recover(services, older_than=0) == {"refulfilled": 1, "released": 0, "settled": 0, "failed": 0}
        jobs.work(services, burst=True)
        assert redemptions.get(services.r, M, out.redemption)["status"] == "done"
        assert fulfilment.fulfil(services, M, out.redemption) == "done"  # a late duplicate job
        sms = client.get(f"/api/v1/outbox?to={M}").get_json()["messages"]
        assert len(sms) == 1 and "berhasil" in sms[0]["text"]
        assert redemptions.recover(services, older_than=0) == {"refulfilled": 0, "released": 0, "settled": 0, "failed": 0}
        assert rewards.get(services.r, "PULSA10").stock == 1

    def test_crash_between_holding_stock_and_debit_is_released(self, services):
        w = reward(services, stock=2)
        services.r.zadd(keys.PENDING_REDEMPTIONS, {f"{M}|rid1|PULSA10": 0})
        assert rewards.RESERVE(services.r, *rewards.reserve_args(w, "rid1", 1, w.revision)) == 1
        assert rewards.get(services.r, "PULSA10").stock == 1
        assert redemptions.recover(services, older_than=0)["released"] == 1
        assert rewards.get(services.r, "PULSA10").stock == 2


def test_vouchers_come_from_the_pool_once_each(services, client):
    credit(services, 1000)
    w = rewards.put(services.r, rewards.validate("KOPI", {
        "name": "Voucher kopi", "category": "voucher", "points": 100, "fulfilment": "voucher"}))
    assert rewards.add_vouchers(services.r, services.vault, "KOPI", ["V-1", "V-2"]) == {
        "added": 2, "duplicates": 0, "available": 2}
    w = rewards.get(services.r, "KOPI")
    got = [redeem(services, w, f"k{i}").status for i in range(3)]
    assert got == ["ok", "ok", "out_of_stock"]  # the pool is the stock: said before any point moves
    texts = [m["text"] for m in client.get(f"/api/v1/outbox?to={M}").get_json()["messages"]]
    assert len(texts) == 2
    assert "Kode voucher: V-1" in texts[0] and "Kode voucher: V-2" in texts[1]
    assert balance(services) == 800
    assert [e["type"] for e in points.ledger(services.r, M)] == ["earn", "redeem", "redeem"]


class TestHttpProvisioning:
    """The HTTP adapter against a provisioning stub on loopback."""

    @pytest.fixture
    def stub(self):
        import json as _json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        calls = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = _json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls.append((body, self.headers.get("Idempotency-Key")))
                status = Handler.fail or 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(_json.dumps({"confirmation": "PRV-1"}).encode())

            def log_message(self, *a):
                pass
        Handler.fail = 0
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_port}/provision", calls, Handler
        server.shutdown()
        server.server_close()

    @pytest.fixture
    def config(self, config, stub):
        return {**config, "FULFILMENT_URL": stub[0], "FULFILMENT_TIMEOUT": 2.0}

    def test_success_carries_the_redemption_id(self, services, stub, client):
        _, calls, _ = stub
        credit(services, 1000)
        out = redeem(services, reward(services), "k", 2)
        assert calls == [({"reference": out.redemption, "msisdn": M, "reward": "PULSA10",
                           "quantity": 2, "kind": "airtime"}, out.redemption)]
        rec = redemptions.get(services.r, M, out.redemption)
        assert (rec["status"], rec["delivered"]) == ("done", "PRV-1")

    def test_a_definite_failure_refunds(self, services, stub):
        _, _, handler = stub
        handler.fail = 400
        credit(services, 1000)
        out = redeem(services, reward(services), "k", 1)
        rec = redemptions.get(services.r, M, out.redemption)
        assert (rec["status"], rec["reason"]) == ("failed", "provider answered 400")
        assert balance(services) == 1000

    def test_a_5xx_is_never_refunded(self, services, stub):
        _, _, handler = stub
        handler.fail = 503
        credit(services, 1000)
        out = redeem(services, reward(services), "k", 1)
        rec = redemptions.get(services.r, M, out.redemption)
        # no worker retries in sync mode: straight to a person
        assert (rec["status"], rec["reason"]) == ("needs_review", "provider answered 503; retries exhausted")
        assert balance(services) == 900
