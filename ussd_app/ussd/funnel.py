"""Where subscribers drop off: per screen, how many sessions entered it and
how they left it (``next``, ``completed``, ``timeout``, ``released``,
``error``), with the median seconds spent on it.

Stored per day (WIB) in one hash (``keys.funnel_day``): a counter per
``<dialect>|<screen>|<outcome>`` (``entered`` too) and a dwell histogram per
``<dialect>|<screen>|~<seconds>`` in bounded buckets, so a day holds at most
dialects x screens x (6 + len(BUCKETS)) fields however many sessions it
saw, and expires RETENTION_DAYS after its last write. Open sessions sit in one
sorted set (``keys.FUNNEL_OPEN``) scored by their last hop: a hop moves its
session's entry there in the same script that counts it; an end signal
removes it; :func:`sweep` counts what had no hop for a session's lifetime as a
timeout (silent expiry) on the day of its last hop. A hop adds one command
(this module's script) to the round trip that saves its session.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import redis

from ussd_app.core import keys, store
from ussd_app.core.store import Script

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

# KEYS[1] the day's counters  KEYS[2] the open sessions
# ARGV[1] the open entry to remove ('' none)  ARGV[2] the open entry to add ('' none)
# ARGV[3] its score (the hop's time)  ARGV[4] the day's TTL (s)
# ARGV[5] fields that count only if ARGV[1] was still open (not swept, nor
#         closed by an end signal: what leaves a screen counts once)
# ARGV[6] fields that count in any case
# (fields: each incremented by one, separated by a line break; one argument
# each costs the hop less to send than one argument a field)
# Returns 1 if ARGV[1] was open (or none was given), else 0.
RECORD = Script("""
local open = 1
if ARGV[1] ~= '' then open = redis.call('ZREM', KEYS[2], ARGV[1]) end
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
local counted = false
for i = (open == 1 and 5 or 6), 6 do
  for name in string.gmatch(ARGV[i], '[^\\n]+') do
    redis.call('HINCRBY', KEYS[1], name, 1)
    counted = true
  end
end
if counted then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return open
""")


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

    def command(self, now: float, remove: str, add: str) -> tuple:
        """The script's command, for the round trip that saves the session."""
        return RECORD.command([keys.funnel_day(day(now)), keys.FUNNEL_OPEN],
                              [remove, add, int(now), RETENTION_SECONDS,
                               "\n".join(self.held), "\n".join(self.rest)])


def sweep(r: redis.Redis, now: float, lifetime: float, batch: int = 1000) -> int:
    """Count as a timeout every open session without a hop for ``lifetime``
    seconds (its document has expired), once; returns how many."""
    RECORD.load(r)
    total = 0
    while True:
        stale = r.zrangebyscore(keys.FUNNEL_OPEN, "-inf", now - lifetime, start=0, num=batch,
                                withscores=True)
        if not stale:
            return total
        pipe = r.pipeline(transaction=False)
        for entry, last in stale:
            dialect, screen, _ = entry.split("|", 2)
            RECORD.queue(pipe, [keys.funnel_day(day(last)), keys.FUNNEL_OPEN],
                         [entry, "", 0, RETENTION_SECONDS, f"{dialect}|{screen}|{TIMEOUT}", ""])
        total += sum(pipe.execute())
        if len(stale) < batch:
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
