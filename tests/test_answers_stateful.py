"""A random walk of hops, drops, time-outs, resumes, retried hops, SMS
(STOP, MULAI, YA, TIDAK, TUKAR) and operator changes (prices, top-ups), on a
real Redis. After each step: every debit and every consent change has exactly
one hop or SMS that answered the screen (or SMS) showing it, as it was shown,
and a debit charges the points that screen showed."""
import re
import uuid

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from phones import Phone
from ussd_app import demo
from ussd_app.gateways import DIALECTS

MSISDN = "+6281234567890"
NIK = "3171014506900001"
KEYS = ["1", "1", "1", "2", "2", "3", "9", "0", "00", "98", "99", NIK, "123"]
SMS = ["STOP", "MULAI", f"YA KTA {NIK}", "YA", "TIDAK", "TUKAR DATA1GB"]
REWARDS = ["DATA1GB", "PULSA5", "KOPI25", "DONASI5"]
CONFIRM = re.compile(r"Tukar (\d+)x .+ dengan ([\d.]+) poin\?\n1 Ya")
SMS_CONFIRM = re.compile(r"Tukar .+ dengan ([\d.]+) poin\? Balas YA")
CONSENT_TYPES = ("consent", "decline", "optout", "optin")
EVENTS = [("sms", "STOP"), ("sms", "MULAI"), ("sms", f"YA KTA {NIK}"), ("sms", "TIDAK"),
          ("price", ("DATA1GB", 3000)), ("price", ("DATA1GB", 30_000)), ("topup", 20_000),
          ("resume", None), ("retry", None)]


def points_of(text: str) -> int:
    return int(text.replace(".", ""))


@pytest.mark.parametrize("dialect", ["africastalking", "hubtel"])
def test_consequences_follow_only_answers_on_the_screens_that_showed_them(client, services, clock, api,
                                                                           dialect):
    class Walk(RuleBasedStateMachine):
        @initialize()
        def fresh(self):
            services.r.flushdb()
            demo.seed(services)
            self.phone = Phone(client, msisdn=MSISDN, dialect=dialect)
            self.live = False
            self.sms_quote = None  # the points the last TUKAR answer by SMS showed
            self.debits = self._debits()
            self.consents = self._consents()
            self.last = None  # (kind, input, the screen or SMS it answered)

        # -- what the subscriber and the operator do ------------------------
        @rule()
        def dial(self):
            self.last = ("dial", None, None)
            self.phone.dial()
            self.live = not self.phone.end

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def type(self, data):
            """What a subscriber types: mostly an option the screen shows."""
            shown = [line.split(" ")[0] for line in self.phone.screen.splitlines()
                     if re.match(r"[0-9]+ ", line)]
            key = data.draw(st.sampled_from(shown) if shown and data.draw(st.booleans())
                            else st.sampled_from(KEYS), label="key")
            self.last = ("hop", key, self.phone.screen)
            self.phone.type(key)
            self.live = not self.phone.end

        @rule(path=st.sampled_from([("2", "1", "1"), ("2", "1", "1", "1"), ("3",), ("3", "1"),
                                    ("3", "1", "1"), ("3", "1", "1", "1"), ("3", "9")]),
              before=st.lists(st.sampled_from(EVENTS), max_size=2), answer=st.sampled_from(["1", "2", "9"]),
              after=st.lists(st.sampled_from(EVENTS), max_size=2))
        def journey(self, path, before, answer, after):
            """The adversary's pattern: walk to a screen, something changes
            (an SMS, the operator, a drop and a resume, a repeated hop), answer,
            and again; every hop and event checked as it happens."""
            self.dial()
            for key in path:
                self.hop(key)
            for event in before:
                self.event(event)
            self.hop(answer)
            for event in after:
                self.event(event)

        def hop(self, key):
            if self.live:
                self.last = ("hop", key, self.phone.screen)
                self.phone.type(key)
                self.live = not self.phone.end
                self.check()

        def event(self, event):
            kind, arg = event
            if kind == "sms":
                self.sms(arg)
            elif kind == "price":
                self.operator_reprices(*arg)
            elif kind == "topup":
                self.operator_tops_up(arg)
            elif kind == "retry" and self.phone.last is not None:
                self.gateway_repeats_the_hop()
            elif kind == "resume":
                self.dial()
                self.hop("1")
            self.check()

        def check(self):
            self.every_debit_answers_the_screen_that_showed_it()
            self.every_consent_change_answers_the_screen_that_showed_it()

        @precondition(lambda self: self.phone.last is not None)
        @rule()
        def gateway_repeats_the_hop(self):
            self.last = ("retry", None, None)
            self.phone.resend()

        @precondition(lambda self: self.live)
        @rule(kind=st.sampled_from(["timeout", "release"]))
        def network_drops(self, kind):
            self.last = ("drop", None, None)
            self.phone.hang_up(kind)
            self.live = False

        @rule(text=st.sampled_from(SMS))
        def sms(self, text):
            self.last = ("sms", text.split()[0], self.sms_quote)
            self.phone.sms(text, message_id=uuid.uuid4().hex)
            if text.startswith("TUKAR"):
                shown = [SMS_CONFIRM.search(m) for m in reversed(self.phone.inbox()[-2:])]
                self.sms_quote = next((points_of(m.group(1)) for m in shown if m), None)
            elif text == "YA":
                self.sms_quote = None

        @rule(code=st.sampled_from(REWARDS), points=st.sampled_from([400, 500, 1500, 2500, 30_000]))
        def operator_reprices(self, code, points):
            self.last = ("operator", None, None)
            reward = api("GET", f"/api/v1/rewards/{code}", status=200)
            api("PUT", f"/api/v1/rewards/{code}", {**{k: reward[k] for k in (
                "name", "category", "fulfilment", "partner")}, "points": points}, status=200)

        @rule(points=st.sampled_from([1000, 20_000]))
        def operator_tops_up(self, points):
            self.last = ("operator", None, None)
            api("POST", f"/api/v1/subscribers/{MSISDN}/points",
                {"points": points, "source": "topup", "reference": uuid.uuid4().hex}, status=201)

        # -- what must hold after every step -------------------------------
        def _debits(self):
            entries = api("GET", f"/api/v1/subscribers/{MSISDN}/ledger")["entries"]
            return [e for e in entries if e["type"] == "redeem"]

        def _consents(self):
            from ussd_app.offers import consents
            return [e["type"] for e in consents.log(services.r, MSISDN) if e["type"] in CONSENT_TYPES]

        def _one_new(self, held: str, now: list):
            """What ``now`` adds to the list kept under ``held`` (kept anew): at most one entry."""
            new = now[len(getattr(self, held)):]
            setattr(self, held, now)
            assert len(new) <= 1, (self.last, new)
            return new[0] if new else None

        @invariant()
        def every_debit_answers_the_screen_that_showed_it(self):
            debit = self._one_new("debits", self._debits())
            if debit is None:
                return
            kind, typed, shown = self.last
            charged = -debit["points"]
            if kind == "hop":
                m = CONFIRM.search(shown or "")
                assert typed == "1" and m, (self.last, debit)
                assert charged == points_of(m.group(2)), (shown, charged)
            else:
                assert kind == "sms" and typed == "YA" and shown == charged, (self.last, debit)

        @invariant()
        def every_consent_change_answers_the_screen_that_showed_it(self):
            change = self._one_new("consents", self._consents())
            if change is None:
                return
            kind, typed, shown = self.last
            if kind == "sms":
                assert {"consent": "YA", "decline": "TIDAK", "optout": "STOP", "optin": "MULAI"}[change] == typed
                return
            assert kind == "hop", (self.last, change)
            shown = shown or ""
            if change == "consent":
                assert typed == NIK and shown.startswith("Ketik NIK Anda"), (self.last, change)
            elif change == "decline":
                assert typed == "2" and "\n2 Tolak" in shown, (self.last, change)
            elif change == "optout":
                assert typed == "1" and shown.startswith("Berhenti terima semua penawaran"), (self.last, change)
            else:
                assert typed == "1" and "\n1 Terima penawaran lagi" in shown, (self.last, change)

    assert dialect in DIALECTS
    run_state_machine_as_test(Walk, settings=settings(
        max_examples=60, stateful_step_count=30, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
