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
    assert hop("4").text.startswith("fruit-4: berapa?")
    assert hop("9").text.startswith("Pilihan tidak dikenal.\nfruit-4")
    reply = hop("3")
    assert (reply.text, reply.end) == ("3 x fruit-4", True)


def test_a_number_selects_only_what_the_page_shows_and_99_goes_back_a_page(hop):
    first = hop("2").text
    assert "7 Buah nomor 07" not in first
    assert hop("7").text.startswith("Pilihan tidak dikenal.\nPilih buah\n1 Buah")  # on page 2, unseen
    second = hop("98").text
    assert "7 Buah nomor 07" in second and "99 Sebelumnya" in second and len(second) <= 160
    assert hop("99").text == first
    assert "99 Sebelumnya" not in first
    assert hop("1").text.startswith("fruit-1: berapa?")


def test_item_numbers_never_equal_a_navigation_key():
    from ussd_app.ussd.engine import NAV_KEYS, item_index, item_number
    numbers = [item_number(i) for i in range(300)]
    assert not {str(n) for n in numbers} & set(NAV_KEYS)
    assert numbers[:97] == list(range(1, 98)) and numbers[97:99] == [100, 101]
    assert [item_index(str(n)) for n in numbers] == list(range(300))
    assert item_index("98") is None and item_index("99") is None and item_index("0") is None


def test_a_list_of_110_numbers_its_items_clear_of_98_and_99():
    many = Screen("main", body=lambda c: "Hadiah", items=lambda c: [Item(i, f"H{i}") for i in range(110)],
                  item_to="main")
    engine = Engine({"main": many}, "main")
    session = Session(id="s", msisdn="+62811", state="main")
    cfg = configuration.load(environ={})
    ctx_of = lambda: Ctx(r=fakeredis.FakeRedis(), config=cfg, session=session, services=None, now=0)
    pages = [engine.start(ctx_of()).text]
    while "98 Berikutnya" in pages[-1]:
        pages.append(engine.step(ctx_of(), "98").text)
    lines = [line for p in pages for line in p.splitlines()[1:] if " H" in line]
    assert [line.split()[0] for line in lines] == [str(n) for n in [*range(1, 98), *range(100, 113)]]
    assert all(len(p) <= 160 for p in pages)


def test_unknown_input_reshows_the_screen_with_an_error(hop):
    reply = hop("7")
    assert reply.text.startswith("Pilihan tidak dikenal.\nMain") and not reply.end


def test_paginate_fits_each_page():
    pages = paginate("Head", [f"{i} item {i}" for i in range(1, 40)], ["0 Kembali"],
                     ["98 Lagi", "99 Balik"], 70)
    assert len(pages) > 3
    for p in pages:
        assert len("\n".join(["Head", *p, "98 Lagi", "99 Balik", "0 Kembali"])) <= 70


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


def test_what_was_read_ahead_is_given_once_and_never_after_an_act():
    """Ctx.ahead: a reply read with the session serves the first screen that
    asks; an answer that acts drops it, so the screen after a consequence
    reads afresh (a STOP, then the offers it stopped)."""
    seen = []

    def body(name):
        def show(ctx):
            seen.append((name, ctx.ahead("offers")))
            return name
        return show

    screens = {s.name: s for s in [
        Screen("main", body=body("main"), options=(Option("1", "main.points", "acted", act=lambda ctx: None),
                                                   Option("2", "main.help", "plain"))),
        Screen("acted", body=body("acted")),
        Screen("plain", body=body("plain")),
    ]}
    engine = Engine(screens, "main")
    session = Session(id="s", msisdn="+62811", state="main")
    cfg = configuration.load(environ={})

    def ctx():
        return Ctx(r=fakeredis.FakeRedis(), config=cfg, session=session, services=None, now=0,
                   cache={"ahead": {"offers": "read with the session"}})

    engine.start(ctx())
    assert seen == [("main", "read with the session")]
    seen.clear()
    engine.step(ctx(), "2")  # no act: the next screen is the first to ask
    assert seen == [("plain", "read with the session")]
    session.state, session.data = "main", {}
    engine.start(ctx())
    seen.clear()
    engine.step(ctx(), "1")  # the screen as shown (read ahead), the act, then a fresh read
    assert seen == [("main", "read with the session"), ("acted", None)]

    def acts_unseen(ctx):
        seen.append(("act", ctx.ahead("offers")))
    screens["main"] = Screen("main", body=lambda ctx: "main", options=(
        Option("1", "main.points", "acted", act=acts_unseen),))
    engine = Engine(screens, "main")
    session.state, session.data = "main", {}
    engine.start(ctx())
    seen.clear()
    engine.step(ctx(), "1")  # the guard read nothing ahead: the act still gets none of it
    assert seen == [("act", None), ("acted", None)]


def test_a_pick_lays_its_page_out_once():
    """A number picks from the page as shown: the page is laid out once for
    both conditions (the number is on it; the screen is as shown)."""
    calls = []
    screens = {s.name: s for s in [
        Screen("main", body=lambda c: calls.append("main") or "Pilih buah", items=fruits, item_to="done"),
        Screen("done", body=lambda c: f"{c.data['main']}", end=True),
    ]}
    engine = Engine(screens, "main")
    session = Session(id="s", msisdn="+62811", state="main")
    cfg = configuration.load(environ={})
    ctx_of = lambda: Ctx(r=fakeredis.FakeRedis(), config=cfg, session=session, services=None, now=0)
    engine.start(ctx_of())
    calls.clear()
    assert engine.step(ctx_of(), "2").text == "fruit-2"
    assert calls == ["main"]
