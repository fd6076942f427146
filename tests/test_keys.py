from redis.crc import key_slot

from ussd_app.core import keys


def test_subscriber_keys_share_one_hash_slot():
    m = "+6281234567890"
    every = [keys.profile(m), keys.buckets(m), keys.bucket_points(m), keys.ledger(m),
             keys.idempotency(m), keys.outbox(m), keys.sms_seen(m, "abc"), keys.session(m, "s1"),
             keys.resume(m)]
    # the slot Redis Cluster computes (CRC16 of the {hash tag}), not the strings' look
    assert {key_slot(k.encode()) for k in every} == {key_slot(b"{" + m.encode() + b"}")}
    assert key_slot(keys.profile(m).encode()) != key_slot(keys.profile("+6281234567891").encode())
    assert keys.profile(m) == "ussd:{+6281234567890}:profile"
    assert keys.buckets(m) == "ussd:{+6281234567890}:buckets"
    assert keys.bucket_points(m) == "ussd:{+6281234567890}:bucket_points"
    assert keys.ledger(m) == "ussd:{+6281234567890}:ledger"
    assert keys.idempotency(m) == "ussd:{+6281234567890}:idem"
    assert keys.outbox(m) == "ussd:{+6281234567890}:outbox"
    assert keys.sms_seen(m, "abc") == "ussd:{+6281234567890}:sms_seen:abc"
    assert keys.session(m, "s1") == "ussd:{+6281234567890}:session:s1"
    assert keys.resume(m) == "ussd:{+6281234567890}:resume"


def test_global_keys():
    assert keys.funnel_day("2025-01-31") == "ussd:{funnel}:day:2025-01-31"
    assert keys.FUNNEL_OPEN == "ussd:{funnel}:open"
    assert keys.SUBSCRIBERS == "ussd:subscribers"
    assert keys.reward("DATA1") == "ussd:reward:DATA1"
