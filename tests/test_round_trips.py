"""What a screen costs in Redis round trips on one server: a hop reads the
session with the account and what the busiest screens read (the catalog's and
the campaigns' revisions, the caller's offers) in one round trip of plain
reads (the account's), and writes it back in another round trip. Round trips are what a hop pays most for (docs/benchmark.md), so a
screen that starts reading for itself shows up here. (That a screen after a
consequence reads afresh: tests/test_engine.py.)"""
import threading

import pytest

from phones import Phone
from ussd_app.core import store

MSISDN = "081234567890"  # a demo subscriber with points and an open offer
# A hop's read: the profile, the live buckets and their points, the offers,
# then the session, the pointer and the revisions (no script: the same reads as a
# script cost Redis almost four times their command time, docs/benchmark.md)
READ = ["HMGET", "ZRANGEBYSCORE", "HGETALL", "HGETALL", "MGET"]


@pytest.fixture
def trips(monkeypatch):
    """The round trips this thread makes (the ticker's writes are its own)."""
    made, me, real = [], threading.get_ident(), store._exchange

    def exchange(conn, commands):
        if threading.get_ident() == me:
            made.append([str(c[0]) for c in commands])
        return real(conn, commands)
    monkeypatch.setattr(store, "_exchange", exchange)
    return made


def hop(trips, phone, *typed) -> int:
    trips.clear()
    phone.type(*typed)
    return len(trips)


def test_the_list_and_offer_screens_read_nothing_of_their_own(client, demo_data, trips):
    warm = Phone(client, msisdn="081234567891")
    warm.dial("2*1"), warm.type("00"), warm.dial("3")  # the server learns the scripts, the process keeps the catalog
    phone = Phone(client, msisdn=MSISDN)
    trips.clear()
    phone.dial()
    assert len(trips) == 2
    assert hop(trips, phone, 1) == 2        # points
    assert hop(trips, phone, "00") == 2
    assert hop(trips, phone, 2) == 2        # reward categories
    assert hop(trips, phone, 1) == 2        # a category's rewards
    assert hop(trips, phone, "00") == 2
    assert hop(trips, phone, 3) == 2        # the caller's offers
    assert hop(trips, phone, 1) == 2        # an offer
    assert hop(trips, phone, 1) == 2        # its disclosure
    assert hop(trips, phone, 1) == 2        # the NIK prompt


def test_a_confirmation_reads_its_terms_from_the_kept_catalog(client, demo_data, trips):
    """The confirmation's "1" charges the quoted terms: the definition is the
    process's copy at the revision read with the session, the units left are
    the stock hold's to check (no read of its own before the debit)."""
    Phone(client, msisdn="081234567891").dial("2*1*1")
    phone = Phone(client, msisdn=MSISDN)
    phone.dial("2*1*1")
    assert phone.type(1).startswith("Tukar 1x"), phone.screen
    trips.clear()
    phone.type(1)
    assert "diproses" in phone.screen or "berhasil" in phone.screen, phone.screen
    # The session read with the account, the hold, then the debit's script.
    assert trips[:3] == [READ, ["ZADD", "EVALSHA"], ["EVALSHA"]], trips


def test_a_consent_counts_the_attempt_and_reads_the_offer_and_the_credit_score_in_one_round_trip(
        client, demo_data, trips):
    """The NIK's answer counts an attempt (the hour's limit) and acts: the
    offers (read afresh: what was read with the session is dropped before a
    consequence) and the credit score the consent records come with the
    attempt's count in one round trip, not one each."""
    Phone(client, msisdn="081234567891").dial("3*1*1*1*3174054112950004")  # the server learns the scripts
    phone = Phone(client, msisdn=MSISDN)
    phone.dial("3*1*1*1")
    assert "NIK" in phone.screen, phone.screen
    trips.clear()
    phone.type("3174054112950003")
    assert "Bank" in phone.screen or "dikirim" in phone.screen, phone.screen
    reads = [t for t in trips if "INCR" in t or "HGETALL" in t]
    assert reads == [READ, ["INCR", "EXPIRE", "HGETALL", "GET", "HGETALL"]], trips
    # the session with the account; the attempt and the reads; the consent's
    # scripts; the confirmation SMS's record (the console provider); the session
    assert len(trips) == 5, [[str(c) for c in t] for t in trips]
