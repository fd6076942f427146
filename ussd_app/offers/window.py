"""The sending window for offer SMS: Mon-Sat 08:00-18:00 WIB, not on public
holidays (configurable: OFFER_SEND_WINDOW, OFFER_HOLIDAYS)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import holidays

from ussd_app.core.errors import ConfigError
from ussd_app.core.formats import WIB

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class Window:
    always: bool
    days: frozenset = frozenset()
    start: int = 0  # minutes after midnight WIB
    end: int = 0
    extra_holidays: frozenset = frozenset()

    def allows(self, ts: float) -> bool:
        if self.always:
            return True
        t = datetime.fromtimestamp(ts, WIB)
        minute = t.hour * 60 + t.minute
        return (t.weekday() in self.days and self.start <= minute < self.end
                and not _holiday(t.date()) and t.date().isoformat() not in self.extra_holidays)

    def next_open(self, ts: float) -> float:
        """The first moment at or after ``ts`` the window allows."""
        if self.allows(ts):
            return ts
        t = datetime.fromtimestamp(ts, WIB)
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(60):
            opening = day + timedelta(minutes=self.start)
            if opening.timestamp() >= ts and self.allows(opening.timestamp()):
                return opening.timestamp()
            day += timedelta(days=1)
        raise ConfigError("OFFER_SEND_WINDOW allows no time in the next 60 days")


def _holiday(d) -> bool:
    return d in _indonesia(d.year)


@lru_cache(maxsize=8)
def _indonesia(year: int):
    return holidays.country_holidays("ID", years=year)


def parse_window(spec: str, extra_holidays: str = "") -> Window:
    """``Mon-Sat 08:00-18:00`` (days as a range or comma list), or ``always``."""
    extra = frozenset(d.strip() for d in extra_holidays.split(",") if d.strip())
    if spec.strip().lower() == "always":
        return Window(always=True)
    m = re.fullmatch(r"\s*([A-Za-z,\-]+)\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})\s*", spec)
    if not m:
        raise ConfigError("OFFER_SEND_WINDOW must look like 'Mon-Sat 08:00-18:00' or 'always'")
    days = set()
    for part in m.group(1).lower().split(","):
        ends = part.split("-")
        if any(e[:3] not in DAYS for e in ends) or len(ends) > 2:
            raise ConfigError(f"OFFER_SEND_WINDOW has an unknown day in {part!r}")
        a, b = DAYS.index(ends[0][:3]), DAYS.index(ends[-1][:3])
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    start = int(m.group(2)) * 60 + int(m.group(3))
    end = int(m.group(4)) * 60 + int(m.group(5))
    if not 0 <= start < end <= 24 * 60:
        raise ConfigError("OFFER_SEND_WINDOW must start before it ends, within one day")
    return Window(False, frozenset(days), start, end, extra)
