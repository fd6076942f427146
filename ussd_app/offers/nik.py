"""NIK (Nomor Induk Kependudukan): validation."""
from __future__ import annotations

from datetime import date

from ussd_app.core import digits

PROVINCES = frozenset(
    [11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53,
     61, 62, 63, 64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96])


def problem(nik: str) -> str | None:
    """Why ``nik`` is not a valid NIK (a text key suffix), or None."""
    if not digits.only(nik, 16):  # ASCII only: '３' and '²' are no digits here
        return "length"
    if int(nik[:2]) not in PROVINCES:
        return "province"
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    if day > 40:  # women add 40 to the day
        day -= 40
    if not any(_real_date(century + yy, month, day) for century in (1900, 2000)):
        return "date"
    if nik[12:] == "0000":
        return "serial"
    return None


def _real_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True
