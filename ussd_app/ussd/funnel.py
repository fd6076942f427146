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

The counts themselves are added up in the process (:class:`Counts`) and
written a second later, one HINCRBY a field: a script counting them on every
hop was the heaviest of a hop's Redis work (~41 us of Redis CPU on 7.0). A
report, a sweep and the process's exit write them at once; a ``kill -9``
loses at most the last second of one process's counts (analytics, never
money).
"""
from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass, field

import redis

from ussd_app.core import keys, store

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
FLUSH_SECONDS = 1.0


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


@dataclass
class Tally:
    """What one hop does to the funnel, gathered while it runs and sent in one script."""
    dialect: str
    found: bool = True  # the screen the hop found its session on is still to be left
    held: list[str] = field(default_factory=list)  # leaving that screen
    rest: list[str] = field(default_factory=list)

    def enter(self, screen: str) -> None:
        self.rest.append(f"{self.dialect}|{screen}|{ENTERED}")

    def leave(self, screen: str, outcome: str, dwell: float | None, dialect: str | None = None) -> None:
        """Leaving the screen the hop found counts only if the session was
        still open (not swept, not closed by an end signal); later ones always."""
        fields = self.held if self.found else self.rest
        self.found = False
        fields.append(f"{dialect or self.dialect}|{screen}|{outcome}")
        if dwell is not None:
            fields.append(f"{dialect or self.dialect}|{screen}|~{bucket(dwell)}")

    def commands(self, remove: str, add: str, now: float) -> tuple:
        """Moving the session among the open ones (``remove`` its entry
        before the hop, ``add`` its entry after: '' for none), for the round
        trip that saves the session; their replies go to :meth:`count`. An
        entry that stays (the same screen) is only scored again: the hop
        leaves nothing then."""
        moves = (("ZREM", keys.FUNNEL_OPEN, remove),) if remove and remove != add else ()
        return (*moves, ("ZADD", keys.FUNNEL_OPEN, int(now), add)) if add else moves

    def count(self, counts: Counts, now: float, remove: str, add: str, replies: list) -> None:
        """Add the hop's counts; leaving the screen it found counts only if
        this hop took the session's entry (its ZREM, the first of ``replies``)."""
        taken = not self.held or not remove or remove == add or replies[0] == 1
        counts.add(day(now), self.held + self.rest if taken else self.rest)


class Counts:
    """One process's funnel counts not yet in Redis (``r``), written at most
    FLUSH_SECONDS after the first of them (a timer), at a report or sweep,
    and at exit. What fails to be written is kept for the next time."""

    def __init__(self, r: redis.Redis):
        self.r = r
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str], int] = {}  # (day, field) -> count
        self.timer: threading.Timer | None = None

    def add(self, day: str, fields: list[str]) -> None:
        if not fields:
            return
        with self.lock:
            pending = self.pending
            for name in fields:
                pending[day, name] = pending.get((day, name), 0) + 1
            self._schedule()

    def _schedule(self) -> None:
        """(Holding the lock.) A timer to write what is pending, if none runs."""
        if self.timer is None and self.pending:
            self.timer = threading.Timer(FLUSH_SECONDS, self._due)
            self.timer.daemon = True
            self.timer.start()

    def _due(self) -> None:
        try:
            self.flush()
        except Exception:  # kept, and tried again by the next timer
            log.warning("writing the funnel's counts failed; kept for the next try", exc_info=True)

    def flush(self) -> None:
        """Write what is pending: one HINCRBY a field, one EXPIRE a day."""
        with self.lock:
            pending, self.pending, self.timer = self.pending, {}, None
        if not pending:
            return
        commands = [("HINCRBY", keys.funnel_day(d), name, n) for (d, name), n in pending.items()]
        commands += [("EXPIRE", keys.funnel_day(d), RETENTION_SECONDS) for d in {d for d, _ in pending}]
        try:
            store.batch(self.r, commands)
        except BaseException:
            with self.lock:
                for key, n in pending.items():
                    self.pending[key] = self.pending.get(key, 0) + n
                self._schedule()
            raise

    def close(self) -> None:
        """Write what is pending, or drop it if Redis does not take it: an
        app torn down writes nothing later (a test's Redis is the next one's)."""
        _live.discard(self)
        try:
            self.flush()
        except Exception:
            log.warning("the funnel's last counts were dropped", exc_info=True)
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
            self.pending, self.timer = {}, None

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
                    self.add(day(last), [f"{dialect}|{screen}|{TIMEOUT}"])
                    total += 1
            if len(stale) < batch:
                break
        self.flush()
        return total


_live: weakref.WeakSet[Counts] = weakref.WeakSet()


def _close_all() -> None:
    """At exit: every process's last counts written (or dropped), as :meth:`Counts.close` does."""
    for counts in list(_live):
        counts.close()


def _forked() -> None:
    """A forked child starts empty: what it inherited is its parent's to write,
    and the parent's timer thread is not in it."""
    for counts in list(_live):
        counts._reset()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_forked)


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
