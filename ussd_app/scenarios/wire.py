"""What the simulators send as a gateway, and what the phone shows of the reply.

Every request (a dial, an input, a hang-up, a time-out) is built by the
dialect's own encoder (``ussd_app.gateways.<dialect>.encode``), so a
simulated time-out is what that gateway sends for one: Africa's Talking's
end-of-session notification with status ``Incomplete`` on ``/ussd/events``,
Hubtel's ``Type: Timeout``, TruRoute's type 4; Nalo and Arkesel send nothing
(the session simply gets no further hop). After the app's last screen,
Africa's Talking sends its notification too (``Success``); the others
nothing. A reply is read by the dialect's own decoder into the screen the
phone shows.
"""
from __future__ import annotations

from ussd_app.gateways import DIALECTS

NOTIFY_COMPLETED = {"africastalking"}  # tells the app of a session it ended, too (status Success)
REASONS = {"hangup": "release", "timeout": "timeout", "completed": "completed"}


def _inputs(text: str) -> list[str]:
    return text.split("*") if text else []


def hop(dialect: str, session_id: str, msisdn: str, code: str, text: str, first: bool
        ) -> tuple[str, str, object]:
    """The request of one hop: the dial (``text`` typed in advance) when
    ``first``, else the latest input of ``text`` (every input so far, ``*``-joined)."""
    gateway, inputs = DIALECTS[dialect], _inputs(text)
    if first:
        return gateway.encode(session_id, msisdn, code, inputs, None, "dial")
    return gateway.encode(session_id, msisdn, code, inputs[:-1], inputs[-1] if inputs else "", "input")


def end(dialect: str, session_id: str, msisdn: str, code: str, text: str, reason: str
        ) -> tuple[str, str, object] | None:
    """What the gateway sends when the session ends by ``reason`` (``hangup``,
    ``timeout``, or ``completed``: after the app's last screen) after the inputs
    ``text``; None where it sends nothing."""
    if reason == "completed" and dialect not in NOTIFY_COMPLETED:
        return None
    return DIALECTS[dialect].encode(session_id, msisdn, code, _inputs(text), None, REASONS[reason])


def shown(dialect: str, status: int, content_type: str, body: str) -> tuple[str, bool]:
    """What the phone shows of a reply, and whether it ends the session."""
    if status != 200:
        return body, True
    return DIALECTS[dialect].decode(status, content_type, body)


def phone_text(screen: str, ended: bool) -> str:
    """The screen in the one form the players and recordings use, whatever the
    dialect: ``CON``/``END`` and the text."""
    return ("END " if ended else "CON ") + screen


def told(status: int) -> bool | None:
    """True: the app took the end signal; None: it has no such route (an
    older server is simply not told); False: it refused it."""
    if status in (404, 405):
        return None
    return 200 <= status < 300
