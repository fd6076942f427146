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
    """The service answered otherwise than the scenario expects: what, at which
    line of the file, and the expected and the got side by side."""

    def __init__(self, message: str, line: int = 0, expected: str | None = None, got: str | None = None):
        self.message, self.line, self.expected, self.got = message, line, expected, got
        super().__init__("\n".join([(f"line {line}: " if line else "") + message, *self.details()]))

    def details(self) -> list[str]:
        """``expected:`` and ``got:`` (a screen's further lines indented under it)."""
        out = []
        for label, value in (("expected:", self.expected), ("got:     ", self.got)):
            if value is not None:
                first, *rest = str(value).split("\n") or [""]
                out.append(f"{label} {first}")
                out += [" " * (len(label) + 1) + line for line in rest]
        return out


def phone_view(body: str) -> str:
    """A reply as the phone shows it, whatever the dialect: the screen, and
    whether the session ended there."""
    if body[:4] == "END ":
        return body[4:] + "\n(the session ended)"
    return body[4:] if body[:4] == "CON " else body


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
        self.line = 0
        self.transcript: list[str] = []  # every hop and signal, for the report
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
                raise Mismatch(e.message, e.line) from None
            for msisdn in self.names.subscribers:
                self.inbox.mark(self.names.values[msisdn])
            for n, step in enumerate(self.scenario.steps, 1):
                self.line = step.line
                try:
                    getattr(self, step.kind)(step)
                except BadRequest as e:
                    raise Mismatch(str(e), self.line) from None
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
            raise Mismatch("the session has ended: dial first", self.line)
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
        raise Mismatch("no numbered line holds what to choose", self.line, expected=repr(wanted),
                       got=phone_view(self.body))

    def sms(self, step: Step) -> None:
        value = step.value if isinstance(step.value, dict) else {"text": step.value}
        sender = self.names.msisdn(value["from"]) if value.get("from") else self.msisdn
        if sender not in self.inbox.seen:
            self.inbox.mark(sender)
        text = self.names.sub(value["text"])
        self.transcript.append(f"SMS {sender} -> short code: {text}")
        status = self.client.sms(sender, text)
        if status != 200:
            raise Mismatch(f"/sms/inbound answered {status}{auth_hint('/sms', status)}", self.line)

    def api(self, step: Step) -> None:
        method, path = self.names.sub(step.value).split(" ", 1)
        status, data = self.client.api(method, path, self.names.sub(step.checks.get("json")))
        self.transcript.append(f"API {method} {path} -> {status}")
        want = step.checks.get("status")
        if (want is not None and status != want) or (want is None and status >= 400):
            raise Mismatch(f"{method} {path} answered {status}{auth_hint(path, status)}", self.line,
                           expected=f"status {want if want is not None else '2xx or 3xx'}",
                           got=f"status {status}: {json.dumps(data)}")
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
            self.transcript.append(f"{reason}: " + (f"{path} -> {status}" if path[0] == "/"
                                                     else "the gateway sends nothing"))
            if status == 401:
                raise Mismatch(f"{path} answered 401{auth_hint('/ussd', 401)}", self.line)
            if wire.told(status) is False:  # the app's concern, not this scenario's: say so
                self.warn(f"warning: line {self.line}: {path} answered {status}: {body[:120]}")
        self.session = None

    # -- hops and checks --------------------------------------------------------------
    def hop(self, step: Step) -> None:
        self.send()
        self.check_screen(step)

    def send(self) -> None:
        typed = self.text.rsplit("*", 1)[-1] if self.hops else (self.code + (f" {self.text}" if self.text else ""))
        self.transcript.append(f"> {'dial ' if not self.hops else ''}{typed}")
        status, body = self.client.ussd(self.session, self.msisdn, self.text, self.code)
        if status != 200:
            self.transcript.append(f"< {status} {body}")
            raise Mismatch(f"/ussd answered {status}{auth_hint('/ussd', status)}", self.line, got=body)
        self.transcript.append("< " + phone_view(body).replace("\n", "\n  "))
        for w in screen_warnings(body, self.limit):
            self.warn(f"warning: line {self.line}: {w}")
        self.body, self.hops = body, self.hops + 1
        if body.startswith("END "):
            self.session = None

    def check_screen(self, step: Step) -> None:
        self.check_text(self.body, step)
        end = step.checks.get("end")
        if end is not None and self.body.startswith("END ") != bool(end):
            raise Mismatch("the session " + ("went on" if end else "ended"), self.line,
                           expected="the session to end" if end else "the session to go on",
                           got=phone_view(self.body))

    def check_text(self, got: str, step: Step) -> None:
        expect = step.checks.get("expect")
        for part in ([expect] if isinstance(expect, str) else expect or []):
            part = self.names.sub(part)
            if part not in got:
                raise Mismatch("a text expected is missing", self.line, expected=repr(part),
                               got=phone_view(got))
        regex = step.checks.get("expect_regex")
        for pattern in ([regex] if isinstance(regex, str) else regex or []):
            if not re.search(self.names.regex(pattern), got):
                raise Mismatch("no match for a pattern expected", self.line, expected=f"/{pattern}/",
                               got=phone_view(got))

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
                new = self.inbox.new(to)
                self.transcript += [f"SMS -> {to}: {m['text']}" for m in new]
                fresh[to] += [m["text"] for m in new]
                if found() or time.monotonic() >= deadline:
                    break
                time.sleep(SMS_POLL)
            if not found():
                what = (f"containing\n    {contains!r}" if contains else "") + (
                    f"\n    matching /{pattern}/" if pattern else "")
                raise Mismatch(f"an SMS expected to {to} did not arrive" + (
                    f" (offer SMS are held for the sending window until {self.held}: play within "
                    "OFFER_SEND_WINDOW, or against a service with OFFER_SEND_WINDOW=always)"
                    if self.held else ""), self.line, expected="an SMS " + what.strip().replace("\n    ", " "),
                    got="\n".join(map(repr, fresh[to])) or "(no new SMS)")


def play(client, scenario: Scenario, limit: int = 160, warn=print, suffix: str | None = None) -> int:
    """Play one scenario; Mismatch on the first difference. Returns the steps run."""
    return Player(client, scenario, limit, warn, suffix).run()
