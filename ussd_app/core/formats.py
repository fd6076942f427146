"""How numbers and times are written for subscribers (Indonesian conventions)."""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

WIB = ZoneInfo("Asia/Jakarta")


def points(n: int, lang: str = "id") -> str:
    """12500 -> '12.500' in Indonesian, '12,500' in English."""
    return f"{n:,}" if lang == "en" else f"{n:,}".replace(",", ".")


@lru_cache(maxsize=4096)  # expiry dates repeat across subscribers and hops
def wib(ts: float | datetime) -> str:
    """An instant as 'DD-MM-YYYY HH:MM WIB'."""
    dt = datetime.fromtimestamp(ts, timezone.utc) if not isinstance(ts, datetime) else ts
    return dt.astimezone(WIB).strftime("%d-%m-%Y %H:%M WIB")


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 in WIB, for the JSON API."""
    return datetime.fromtimestamp(ts, WIB).isoformat(timespec="seconds")


def parse_iso(value: str) -> float:
    """ISO 8601 (with offset; naive means WIB) -> epoch seconds; ValueError if not."""
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=WIB)
    return dt.timestamp()


NEAR_YEARS = 10
"""How far from now a date an operator sends may lie (expiries, campaign and
reward windows): further is a typo, and year 9999 cannot even be written in WIB."""


def near(ts: float, now: float, years: int = NEAR_YEARS) -> bool:
    """``ts`` lies within ``years`` of ``now``, before or after."""
    return abs(ts - now) <= years * 365.25 * 86400


def parse_near(value, now: float, years: int = NEAR_YEARS) -> float:
    """Like :func:`parse_iso`, for a time within ``years`` of ``now`` (ValueError if not)."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("not an ISO 8601 time")
    try:
        ts = parse_iso(value)
    except OverflowError:
        raise ValueError("out of range") from None
    if not near(ts, now, years):
        raise ValueError(f"more than {years} years from now")
    return ts
