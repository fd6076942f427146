import logging


def test_hop_log_masks_the_msisdn(phone, caplog):
    with caplog.at_level(logging.INFO, logger="ussd_app.hops"):
        phone.dial()
        phone.type(1)
        phone.sms("POIN")
    lines = [r.getMessage() for r in caplog.records if r.name == "ussd_app.hops"]
    assert len(lines) == 3
    assert '"msisdn": "+62812*****890"' in lines[1]
    assert '"before": "main", "after": "points"' in lines[1]
    assert all("81234567890" not in line for line in lines)
