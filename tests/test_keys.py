from ussd_app.core import keys


def test_subscriber_keys_share_one_hash_slot():
    m = "+6281234567890"
    assert keys.profile(m) == "ussd:{+6281234567890}:profile"
    assert keys.buckets(m) == "ussd:{+6281234567890}:buckets"
    assert keys.bucket_points(m) == "ussd:{+6281234567890}:bucket_points"
    assert keys.ledger(m) == "ussd:{+6281234567890}:ledger"
    assert keys.idempotency(m) == "ussd:{+6281234567890}:idem"
    assert keys.outbox(m) == "ussd:{+6281234567890}:outbox"
    assert keys.sms_seen(m, "abc") == "ussd:{+6281234567890}:sms_seen:abc"
    assert keys.session(m, "s1") == "ussd:{+6281234567890}:session:s1"


def test_global_keys():
    assert keys.SUBSCRIBERS == "ussd:subscribers"
    assert keys.reward("DATA1") == "ussd:reward:DATA1"
