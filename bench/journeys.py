"""The journeys the benchmarks play: a session's ``text`` after each hop, and
the bench subscribers (``bench/seed.py`` enrols them, each with an open offer)."""

JOURNEYS = {
    "check": ["", "1", "1*0", "1*0*1", "1*0*1*00", "1*0*1*00*1"],
    "redeem": ["", "2", "2*1", "2*1*1", "2*1*1*1", "2*1*1*1*1"],
    "consent": ["", "3", "3*1", "3*1*1", "3*1*1*1", "3*1*1*1*3171014506900001"],
}
SUBSCRIBERS = 5000


def msisdn(i: int) -> str:
    """The ``i``-th bench subscriber (as ``hops.lua`` numbers them too)."""
    return f"+62813{i % SUBSCRIBERS:07d}"
