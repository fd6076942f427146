import redis

from ussd_app.core import keys


def test_repeated_hop_returns_the_stored_reply_and_acts_once(phone, services):
    phone.dial()
    first = phone.type(5)
    phone.type(2)  # English
    again = phone.resend()
    assert again == phone.screen
    session = services.r.get(keys.session("+6281234567890", phone.session))
    assert '"hops":3' in session  # the resend did not count as a hop
    assert first.startswith("Pilih bahasa")


def test_first_hop_twice(phone):
    session = "dup-first"
    a = phone.dial(session=session)
    b = phone.dial(session=session)
    assert a == b
    assert phone.type(1).startswith("Poin Anda") or "belum terdaftar" in phone.screen


def test_stale_retry_of_an_earlier_hop_changes_nothing(phone):
    phone.dial()
    phone.type(4, 1)
    latest = phone.screen
    phone.inputs = []
    phone.type(4)  # the gateway posts text "4" again
    assert phone.screen == latest


def test_another_number_never_reaches_the_session(client, phone):
    """Sessions are kept per subscriber: another number posting the same
    session id gets a session of its own, never the owner's screens."""
    phone.dial(session="owned")
    phone.type(4)
    resp = client.post("/ussd", data={"sessionId": "owned", "serviceCode": "*700#",
                                      "phoneNumber": "081299999999", "text": "1"})
    assert "belum terdaftar" in resp.get_data(as_text=True)  # its own dial, typed ahead: 1
    assert phone.type(1).startswith("Poin Plus: kumpulkan poin")


def test_shortcut_dial_lands_on_check_points(phone):
    screen = phone.dial(text="1")
    assert "Poin Anda" in screen or "belum terdaftar" in screen


def test_shortcut_dial_with_several_inputs(phone):
    assert phone.dial(text="4*4").startswith("Email: support.indonesia@trustingsocial.com")


def test_session_has_a_ttl(phone, services):
    phone.dial()
    ttl = services.r.ttl(keys.session("+6281234567890", phone.session))
    assert 0 < ttl <= services.config.USSD_SESSION_TTL


def test_gateway_sending_only_the_latest_input(client):
    form = {"sessionId": "latest", "serviceCode": "*700#", "phoneNumber": "081234567890"}
    client.post("/ussd", data={**form, "text": ""})
    client.post("/ussd", data={**form, "text": "4"})
    body = client.post("/ussd", data={**form, "text": "3"}).get_data(as_text=True)
    assert "Poin berlaku s.d. 31 Desember" in body


def test_redis_down_ends_politely(app, phone, services, monkeypatch):
    monkeypatch.setattr(services, "r", redis.Redis(port=1, socket_connect_timeout=0.2))
    screen = phone.dial()
    assert phone.end and "layanan sedang sibuk" in screen


def test_hop_survives_a_script_flush(phone, services):
    phone.dial()
    services.r.script_flush()
    assert phone.type(1).startswith(("Poin Anda", "Nomor Anda belum terdaftar"))
