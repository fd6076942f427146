"""Playing a checked scenario against a client.

The client is anything with ``ussd(session_id, msisdn, text, code) -> (status,
body)``, ``sms(sender, text) -> status``, ``api(method, path, body) -> (status,
data)``, ``outbox(msisdn) -> [message]``, ``service_code`` and, optionally,
``end(session_id, msisdn, code, reason)``, a settable ``dialect`` and
``sms_wait``: how long an expected SMS may take to arrive (a worker sends it
after the hop answered; in-process on the embedded store jobs run at once: 0).
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable

from ussd_app.core import gsm7
from ussd_app.core.errors import BadRequest
from ussd_app.scenarios.given import Given, GivenError, Names, auth_hint
from ussd_app.scenarios import wire
from ussd_app.scenarios.schema import Scenario, Step

ITEM = re.compile(r"^([0-9]+) (.*)$")
MAX_PAGES = 20
SMS_POLL = 0.1  # seconds between looks at the outbox while an expected SMS is awaited


class Mismatch(Exception):
    """The service answered otherwise than the scenario expects."""


def split_dial(dialled: str, service_code: str) -> tuple[str, str]:
    """``*700*3*1#`` -> (``*700#``, ``3*1``): the service code and the inputs
    typed in advance, which a gateway sends as the first ``text``."""
    base = service_code[:-1] if service_code.endswith("#") else service_code
    if dialled == service_code or not dialled.endswith("#"):
        return dialled, ""
    if dialled.startswith(base + "*"):
        return service_code, dialled[len(base) + 1:-1]
    head, _, rest = dialled[:-1].lstrip("*").partition("*")  # an unknown code: its first part
    return (f"*{head}#", rest) if rest else (dialled, "")


def screen_warnings(body: str, limit: int) -> list[str]:
    text = body[4:] if body[:4] in ("CON ", "END ") else body
    out = gsm7.problems(text, limit)
    if body[:4] not in ("CON ", "END "):
        out.append("reply starts with neither CON nor END")
    return out


def _identity(m: dict) -> tuple:
    return (m.get("id"),) if m.get("id") else (m.get("sent_at"), m.get("from"), m.get("text"))


class Inbox:
    """Which SMS of a number were already seen (each shown or checked once),
    by identity, so a trimmed outbox does not shift them."""

    def __init__(self, outbox: Callable[[str], list[dict]]):
        self.outbox = outbox
        self.seen: dict[str, Counter] = {}

    def mark(self, msisdn: str) -> None:
        self.seen[msisdn] = Counter(map(_identity, self.outbox(msisdn)))

    def new(self, msisdn: str) -> list[dict]:
        messages = self.outbox(msisdn)
        seen = Counter(self.seen.get(msisdn, Counter()))
        fresh = []
        for m in messages:
            key = _identity(m)
            if seen[key]:
                seen[key] -= 1
            else:
                fresh.append(m)
        self.seen[msisdn] = Counter(map(_identity, messages))
        return fresh


class Player:
    def __init__(self, client, scenario: Scenario, limit: int = 160, warn=print, suffix=None):
        self.client, self.scenario, self.limit, self.warn = client, scenario, limit, warn
        self.given = Given(client, scenario, suffix, clock=getattr(client, "clock", time.time))
        self.names: Names = self.given.names
        self.inbox = Inbox(client.outbox)
        self.msisdn = self.session = self.code = None
        self.text = self.body = ""
        self.hops = 0
        self.where = ""
        self.held = None  # when an API answer held offer SMS for the sending window: until

    def run(self) -> int:
        """Create ``given:``, play every step; Mismatch on the first difference."""
        dialect = getattr(self.client, "dialect", None)
        if self.scenario.dialect and dialect is not None:
            self.client.dialect = self.scenario.dialect
        try:
            try:
                self.given.create()
            except GivenError as e:
                raise Mismatch(str(e)) from None
            for msisdn in self.names.subscribers:
                self.inbox.mark(self.names.values[msisdn])
            for n, step in enumerate(self.scenario.steps, 1):
                self.where = f"step {n} (line {step.line})"
                try:
                    getattr(self, step.kind)(step)
                except BadRequest as e:
                    raise Mismatch(f"{self.where}: {e}") from None
                if "expect_sms" in step.checks:
                    self.check_sms(step.checks["expect_sms"])
            return len(self.scenario.steps)
        finally:
            self.given.retire()
            if dialect is not None:
                self.client.dialect = dialect

    # -- steps ----------------------------------------------------------------------
    def dial(self, step: Step) -> None:
        value = step.value if isinstance(step.value, dict) else {"msisdn": step.value}
        if value.get("msisdn"):
            self.msisdn = self.names.msisdn(value["msisdn"])
        dialled = self.names.sub(value.get("code") or self.client.service_code)
        self.code, self.text = split_dial(dialled, self.client.service_code)
        self.session, self.hops = uuid.uuid4().hex, 0
        if self.msisdn not in self.inbox.seen:
            self.inbox.mark(self.msisdn)
        self.hop(step)

    def input(self, step: Step) -> None:
        self.type(self.names.sub(step.value))
        self.check_screen(step)

    def type(self, typed: str) -> None:
        if self.session is None:
            raise Mismatch(f"{self.where}: the session has ended: dial first")
        self.text = typed if self.text == "" else f"{self.text}*{typed}"
        self.send()

    def choose(self, step: Step) -> None:
        wanted = self.names.sub(step.value)
        for _ in range(MAX_PAGES):
            lines = self.body[4:].split("\n")
            for line in lines:
                m = ITEM.match(line)
                if m and wanted in m.group(2):
                    self.type(m.group(1))
                    return self.check_screen(step)
            if not any(line.startswith("98 ") for line in lines):
                break
            self.type("98")
        raise Mismatch(f"{self.where}: no numbered line holds {wanted!r} on\n    {self.body!r}")

    def sms(self, step: Step) -> None:
        value = step.value if isinstance(step.value, dict) else {"text": step.value}
        sender = self.names.msisdn(value["from"]) if value.get("from") else self.msisdn
        if sender not in self.inbox.seen:
            self.inbox.mark(sender)
        status = self.client.sms(sender, self.names.sub(value["text"]))
        if status != 200:
            raise Mismatch(f"{self.where}: /sms/inbound answered {status}{auth_hint('/sms', status)}")

    def api(self, step: Step) -> None:
        method, path = self.names.sub(step.value).split(" ", 1)
        status, data = self.client.api(method, path, self.names.sub(step.checks.get("json")))
        want = step.checks.get("status")
        if (want is not None and status != want) or (want is None and status >= 400):
            raise Mismatch(f"{self.where}: {method} {path} answered {status}{auth_hint(path, status)}"
                           f"{'' if want is None else f', expected {want}'}: {json.dumps(data)}")
        if isinstance(data, dict) and data.get("scheduled"):  # offers held for the sending window
            self.held = data.get("send_at")
        self.check_text(json.dumps(data, ensure_ascii=False), step)

    def hangup(self, step: Step) -> None:
        self.end("hangup")

    def timeout(self, step: Step) -> None:
        self.end("timeout")

    def end(self, reason: str) -> None:
        """The gateway's own signal for a hang-up or a time-out (scenarios.wire)."""
        if hasattr(self.client, "end") and self.session is not None:
            status, body, *path = self.client.end(self.session, self.msisdn, self.code, reason,
                                                  text=self.text, hops=self.hops, last_reply=self.body)
            path = path[0] if path and path[0] else f"the {reason} signal"
            if status == 401:
                raise Mismatch(f"{self.where}: {path} answered 401{auth_hint('/ussd', 401)}")
            if wire.told(status) is False:  # the app's concern, not this scenario's: say so
                self.warn(f"warning: {self.where}: {path} answered {status}: {body[:120]}")
        self.session = None

    # -- hops and checks --------------------------------------------------------------
    def hop(self, step: Step) -> None:
        self.send()
        self.check_screen(step)

    def send(self) -> None:
        status, body = self.client.ussd(self.session, self.msisdn, self.text, self.code)
        if status != 200:
            raise Mismatch(f"{self.where}: /ussd answered {status}{auth_hint('/ussd', status)}: {body}")
        for w in screen_warnings(body, self.limit):
            self.warn(f"warning: {self.where}: {w}")
        self.body, self.hops = body, self.hops + 1
        if body.startswith("END "):
            self.session = None

    def check_screen(self, step: Step) -> None:
        self.check_text(self.body, step)
        end = step.checks.get("end")
        if end is not None and self.body.startswith("END ") != bool(end):
            raise Mismatch(f"{self.where}: expected {'END' if end else 'CON'}, got\n    {self.body!r}")

    def check_text(self, got: str, step: Step) -> None:
        expect = step.checks.get("expect")
        for part in ([expect] if isinstance(expect, str) else expect or []):
            part = self.names.sub(part)
            if part not in got:
                raise Mismatch(f"{self.where}: expected to contain\n    {part!r}\n  got\n    {got!r}")
        regex = step.checks.get("expect_regex")
        for pattern in ([regex] if isinstance(regex, str) else regex or []):
            if not re.search(self.names.regex(pattern), got):
                raise Mismatch(f"{self.where}: expected to match /{pattern}/\n  got\n    {got!r}")

    def check_sms(self, wanted) -> None:
        fresh: dict[str, list[str]] = {}
        deadline = time.monotonic() + getattr(self.client, "sms_wait", 0.0)
        for want in (wanted if isinstance(wanted, list) else [wanted]):
            want = want if isinstance(want, dict) else {"contains": want}
            to = self.names.msisdn(want["to"]) if want.get("to") else self.msisdn
            contains = self.names.sub(want.get("contains", ""))
            pattern = want.get("matches")

            def found() -> bool:
                return any(contains in t and (pattern is None or re.search(self.names.regex(pattern), t))
                           for t in fresh[to])

            if to not in fresh:
                fresh[to] = []
            while True:  # a worker sends it after the hop answered: wait, bounded by sms_wait
                fresh[to] += [m["text"] for m in self.inbox.new(to)]
                if found() or time.monotonic() >= deadline:
                    break
                time.sleep(SMS_POLL)
            if not found():
                what = (f"containing\n    {contains!r}" if contains else "") + (
                    f"\n    matching /{pattern}/" if pattern else "")
                raise Mismatch(f"{self.where}: expected an SMS to {to} {what.strip()}\n  got\n    "
                               + ("\n    ".join(map(repr, fresh[to])) or "(no new SMS)")
                               + (f"\n  (offer SMS are held for the sending window until {self.held}: "
                                  "play within OFFER_SEND_WINDOW, or against a service with "
                                  "OFFER_SEND_WINDOW=always)" if self.held else ""))


def play(client, scenario: Scenario, limit: int = 160, warn=print, suffix: str | None = None) -> int:
    """Play one scenario; Mismatch on the first difference. Returns the steps run."""
    return Player(client, scenario, limit, warn, suffix).run()
