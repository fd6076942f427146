"""Journey 2 over USSD and SMS, the catalog API and the expiry jobs."""
import threading

import pytest

from ussd_app import demo
from ussd_app.loyalty import expiry, points, rewards
from ussd_app.core import keys


@pytest.fixture
def seeded(services):
    demo.seed(services)  # +6281234567890: 12,500 points, 2,500 of them expiring in 5 days
    services.r.delete(keys.outbox("+6281234567890"))  # the demo offer's SMS: not read here


def test_redeem_a_voucher_end_to_end(seeded, phone):
    assert "1 Kuota data" in phone.dial(text="2")
    assert "Voucher belanja" in phone.screen
    phone.type(5)
    assert "1 Voucher kopi Rp25.000 500p" in phone.screen
    phone.type(1)
    assert "Harga: 500 poin\nPoin Anda: 12.500\nSisa setelah tukar: 12.000\n1 Tukar" in phone.screen
    phone.type(1)
    assert phone.screen.startswith("Tukar 1x Voucher kopi Rp25.000 dengan 500 poin?")
    phone.type(1)
    assert phone.end and "Sisa poin: 12.000" in phone.screen
    assert phone.inbox() == ["Penukaran Voucher kopi Rp25.000 berhasil. Kode voucher: KOPI-7QX2. "
                             "Terima kasih telah memakai Poin Plus."]


def test_quantity_is_asked_where_allowed(seeded, phone):
    phone.dial(text="2*4*1*1")
    assert phone.screen.startswith("Berapa jumlahnya? (1-5)")
    assert phone.type(9).startswith("Ketik angka 1 sampai 5.")
    phone.type(3)
    assert phone.screen.startswith("Tukar 3x Pulsa Rp5.000 dengan 1.800 poin?")


def test_the_confirm_hop_sent_twice_redeems_once(seeded, phone, api):
    phone.dial(text="2*1*1*1")
    phone.type(1)
    first = phone.screen
    assert phone.resend() == first
    assert api("GET", "/api/v1/subscribers/081234567890/points")["balance"] == 10_000


def test_concurrent_duplicate_confirm_hops_redeem_once(seeded, app, phone, api):
    phone.dial(text="2*1*1*1")
    form = {"sessionId": phone.session, "serviceCode": "*700#", "phoneNumber": phone.msisdn,
            "text": "2*1*1*1*1"}
    replies = []

    def post():
        replies.append(app.test_client().post("/ussd", data=form).get_data(as_text=True))
    threads = [threading.Thread(target=post) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(r.startswith("END Penukaran Kuota 1GB") for r in replies)
    assert api("GET", "/api/v1/subscribers/081234567890/points")["balance"] == 10_000
    assert len(api("GET", "/api/v1/subscribers/081234567890/redemptions")["redemptions"]) == 1


def test_balance_short_says_by_how_much(seeded, phone):
    phone.msisdn = "081234567891"  # 800 points, English
    phone.dial(text="2*1*2")
    assert "You need 9,200 more points for this reward." in phone.screen
    assert "1 Redeem" not in phone.screen
    assert phone.type(1).startswith("Unknown choice.")


def test_blocked_and_not_enrolled_get_clear_screens(seeded, phone):
    phone.msisdn = "081234567893"
    assert "diblokir" in phone.dial(text="2") and not phone.end
    phone.msisdn = "081277777777"
    assert "belum terdaftar" in phone.dial(text="2")


def test_out_of_stock_and_monthly_limit(seeded, services, phone, api):
    api("PUT", "/api/v1/rewards/KOPI25", {"name": {"id": "Voucher kopi Rp25.000"}, "category": "voucher",
                                          "points": 500, "fulfilment": "voucher", "stock": 0})
    assert "stok hadiah ini habis" in phone.dial(text="2*5*1")
    phone.dial(text="2*3*1*1*1")  # STREAM30: once a month
    assert phone.end
    assert "Batas penukaran bulan ini tercapai (1x per bulan)" in phone.dial(text="2*3*1")


def test_redeem_by_sms(seeded, phone, api):
    phone.sms("TUKAR pulsa10")
    assert phone.inbox()[-1] == "Tukar Pulsa Rp10.000 dengan 1.100 poin? Balas YA dalam 5 menit untuk konfirmasi."
    phone.sms("YA")
    phone.sms("ya")  # a second YA has no redemption left to confirm: it points to the offer held
    inbox = phone.inbox()
    # the receipt first, then the delivery (jobs run at once here, after the reply, as a worker would)
    assert inbox[1] == "Penukaran Pulsa Rp10.000 diproses. Kode/konfirmasi segera dikirim lewat SMS."
    assert inbox[2].startswith("Penukaran Pulsa Rp10.000 berhasil")
    assert inbox[3].startswith("Untuk setuju penawaran Bank A, ketik YA KTA <NIK")
    assert api("GET", "/api/v1/subscribers/081234567890/points")["balance"] == 11_400


@pytest.mark.parametrize("text, reply", [
    ("TUKAR", "Cara tukar: ketik TUKAR <kode hadiah>"),
    ("TUKAR NOPE", "Kode hadiah itu tidak dikenal."),
    ("YA", "Untuk setuju penawaran Bank A, ketik YA KTA"),
])
def test_sms_redeem_errors(seeded, phone, text, reply):
    phone.sms(text)
    assert phone.inbox()[-1].startswith(reply)


class TestCatalogApi:
    def test_put_and_list(self, api):
        got = api("PUT", "/api/v1/rewards/data5", {
            "name": {"id": "Kuota 5GB", "en": "5GB data"}, "category": "data", "points": 5000,
            "stock": 10, "max_per_transaction": 2, "monthly_limit": None, "active_from": None,
            "active_until": "2035-01-01T00:00:00+07:00", "partner": "Operator", "fulfilment": "data"},
            status=200)
        assert got["code"] == "DATA5" and got["stock"] == 10
        assert [w["code"] for w in api("GET", "/api/v1/rewards")["rewards"]] == ["DATA5"]

    @pytest.mark.parametrize("body, error", [
        ({"category": "data", "points": 5, "fulfilment": "data"}, "name must be a text"),
        ({"name": "X", "category": "Data!", "points": 5, "fulfilment": "data"}, "category must be"),
        ({"name": "X", "category": "data", "points": 0, "fulfilment": "data"}, "points must be"),
        ({"name": "X", "category": "data", "points": 5, "fulfilment": "teleport"}, "fulfilment must be"),
        ({"name": "X", "category": "data", "points": 5, "fulfilment": "data", "stock": -1}, "stock must be"),
        ({"name": "X", "category": "data", "points": 5, "fulfilment": "data",
          "active_from": "2030-01-01T00:00:00+07:00", "active_until": "2029-01-01T00:00:00+07:00"},
         "active_until must be after"),
    ])
    def test_bad_rewards_are_400(self, client, body, error):
        resp = client.put("/api/v1/rewards/X1", json=body)
        assert resp.status_code == 400 and resp.get_json()["error"].startswith(error)

    def test_catalog_file_is_all_or_nothing(self, services):
        from ussd_app.core.errors import BadRequest
        bad = "rewards:\n  OK1: {name: A, category: data, points: 5, fulfilment: data}\n  BAD: {name: B}\n"
        with pytest.raises(BadRequest, match="reward BAD: category must be"):
            rewards.load_file(services.r, services.vault, bad)
        assert rewards.catalog(services.r) == []


class TestExpiryJobs:
    def test_expire_is_idempotent(self, seeded, services, clock):
        clock.now += 6 * 86400  # the 2,500 expiring in 5 days are past
        assert expiry.expire_all(services, batch=2) == (2500, 4)
        assert expiry.expire_all(services, batch=2) == (0, 4)
        entries = points.ledger(services.r, "+6281234567890")
        assert [e["type"] for e in entries].count("expire") == 1

    def test_notify_once_per_bucket(self, seeded, services, phone):
        assert expiry.notify_all(services, days=7, batch=3) == 1
        assert expiry.notify_all(services, days=7, batch=3) == 0
        assert phone.inbox()[0].startswith("2.500 poin Anda hangus")

    def test_many_subscribers_in_batches(self, services, clock):
        now = clock.now
        pipe = services.r.pipeline(transaction=False)
        for i in range(2000):
            points.EARN.queue(pipe, points._subscriber_keys(f"+62819{i:07d}"),
                              [f"earn:x{i}", 10, now + 10, now, "topup", f"x{i}"])
            pipe.sadd("ussd:subscribers", f"+62819{i:07d}")
        points.EARN.load(services.r)
        pipe.execute()
        assert expiry.notify_all(services, days=1, batch=300) == 2000
        assert expiry.notify_all(services, days=1, batch=300) == 0
        clock.now += 11
        assert expiry.expire_all(services, batch=300) == (20000, 2000)


def test_inputs_typed_in_advance_do_not_share_what_a_screen_cached(seeded, phone):
    # data category, back, then the airtime category: its own list, not the first one
    screen = phone.dial(text="2*1*0*4")
    assert screen.startswith("Pulsa\n1 Pulsa Rp5.000 600p")
    assert "Kuota" not in screen


def test_list_screens_keep_definitions_until_the_catalog_changes(seeded, phone, api, services):
    """Processes keep the catalog's definitions while its revision stands."""
    assert "1 Voucher kopi Rp25.000 500p" in phone.dial(text="2*5")
    raw = services.r.hget(keys.reward("KOPI25"), "def")
    services.r.hset(keys.reward("KOPI25"), "def", raw.replace("500", "999"))  # behind our back
    assert "1 Voucher kopi Rp25.000 500p" in phone.dial(text="2*5", session="s-cached")
    api("PUT", "/api/v1/rewards/KOPI25", {"name": "Voucher kopi hemat", "category": "voucher",
                                          "points": 450, "fulfilment": "voucher"})
    assert "1 Voucher kopi hemat 450p" in phone.dial(text="2*5", session="s-after")


def test_a_catalog_stored_without_revision_gets_one(seeded, phone, services):
    services.r.delete(keys.REWARDS_REVISION)  # as data written before revisions existed
    assert "1 Voucher kopi Rp25.000 500p" in phone.dial(text="2*5")
    assert services.r.get(keys.REWARDS_REVISION)
