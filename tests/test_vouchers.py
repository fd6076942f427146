"""Vouchers from a pool: the codes available are the stock (out of stock is said
before any point moves), codes are added once each, and a code is a secret:
encrypted at rest, shown only in its owner's SMS."""
import threading

import pytest
from click.testing import CliRunner

from ussd_app import cli
from ussd_app.core import keys
from ussd_app.loyalty import redemptions, rewards
from ussd_app.sms import providers

M = "+6281234567890"
KOPI = {"name": "Voucher kopi", "category": "voucher", "points": 100, "fulfilment": "voucher"}


@pytest.fixture
def enrolled(api):
    api("POST", "/api/v1/subscribers/081234567890/points",
        {"points": 1000, "source": "topup", "reference": "t1"}, status=201)


def balance(api):
    return api("GET", "/api/v1/subscribers/081234567890/points")["balance"]


def test_a_pool_without_codes_is_out_of_stock_before_any_point_moves(enrolled, api, phone):
    api("PUT", "/api/v1/rewards/KOPI", {**KOPI, "stock": 3}, status=200)
    screen = phone.dial("2*1*1")
    assert "Maaf, stok hadiah ini habis." in screen and "1 Tukar" not in screen
    assert phone.type(1).startswith("Pilihan tidak dikenal.")
    phone.sms("TUKAR KOPI")
    assert phone.inbox() == ["Penukaran gagal: Maaf, stok hadiah ini habis."]
    phone.sms("YA")
    assert balance(api) == 1000
    assert [e["type"] for e in api("GET", "/api/v1/subscribers/081234567890/ledger")["entries"]] == ["earn"]
    assert not any("gagal dikirim" in m for m in phone.inbox())


def test_codes_are_added_once_each_and_counted(enrolled, api, phone):
    api("PUT", "/api/v1/rewards/KOPI", {**KOPI, "stock": 3}, status=200)
    assert api("POST", "/api/v1/rewards/KOPI/vouchers", {"codes": ["K-1", "K-2"]}, status=201) == {
        "added": 2, "duplicates": 0, "available": 2}
    assert api("POST", "/api/v1/rewards/kopi/vouchers", {"codes": ["K-2", "K-3", "K-3"]}, status=201) == {
        "added": 1, "duplicates": 2, "available": 3}
    (listed,) = api("GET", "/api/v1/rewards")["rewards"]
    assert (listed["stock"], listed["available"]) == (3, 3)
    phone.dial("2*1*1*1*1")
    assert phone.end and "diproses" in phone.screen
    assert "Kode voucher: K-1" in phone.inbox()[-1]
    (listed,) = api("GET", "/api/v1/rewards")["rewards"]
    assert (listed["stock"], listed["available"]) == (2, 2)
    # a code given out is still a duplicate; one never seen is added
    assert api("POST", "/api/v1/rewards/KOPI/vouchers", {"codes": ["K-1", "K-4"]}, status=201) == {
        "added": 1, "duplicates": 1, "available": 3}
    assert api("POST", "/api/v1/rewards/KOPI/vouchers", {"codes": ["K-4"]}, status=200)["added"] == 0


def test_the_stock_is_the_smaller_of_stock_and_codes(enrolled, api, phone):
    api("PUT", "/api/v1/rewards/KOPI", {**KOPI, "stock": 1}, status=200)
    api("POST", "/api/v1/rewards/KOPI/vouchers", {"codes": ["K-1", "K-2", "K-3"]}, status=201)
    phone.dial("2*1*1*1*1")
    assert phone.end
    assert "stok hadiah ini habis" in phone.dial("2*1*1")
    (listed,) = api("GET", "/api/v1/rewards")["rewards"]
    assert (listed["stock"], listed["available"]) == (0, 2)


def test_only_pooled_rewards_show_available(api):
    api("PUT", "/api/v1/rewards/GEN", {**KOPI, "generate_codes": True}, status=200)
    api("PUT", "/api/v1/rewards/PULSA", {**KOPI, "fulfilment": "airtime"}, status=200)
    assert all("available" not in w for w in api("GET", "/api/v1/rewards")["rewards"])


@pytest.mark.parametrize("code, body, status, error", [
    ("KOPI", {"codes": ["ok-1", "not a code SECRETX"]}, 400, "codes[1] must be a voucher code"),
    ("KOPI", {"codes": "K-1"}, 400, "codes must be a list"),
    ("KOPI", {"codes": [""]}, 400, "codes[0] must be a voucher code"),
    ("KOPI", {"codes": ["K" * 41]}, 400, "codes[0] must be a voucher code"),
    ("PULSA", {"codes": ["K-1"]}, 400, "only to a reward with fulfilment voucher"),
    ("NOPE", {"codes": ["K-1"]}, 404, "no such reward"),
])
def test_bad_vouchers_are_refused_without_echoing_a_code(api, client, code, body, status, error):
    api("PUT", "/api/v1/rewards/KOPI", KOPI, status=200)
    api("PUT", "/api/v1/rewards/PULSA", {**KOPI, "fulfilment": "airtime"}, status=200)
    resp = client.post(f"/api/v1/rewards/{code}/vouchers", json=body)
    assert resp.status_code == status and error in resp.get_json()["error"]
    assert "SECRETX" not in resp.get_data(as_text=True)


def test_codes_rest_encrypted_and_no_answer_shows_them(enrolled, api, phone, services):
    api("PUT", "/api/v1/rewards/KOPI", KOPI, status=200)
    codes = ["SECRET-AAA1", "SECRET-BBB2", "SECRET-CCC3"]
    api("POST", "/api/v1/rewards/KOPI/vouchers", {"codes": codes}, status=201)
    phone.dial("2*1*1*1*1")
    phone.sms("TUKAR KOPI")
    phone.sms("YA")
    inbox = phone.inbox()
    assert "Kode voucher: SECRET-AAA1" in inbox[0] and any("Kode voucher: SECRET-BBB2" in m for m in inbox)
    # Every key and value in Redis, but the console provider's outbox (a development tool that keeps SMS as sent)
    r = services.raw
    found = []
    for key in r.scan_iter(count=1000):
        if key.endswith(b":outbox"):
            continue
        kind = r.type(key)
        if kind == b"string":
            values = [r.get(key)]
        elif kind == b"hash":
            values = [x for kv in r.hgetall(key).items() for x in kv]
        elif kind == b"list":
            values = r.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(r.smembers(key))
        elif kind == b"zset":
            values = r.zrange(key, 0, -1)
        else:
            values = [r.dump(key) or b""]
        found += [key for v in [key, *values] if b"SECRET-" in v]
    assert found == []
    answers = [client_get(phone, path) for path in (
        "/api/v1/subscribers/081234567890/redemptions", "/api/v1/redemptions?status=done",
        "/api/v1/rewards", "/api/v1/rewards/KOPI", "/api/v1/subscribers/081234567890/ledger")]
    assert not any("SECRET-" in a for a in answers)
    delivered = api("GET", "/api/v1/subscribers/081234567890/redemptions")["redemptions"]
    assert [d["delivered_enc"] for d in delivered] == ["(encrypted)", "(encrypted)"]


def client_get(phone, path):
    resp = phone.client.get(path)
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def test_a_small_pool_under_contention_gives_each_code_once(services):
    from ussd_app.loyalty import points
    w = rewards.put(services.r, rewards.validate("KOPI", KOPI))
    rewards.add_vouchers(services.r, services.vault, "KOPI", ["K-1", "K-2", "K-3"])
    w = rewards.get(services.r, "KOPI")
    subscribers = [f"+62812000000{i:02d}" for i in range(12)]
    for m in subscribers:
        points.earn(services.r, m, 500, "topup", "t", float("inf"), services.clock())
    got = {}
    barrier = threading.Barrier(len(subscribers))

    def one(m):
        barrier.wait()
        got[m] = redemptions.redeem(services, m, w, redemptions.new_quote(w, 1), "ussd").status
    threads = [threading.Thread(target=one, args=(m,)) for m in subscribers]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(got.values()) == ["ok"] * 3 + ["out_of_stock"] * 9
    sent = [t for m in subscribers for t in (x["text"] for x in providers.outbox(services.r, m))]
    assert sorted(s.split("Kode voucher: ")[1][:3] for s in sent) == ["K-1", "K-2", "K-3"]
    assert not any("gagal" in s for s in sent)
    assert sum(points.view(services.r, m, services.clock()).balance for m in subscribers) == 12 * 500 - 300


def test_a_quantity_takes_as_many_codes(services, enrolled):
    rewards.put(services.r, rewards.validate("KOPI", {**KOPI, "max_per_transaction": 3}))
    rewards.add_vouchers(services.r, services.vault, "KOPI", ["K-1", "K-2"])
    w = rewards.get(services.r, "KOPI")
    assert redemptions.redeem(services, M, w, redemptions.new_quote(w, 3), "ussd").status == "out_of_stock"
    assert redemptions.redeem(services, M, w, redemptions.new_quote(w, 2), "ussd").status == "ok"
    assert "Kode voucher: K-1, K-2" in providers.outbox(services.r, M)[-1]["text"]


def test_released_codes_go_back_to_the_pool(services):
    rewards.put(services.r, rewards.validate("KOPI", KOPI))
    rewards.add_vouchers(services.r, services.vault, "KOPI", ["K-1", "K-2"])
    w = rewards.get(services.r, "KOPI")
    services.r.zadd(keys.PENDING_REDEMPTIONS, {f"{M}|rid1|KOPI": 0})  # a crash after the hold
    assert rewards.RESERVE(services.r, *rewards.reserve_args(w, "rid1", 1, w.revision)) == 1
    assert rewards.get(services.r, "KOPI").available == 1
    assert redemptions.recover(services, older_than=0)["released"] == 1
    assert rewards.get(services.r, "KOPI").available == 2
    assert [services.vault.decrypt(t) for t in services.r.lrange(keys.voucher_pool("KOPI"), 0, -1)] == [
        "K-1", "K-2"]


class TestCommands:
    @pytest.fixture(autouse=True)
    def env(self, redis_url, monkeypatch):
        monkeypatch.setenv("REDIS_URL", redis_url)

    def test_catalog_file_vouchers_are_added_once(self, services, tmp_path):
        f = tmp_path / "catalog.yaml"
        f.write_text("rewards:\n  KOPI: {name: Kopi, category: voucher, points: 100, fulfilment: voucher,"
                     " vouchers: [K-1, K-2]}\n")
        for command in ("catalog", "rewards"):
            out = CliRunner().invoke(cli.main, [command, "load", str(f)])
            assert out.exit_code == 0, out.output
            assert "KOPI (2 codes available)" in out.output
        assert services.r.llen(keys.voucher_pool("KOPI")) == 2

    def test_vouchers_from_a_file(self, services, tmp_path):
        rewards.put(services.r, rewards.validate("KOPI", KOPI))
        f = tmp_path / "codes.txt"
        f.write_text("K-1\nK-2\n\nK-2\n")
        out = CliRunner().invoke(cli.main, ["rewards", "vouchers", "kopi", str(f)])
        assert out.exit_code == 0, out.output
        assert "added: 2, duplicates: 1, available: 2" in out.output
        f.write_text("K-3\nbad code\n")
        out = CliRunner().invoke(cli.main, ["rewards", "vouchers", "KOPI", str(f)])
        assert out.exit_code != 0 and "line[1] must be a voucher code" in out.output
        assert "bad code" not in out.output
