"""The journeys the benchmarks play: a session's ``text`` after each hop (as
Africa's Talking sends it), each hop as any dialect sends it, and the bench
subscribers (``bench/seed.py`` enrols them, each with an open offer)."""
import json
from urllib.parse import quote

JOURNEYS = {
    "check": ["", "1", "1*0", "1*0*1", "1*0*1*00", "1*0*1*00*1"],
    "redeem": ["", "2", "2*1", "2*1*1", "2*1*1*1", "2*1*1*1*1"],
    "consent": ["", "3", "3*1", "3*1*1", "3*1*1*1", "3*1*1*1*3171014506900001"],
}
SUBSCRIBERS = 5000
SID, MSISDN = "SIDXSID", "MSISDNXMSISDN"  # stand-ins a hop's sender replaces


def msisdn(i: int) -> str:
    """The ``i``-th bench subscriber (as ``hops.lua`` numbers them too)."""
    return f"+62813{i % SUBSCRIBERS:07d}"


def hops(journey: str, dialect: str = "africastalking") -> list[tuple[str, str, str]]:
    """Each hop of ``journey`` as ``dialect``'s gateway posts it: (path,
    content type, body), with SID and MSISDN standing for the session and the
    caller (in a form body the caller goes url-encoded)."""
    from ussd_app.gateways import DIALECTS

    gateway = DIALECTS[dialect]
    out = []
    for n, text in enumerate(JOURNEYS[journey]):
        inputs = text.split("*") if text else []
        path, content_type, body = gateway.encode(
            SID, MSISDN, "*700#", inputs if n == 0 else inputs[:-1],
            None if n == 0 else inputs[-1], "dial" if n == 0 else "input")
        if content_type == "application/x-www-form-urlencoded":
            body = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in body.items())
        elif not isinstance(body, str):
            body = json.dumps(body)
        out.append((path, content_type, body))
    return out
