"""The engine on a small synthetic graph (our logic only: fakeredis)."""
import fakeredis
import pytest

from ussd_app.core import config as configuration, digits
from ussd_app.ussd.engine import Engine, paginate
from ussd_app.ussd.screens import Ctx, InputError, Item, Option, Screen
from ussd_app.ussd.sessions import Session


def fruits(ctx):
    return [Item(f"fruit-{i}", f"Buah nomor {i:02d}") for i in range(1, 31)]


def quantity(ctx, text):
    if digits.number(text, 1, 5) is None:
        raise InputError("error.invalid_choice")
    return int(text)


SCREENS = {s.name: s for s in [
    Screen("main", body=lambda c: "Main", options=(Option("1", "main.points", "a"),
                                                   Option("2", "main.help", "b"))),
    Screen("a", body=lambda c: "A", options=(Option("1", "main.help", "b"),)),
    Screen("b", body=lambda c: "Pilih buah", items=fruits, item_to="qty"),
    Screen("qty", body=lambda c: f"{c.data['b']}: berapa?", parse=quantity, parse_to="done"),
    Screen("done", body=lambda c: f"{c.data['qty']} x {c.data['b']}", end=True),
]}


@pytest.fixture
def hop():
    engine = Engine(SCREENS, "main")
    session = Session(id="s", msisdn="+62811", state="main")
    cfg = configuration.load(environ={})
    ctx_of = lambda: Ctx(r=fakeredis.FakeRedis(), config=cfg, session=session, services=None, now=0)
    engine.start(ctx_of())

    def send(text):
        return engine.step(ctx_of(), text)
    send.session = session
    return send


def test_back_follows_the_history_not_a_fixed_parent(hop):
    hop("1"), hop("1")               # main -> a -> b
    assert hop.session.history == ["main", "a"]
    assert hop("0").text.startswith("A")
    assert hop("0").text.startswith("Main")


def test_double_zero_goes_home(hop):
    hop("2")
    assert hop("00").text == "Main\n1 Cek poin\n2 Bantuan"
    assert hop.session.history == []


def test_lists_page_with_98_and_every_page_fits(hop):
    first = hop("2").text
    assert "98 Berikutnya" in first and len(first) <= 160
    second = hop("98").text
    assert "Buah nomor 01" not in second and len(second) <= 160
    pages = [first, second]
    while "98 Berikutnya" in pages[-1]:
        pages.append(hop("98").text)
    assert "Buah nomor 30" in pages[-1]
    assert hop("98").text.startswith("Pilih")  # past the last page: an error line, same page
    numbered = [line.split(" ")[0] for p in pages for line in p.splitlines()[1:] if "Buah" in line]
    assert numbered == [str(i) for i in range(1, 31)]


def test_item_choice_then_free_input(hop):
    hop("2")
    assert hop("7").text.startswith("fruit-7: berapa?")
    assert hop("9").text.startswith("Pilihan tidak dikenal.\nfruit-7")
    reply = hop("3")
    assert (reply.text, reply.end) == ("3 x fruit-7", True)


def test_unknown_input_reshows_the_screen_with_an_error(hop):
    reply = hop("7")
    assert reply.text.startswith("Pilihan tidak dikenal.\nMain") and not reply.end


def test_paginate_fits_each_page():
    pages = paginate("Head", [f"{i} item {i}" for i in range(1, 40)], ["0 Kembali"], "98 Lagi", 60)
    assert len(pages) > 3
    for p in pages:
        assert len("\n".join(["Head", *p, "98 Lagi", "0 Kembali"])) <= 60


def test_one_machine_per_process(services):
    from ussd_app.services import engine
    assert services.engine is engine()


def test_an_error_line_that_would_overflow_replaces_the_text():
    long = Screen("main", body=lambda c: "L" * 150, options=(Option("1", "main.points", "main"),))
    engine = Engine({"main": long}, "main")
    session = Session(id="s", msisdn="+62811", state="main")
    ctx = Ctx(r=fakeredis.FakeRedis(), config=configuration.load(environ={}), session=session,
              services=None, now=0)
    reply = engine.step(ctx, "7")
    assert reply.text == "Pilihan tidak dikenal.\n1 Cek poin"
