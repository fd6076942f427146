"""Where subscribers drop off: per screen, how many sessions entered it and
how they left it (``next``, ``completed``, ``timeout``, ``released``,
``error``), with the median seconds spent on it.

Stored per day (WIB) in one hash (``keys.funnel_day``): a counter per
``<dialect>|<screen>|<outcome>`` (``entered`` too) and a dwell histogram per
``<dialect>|<screen>|~<seconds>`` in bounded buckets, so a day holds at most
dialects x screens x (6 + len(BUCKETS)) fields however many sessions it
saw, and expires RETENTION_DAYS after its last write. Open sessions sit in one
sorted set (``keys.FUNNEL_OPEN``) scored by their last hop: a hop moves its
session's entry there (ZREM, ZADD) in the round trip that saves its session;
an end signal removes it; :meth:`Counts.sweep` counts what had no hop for a
session's lifetime as a timeout (silent expiry) on the day of its last hop.
Who removes an entry counts its leaving, once.

A hop says what it did (:class:`Move`: the screen before, the screens
entered, how the session closed); :class:`Counts` works out the commands and
the counts from it. The counts are added up in the process and written by its
ticker (:mod:`ussd_app.core.ticker`, the metrics' too) within a second, one
HINCRBY a field: a script counting them on every hop was the heaviest of a
hop's Redis work (~41 us of Redis CPU on 7.0). A report, a sweep and the
process's exit write them at once; a ``kill -9`` loses at most the last
second of one process's counts (analytics, never money).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import redis

from ussd_app.core import keys, store, ticker

log = logging.getLogger(__name__)

NEXT, COMPLETED, TIMEOUT, RELEASED, ERROR = "next", "completed", "timeout", "released", "error"
OUTCOMES = (NEXT, COMPLETED, TIMEOUT, RELEASED, ERROR)
ENTERED = "entered"
RETENTION_DAYS = 40
RETENTION_SECONDS = RETENTION_DAYS * 86400
WIB_OFFSET = 7 * 3600  # Asia/Jakarta keeps no daylight saving
# Dwell buckets (lower bounds, seconds): by 1 s under 30 s, by 5 s to 2 min,
# by 15 s to 5 min, then one bucket.
BUCKETS = (*range(0, 30), *range(30, 120, 5), *range(120, 300, 15), 300)
MAX_DAYS = 366


_day_span = [0.0, 0.0, ""]  # this process's current WIB day: [start, end, 'YYYY-MM-DD']


def day(ts: float) -> str:
    """The WIB day of ``ts`` as ``YYYY-MM-DD`` (the current one kept per process)."""
    if _day_span[0] <= ts < _day_span[1]:
        return _day_span[2]
    name = time.strftime("%Y-%m-%d", time.gmtime(ts + WIB_OFFSET))
    start = (ts + WIB_OFFSET) // 86400 * 86400 - WIB_OFFSET
    _day_span[:] = [start, start + 86400, name]
    return name


def bucket(seconds: float) -> int:
    """The dwell bucket (its lower bound) of ``seconds``."""
    s = max(0.0, seconds)
    if s < 30:
        return int(s)
    if s < 120:
        return 30 + int((s - 30) // 5) * 5
    if s < 300:
        return 120 + int((s - 120) // 15) * 15
    return 300


def member(dialect: str, screen: str, msisdn: str, session_id: str) -> str:
    """A session's entry among the open ones (``keys.FUNNEL_OPEN``)."""
    return f"{dialect}|{screen}|{msisdn}|{session_id}"


class Move(NamedTuple):
    """What one hop did to its session, as :mod:`ussd_app.ussd.hop` says it:
    the screen it found the session on (None: a new session) and how long the
    session had been on it, the screens it entered (in order), and how the
    session closed (None: it goes on). ``dropped``: on a redial, the
    (dialect, screen, session id) of the session the resume pointer named,
    which has dropped (its screen counts a timeout)."""
    dialect: str
    msisdn: str
    session_id: str
    before: str | None
    dwell: float
    entered: tuple[str, ...] = ()
    closed: str | None = None
    dropped: tuple[str, str, str] | None = None

    @property
    def after(self) -> str | None:
        return self.entered[-1] if self.entered else self.before


class Counts:
    """One process's funnel counts not yet in Redis (``r``): a hop's
    :meth:`commands` move its session among the open ones in the round trip
    that saves it, :meth:`count` adds up what the hop did, and the process's
    ticker writes the counts each second (as at a report, a sweep, and exit).
    What fails to be written is kept for the next time."""

    def __init__(self, r: redis.Redis):
        self.r = r
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        ticker.every_second(self.flush)

    def _reset(self) -> None:
        """(A forked child starts empty: what it inherited is its parent's to write.)"""
        self.lock = threading.Lock()
        self.pending: dict[tuple, int] = {}  # (day, dialect, screen, what) -> count

    @staticmethod
    def commands(move: Move, now: float) -> tuple:
        """The commands that move the session among the open ones: ZREM the
        entry the hop took (the session's, or on a redial the dropped one's),
        ZADD the one it leaves (scored by this hop; none once it closed); a
        session that stays on its screen is only scored again. Their replies
        go to :meth:`count`."""
        msisdn, session_id, dialect = move.msisdn, move.session_id, move.dialect
        if move.dropped is not None:
            took = member(move.dropped[0], move.dropped[1], msisdn, move.dropped[2])
        else:
            took = member(dialect, move.before, msisdn, session_id) if move.before else ""
        if move.closed:
            return (("ZREM", keys.FUNNEL_OPEN, took),) if took else ()
        left = member(dialect, move.entered[-1] if move.entered else move.before, msisdn, session_id)
        add = ("ZADD", keys.FUNNEL_OPEN, int(now), left)
        return (("ZREM", keys.FUNNEL_OPEN, took), add) if took and took != left else (add,)

    def count(self, move: Move, now: float, commands: tuple, replies: list) -> None:
        """Add what the hop did, given its :meth:`commands` and their
        replies. Leaving the screen it found counts only if this hop took the
        session's entry (where it sent a ZREM, that ZREM removed it): a sweep
        or an end signal may have counted it already."""
        taken = not commands or commands[0][0] != "ZREM" or replies[0] == 1
        d, dialect, entered, closed = day(now), move.dialect, move.entered, move.closed
        counted = []
        if move.dropped is not None:
            if taken and commands:
                counted.append((d, move.dropped[0], move.dropped[1], TIMEOUT))
        elif taken and move.before is not None and (entered or closed):
            counted += ((d, dialect, move.before, NEXT if entered else closed),
                        (d, dialect, move.before, f"~{bucket(move.dwell)}"))
        last = len(entered) - 1
        for i, screen in enumerate(entered):
            counted.append((d, dialect, screen, ENTERED))
            if i < last or closed:  # entered this hop and left at once
                counted += ((d, dialect, screen, NEXT if i < last else closed), (d, dialect, screen, "~0"))
        if counted:
            with self.lock:
                pending = self.pending
                for key in counted:
                    pending[key] = pending.get(key, 0) + 1

    def add(self, day: str, dialect: str, screen: str, what: str) -> None:
        with self.lock:
            key = (day, dialect, screen, what)
            self.pending[key] = self.pending.get(key, 0) + 1

    def flush(self) -> None:
        """Write what is pending: one HINCRBY a field, one EXPIRE a day."""
        with self.lock:
            pending, self.pending = self.pending, {}
        if not pending:
            return
        commands = [("HINCRBY", keys.funnel_day(d), f"{dialect}|{screen}|{what}", n)
                    for (d, dialect, screen, what), n in pending.items()]
        commands += [("EXPIRE", keys.funnel_day(d), RETENTION_SECONDS) for d in {k[0] for k in pending}]
        try:
            store.batch(self.r, commands)
        except BaseException:
            with self.lock:
                for key, n in pending.items():
                    self.pending[key] = self.pending.get(key, 0) + n
            raise

    def close(self) -> None:
        """Write what is pending, or drop it if Redis does not take it: an
        app torn down writes nothing later (a test's Redis is the next one's)."""
        ticker.forget(self.flush)
        try:
            self.flush()
        except Exception:
            log.warning("the funnel's last counts were dropped", exc_info=True)
        with self.lock:
            self.pending = {}

    def sweep(self, now: float, lifetime: float, batch: int = 1000) -> int:
        """Count as a timeout every open session without a hop for ``lifetime``
        seconds (its document has expired), once; write the counts; returns
        how many."""
        total = 0
        while True:
            stale = self.r.zrangebyscore(keys.FUNNEL_OPEN, "-inf", now - lifetime, start=0, num=batch,
                                         withscores=True)
            removed = store.batch(self.r, [("ZREM", keys.FUNNEL_OPEN, entry) for entry, _ in stale])
            for (entry, last), taken in zip(stale, removed):
                if taken:
                    dialect, screen, _ = entry.split("|", 2)
                    self.add(day(last), dialect, screen, TIMEOUT)
                    total += 1
            if len(stale) < batch:
                break
        self.flush()
        return total


@dataclass
class Row:
    screen: str
    entered: int = 0
    left: dict = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    dwell: dict = field(default_factory=dict)  # bucket -> count

    @property
    def median_seconds(self) -> int | None:
        """The median time on the screen, to its bucket, over the exits whose
        time is known (a silent expiry has none)."""
        n = sum(self.dwell.values())
        if not n:
            return None
        seen, middle = 0, math.ceil(n / 2)
        for b in sorted(self.dwell):
            seen += self.dwell[b]
            if seen >= middle:
                return b
        return None

    def public(self) -> dict:
        return {"screen": self.screen, "entered": self.entered, **self.left,
                "still_open": max(0, self.entered - sum(self.left.values())),
                "median_seconds": self.median_seconds}


def days(start: float, end: float) -> list[str]:
    """The WIB days from ``start`` to ``end``, both included (at most MAX_DAYS)."""
    first = (start + WIB_OFFSET) // 86400
    last = (end + WIB_OFFSET) // 86400
    if last < first:
        return []
    if last - first >= MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days at a time")
    return [time.strftime("%Y-%m-%d", time.gmtime(d * 86400)) for d in range(int(first), int(last) + 1)]


def report(r: redis.Redis, start: float, end: float, dialect: str | None = None) -> list[Row]:
    """Per screen, the days from ``start`` to ``end`` (WIB days, whole): one
    HGETALL a day, whatever the number of sessions."""
    rows: dict[str, Row] = {}
    replies = store.roundtrip(r, *[("HGETALL", keys.funnel_day(d)) for d in days(start, end)])
    for flat in replies:
        for name, count in store.pairs(flat).items():
            d, screen, what = name.split("|", 2)
            if dialect and d != dialect:
                continue
            row = rows.setdefault(screen, Row(screen))
            if what == ENTERED:
                row.entered += int(count)
            elif what.startswith("~"):
                b = int(what[1:])
                row.dwell[b] = row.dwell.get(b, 0) + int(count)
            elif what in row.left:
                row.left[what] += int(count)
    return sorted(rows.values(), key=lambda row: (-row.entered, row.screen))
