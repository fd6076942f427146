"""What the simulators send for what no hop carries: the end of a session.

Africa's Talking tells the app a session ended (the user hung up, or it timed
out) through its end-of-session notification, ``POST /ussd/events``.
"""
from __future__ import annotations

import time

EVENTS_PATH = "/ussd/events"


def africastalking_end(session_id: str, msisdn: str, code: str, reason: str, text: str = "",
                       hops: int = 0, last_reply: str = "", started: float | None = None) -> dict:
    """The notification's form for a session ended by ``reason`` (hangup or timeout)."""
    now = time.time()
    return {"sessionId": session_id, "phoneNumber": msisdn, "serviceCode": code,
            "status": "Incomplete" if reason == "hangup" else "Failed",
            "input": text, "hopsCount": str(hops),
            "durationInMillis": str(int((now - (started or now)) * 1000)),
            "errorMessage": "" if reason == "hangup" else "session timed out",
            "lastAppResponse": last_reply, "cost": "0",
            "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))}


def told(status: int) -> bool | None:
    """True: the app took the notification; None: it has no such route (an
    older server is simply not told); False: it refused it."""
    if status in (404, 405):
        return None
    return 200 <= status < 300
