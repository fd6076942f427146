"""A session recorded in the browser simulator, written as a scenario file
that ``ussd-sim run`` replays.

The caller's state when recording began (profile, point buckets, the offers
its menu lists, the consents it gave or withdrew) becomes ``given: subscribers: caller``, so the replay runs
on a fresh number of its own with the same screens, and the caller's own data
is never touched. Recording starts from a clean state for the number (no
dropped session to resume), as the replay's fresh number does. Times in
``given:`` are relative to when the recording began (``+28d``), so a replay
on a later day sees the same screens. Each screen is expected line by line;
a token that differs from run to run (a voucher code, a reference: capitals
and digits together) is matched by ``\\S+`` instead, a date and a time
(``31-12-2026 23:59``) by any date and time.
"""
from __future__ import annotations

import re

import yaml

from ussd_app.core import formats
from ussd_app.scenarios import schema

CALLER = "caller"
VOLATILE = re.compile(r"^(?=[A-Z0-9-]*[0-9])(?=[A-Z0-9-]*[A-Z])[A-Z0-9-]{5,}$")
EDGE_PUNCTUATION = ".,;:()"
DATE = re.compile(r"[0-9]{2}-[0-9]{2}-[0-9]{4}")  # as screens and SMS show one (formats.wib)
TIME = re.compile(r"[0-9]{2}:[0-9]{2}")
ANY = {DATE: "[0-9]{2}-[0-9]{2}-[0-9]{4}", TIME: "[0-9]{2}:[0-9]{2}"}


def _volatile(word: str) -> bool:
    core = word.strip(EDGE_PUNCTUATION)
    return bool(VOLATILE.match(core) or DATE.fullmatch(core) or TIME.fullmatch(core))


def _escape(text: str) -> str:
    """``re.escape`` without escaping spaces and letters: the file stays readable."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


def _pattern(text: str) -> str:
    """``text`` as a regular expression, each volatile token matched by ``\\S+``."""
    out = []
    for part in re.split(r"(\s+)", text):
        if _volatile(part):
            core = part.strip(EDGE_PUNCTUATION)
            lead, trail = part[:part.index(core)], part[part.index(core) + len(core):]
            any_ = next((pattern for kind, pattern in ANY.items() if kind.fullmatch(core)), r"\S+?")
            out.append(_escape(lead) + any_ + _escape(trail))
        else:
            out.append(_escape(part))
    return "".join(out)


def _screen_checks(reply: str) -> dict:
    body = reply[4:] if reply[:4] in ("CON ", "END ") else reply
    checks: dict = {}
    plain = [line for line in body.split("\n") if line and not any(map(_volatile, line.split()))]
    varying = [_pattern(line) for line in body.split("\n") if line and any(map(_volatile, line.split()))]
    if plain:
        checks["expect"] = plain
    if varying:
        checks["expect_regex"] = varying
    if reply.startswith("END "):
        checks["end"] = True
    return checks


def _sms_checks(texts: list[str]) -> list:
    return [{"matches": _pattern(t)} if any(map(_volatile, t.split())) else t for t in texts]


def relative(when: str | None, taken_at: str | None) -> str | None:
    """An absolute time as one from the recording's start: ``+28d`` (whole
    days), else ``+677h``; unchanged when the start is unknown."""
    if not when or not taken_at:
        return when
    try:
        seconds = formats.parse_iso(when) - formats.parse_iso(taken_at)
    except ValueError:
        return when
    sign, seconds = ("+" if seconds >= 0 else "-"), abs(seconds)
    if round(seconds) % 86400 == 0 or seconds >= 99999 * 3600:
        return f"{sign}{min(99999, round(seconds / 86400))}d"
    return f"{sign}{max(1, round(seconds / 3600))}h"


def given(snapshot: dict, vouchers: dict | None = None) -> dict:
    """``given:`` that makes a subscriber like the one recorded, and fresh
    codes for the pooled vouchers the recording redeemed (``vouchers``)."""
    caller: dict = {}
    if not snapshot.get("enrolled", True):
        caller["enrolled"] = False
    for k in ("status", "credit_score", "attributes", "language"):
        if snapshot.get(k) not in (None, {}, ""):
            caller[k] = snapshot[k]
    taken_at = snapshot.get("taken_at")
    earnings = [{k: (relative(v, taken_at) if k == "expires_at" else v) for k, v in b.items()
                 if k in ("points", "expires_at") and v is not None}
                for b in snapshot.get("points") or [] if b.get("points")]
    if earnings:
        caller["points"] = earnings
    if snapshot.get("offers"):
        caller["offers"] = list(snapshot["offers"])
    if snapshot.get("consents"):
        caller["consents"] = dict(snapshot["consents"])
    if snapshot.get("opted_out"):
        caller["opted_out"] = True
    out = {"subscribers": {CALLER: caller}}
    if vouchers:
        out["vouchers"] = dict(sorted(vouchers.items()))
    return out


def scenario(snapshot: dict, steps: list[dict], service_code: str = "*700#",
             name: str = "recorded in the browser simulator", dialect: str | None = None,
             vouchers: dict | None = None) -> dict:
    """The scenario of a recorded session. ``steps`` as the page keeps them:
    ``{"kind": "dial"|"input"|"sms"|"hangup"|"timeout", "value": ..., "reply":
    "CON ...", "received": [sms texts that arrived after it]}``."""
    out: list[dict] = []
    dialled = False
    for s in steps:
        kind = s.get("kind")
        if kind == "dial":
            code = s.get("value") or service_code
            step = {"dial": CALLER if code == service_code else {"msisdn": CALLER, "code": code}}
            dialled = True
        elif kind == "input" and dialled:
            step = {"input": str(s.get("value", ""))}
        elif kind == "sms":
            step = {"sms": s.get("value", "")} if dialled else {
                "sms": {"text": s.get("value", ""), "from": CALLER}}
        elif kind in ("hangup", "timeout") and dialled:
            step = {kind: True}
        else:
            continue
        if kind in ("dial", "input") and s.get("reply"):
            step.update(_screen_checks(s["reply"]))
        if s.get("received"):
            checks = _sms_checks(s["received"])
            step["expect_sms"] = checks[0] if len(checks) == 1 else checks
            if not dialled:  # an SMS's answer goes to the caller, named: no dial has named it yet
                step["expect_sms"] = [c if isinstance(c, dict) else {"contains": c} for c in checks]
                for c in step["expect_sms"]:
                    c["to"] = CALLER
        out.append(step)
    data = {"name": name}
    if dialect:
        data["dialect"] = dialect
    data["given"] = given(snapshot, vouchers)
    data["steps"] = out
    return data


def to_yaml(data: dict, dialects=("africastalking",)) -> str:
    """The scenario as a file, checked by the schema ``ussd-sim run`` applies."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    schema.load_text(text, "recorded.yaml", dialects)
    return text
