"""``given:``: the data a scenario needs, created through the API under names
of its own, so that files pass in any order, repeatedly, against a live
server, without touching anyone else's data.

- subscribers get unused numbers from ``+6281190xxxxxxx`` (each checked
  unknown to the server before use);
- rewards get the code ``<NAME>-<RUN>`` and, unless they say otherwise, stay
  on offer for an hour; when the file ends they are retired (``active_until``
  now), so a live catalog shows them only while the file runs;
- campaigns get the id ``<name>-<run>``, their institution ``<id>-<run>``, the
  offer code ``<first 4 characters of code><RUN>`` (a code names one live
  campaign: ``${<name>.code}`` in the file), and are offered only to the
  subscribers that list them under ``offers:``;
- ``vouchers: {CODE: n}`` adds ``n`` fresh codes (``CODE-<run>-<i>``) to the
  pool of an existing reward the journey redeems (a recording of the demo's
  coffee voucher), and ``n`` units to its stock, so a replay never finds it
  out of stock (what the replay redeems, it brought);
- ``consents: {campaign: consented}`` consents to an offer as a subscriber
  does, by SMS (``YA <code> <NIK>``, a test NIK); ``withdrawn`` then stops
  offers and takes them again (``STOP``, ``MULAI``), which withdraws it;
  ``opted_out: true`` stops offers last (``STOP``), as a subscriber does.

``${name}`` in any text of the file stands for what ``name`` became
(a subscriber's number in E.164, a reward's code, a campaign's or an
institution's id, ``${<campaign>.code}`` its offer code); ``${run}`` for this
run's suffix.
"""
from __future__ import annotations

import random
import re
import string
import time

from ussd_app.core import formats
from ussd_app.core.msisdn import normalize
from ussd_app.scenarios.schema import PLACEHOLDER, RELATIVE_TIME, RUN, Scenario

RESERVED_PREFIX = "+6281190"  # + 7 random digits: scenario subscribers
NIK = "3171014506900001"  # a valid test NIK: a consent of given: is given with it, by SMS
REWARD_HOURS = 1
UNITS = {"d": 86400, "h": 3600, "m": 60}


class GivenError(Exception):
    """What the server refused while ``given:`` was created, and the line
    declaring what it was creating (0: none)."""

    def __init__(self, message: str, line: int = 0):
        self.message, self.line = message, line
        super().__init__((f"line {line}: " if line else "") + message)


def auth_hint(path: str, status: int) -> str:
    """What to set when the server answers 401 to ``path``."""
    if status != 401:
        return ""
    if path.startswith("/api/"):
        return " (set ADMIN_TOKEN to the server's admin token: the integration API needs it)"
    return " (set GATEWAY_TOKEN to the server's gateway token: /ussd and /sms/* need it)"


def new_suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=6))


class Names:
    """What each name of ``given:`` became in this run."""

    def __init__(self, suffix: str):
        self.suffix = suffix
        self.values: dict[str, str] = {RUN: suffix}
        self.subscribers: set[str] = set()

    def sub(self, value):
        """``value`` with every ``${name}`` replaced, in texts, lists and mappings."""
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda m: self.values.get(m.group(1), m.group(0)), value)
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.sub(v) for k, v in value.items()}
        return value

    def regex(self, pattern: str) -> str:
        """A pattern with each ``${name}`` replaced by its value, matched literally."""
        return PLACEHOLDER.sub(lambda m: re.escape(self.values.get(m.group(1), m.group(0))), pattern)

    def msisdn(self, value: str) -> str:
        """A subscriber's name, ``${name}`` or a number -> E.164."""
        if value in self.subscribers:
            return self.values[value]
        return normalize(self.sub(value))


def when(value: str | None, now: float, default: str | None = None) -> str | None:
    """An ISO time, or one from now (``+30d``, ``-1d``, ``+2h``, ``+90m``) made ISO."""
    value = value if value is not None else default
    if value is None:
        return None
    m = RELATIVE_TIME.match(value)
    if not m:
        return value
    sign, n, unit = m.groups()
    return formats.iso(now + (1 if sign == "+" else -1) * int(n) * UNITS[unit])


class Given:
    """Creates a scenario's data through ``client`` (``api(method, path, body)``,
    ``outbox(msisdn)``) and retires what must not outlive the file."""

    def __init__(self, client, scenario: Scenario, suffix: str | None = None, clock=time.time):
        self.client, self.scenario, self.clock = client, scenario, clock
        self.names = Names(suffix or new_suffix())
        self.rewards: dict[str, dict] = {}  # code -> body, to retire

    def fail(self, name: str, msg: str):
        raise GivenError(f"given {name}: {msg}", self.scenario.lines.get(name) or 0)

    def call(self, name: str, method: str, path: str, body=None, ok=(200, 201)) -> dict:
        status, data = self.client.api(method, path, body)
        if status not in ok:
            self.fail(name, f"{method} {path} answered {status}{auth_hint(path, status)}: "
                            f"{data.get('error', data)}")
        return data

    def create(self) -> Names:
        given, now, names = self.scenario.given, self.clock(), self.names
        for alias in given.get("rewards") or {}:
            names.values[alias] = f"{alias}-{names.suffix}".upper()
        for alias, body in (given.get("campaigns") or {}).items():
            names.values[alias] = f"{alias}-{names.suffix}"
            if isinstance(body.get("code"), str):
                names.values[f"{alias}.code"] = (body["code"][:4] + names.suffix).upper()
            inst = (body.get("institution") or {}).get("id")
            if isinstance(inst, str):
                names.values[inst] = f"{inst}-{names.suffix}"
        for alias in given.get("subscribers") or {}:
            names.values[alias] = self.unused_msisdn(alias)
            names.subscribers.add(alias)
        for alias, body in (given.get("rewards") or {}).items():
            self.reward(alias, names.sub(body), now)
        for alias, body in (given.get("campaigns") or {}).items():
            self.campaign(alias, names.sub(body), now)
        for alias, body in (given.get("subscribers") or {}).items():
            self.subscriber(alias, names.sub(body or {}), now)
        for code, n in (given.get("vouchers") or {}).items():
            self.vouchers(names.values.get(code, code), n)
        return names

    def vouchers(self, code: str, n: int) -> None:
        """``n`` fresh codes for an existing reward's pool, and as many units
        of stock where it counts them: what the replay redeems it brings."""
        fresh = [f"{code}-{self.names.suffix}-{i}" for i in range(1, n + 1)]
        self.call(code, "POST", f"/api/v1/rewards/{code}/vouchers", {"codes": fresh})
        reward = self.call(code, "GET", f"/api/v1/rewards/{code}")
        if reward.get("stock") is not None:
            body = {k: v for k, v in reward.items() if k not in ("code", "revision", "available")}
            self.call(code, "PUT", f"/api/v1/rewards/{code}", {**body, "stock": reward["stock"] + n})

    def unused_msisdn(self, alias: str) -> str:
        for _ in range(10):
            msisdn = RESERVED_PREFIX + "".join(random.choices(string.digits, k=7))
            status, _ = self.client.api("GET", f"/api/v1/subscribers/{msisdn}")
            if status == 404 and not self.client.outbox(msisdn):
                return msisdn
            if status not in (200, 404):
                self.fail(alias, f"GET /api/v1/subscribers/{msisdn} answered {status}"
                                 f"{auth_hint('/api/', status)}")
        self.fail(alias, "found no unused number in 10 tries")

    def reward(self, alias: str, body: dict, now: float) -> None:
        code = self.names.values[alias]
        vouchers = body.pop("vouchers", None)
        body["active_from"] = when(body.get("active_from"), now)
        body["active_until"] = when(body.get("active_until"), now, f"+{REWARD_HOURS * 60}m")
        body = {k: v for k, v in body.items() if v is not None or k in ("stock", "monthly_limit")}
        self.call(alias, "PUT", f"/api/v1/rewards/{code}", body)
        self.rewards[code] = body
        if vouchers:
            self.call(alias, "POST", f"/api/v1/rewards/{code}/vouchers", {"codes": vouchers})

    def campaign(self, alias: str, body: dict, now: float) -> None:
        body = dict(body, id=self.names.values[alias])
        if f"{alias}.code" in self.names.values:
            body["code"] = self.names.values[f"{alias}.code"]
        inst = body.get("institution")
        if isinstance(inst, dict) and isinstance(inst.get("id"), str):
            body["institution"] = dict(inst, id=self.names.values.get(inst["id"], inst["id"]))
        body["valid_from"] = when(body.get("valid_from"), now, "-1d")
        body["valid_until"] = when(body.get("valid_until"), now, "+1d")
        self.call(alias, "POST", "/api/v1/campaigns", body, ok=(201,))

    def subscriber(self, alias: str, body: dict, now: float) -> None:
        msisdn = self.names.values[alias]
        profile = {k: body[k] for k in ("credit_score", "status", "attributes", "language") if k in body}
        if body.get("enrolled", True):
            self.call(alias, "PUT", f"/api/v1/subscribers/{msisdn}", profile)
        earnings = body.get("points")
        if isinstance(earnings, int):
            earnings = [{"points": earnings}]
        for i, e in enumerate(earnings or []):
            earning = {"points": e.get("points"), "source": "scenario",
                       "reference": f"scenario-{self.names.suffix}-{alias}-{i}"}
            if e.get("expires_at"):
                earning["expires_at"] = when(e["expires_at"], now)
            self.call(alias, "POST", f"/api/v1/subscribers/{msisdn}/points", earning, ok=(201,))
        for campaign in body.get("offers") or []:
            cid = self.names.values.get(campaign, campaign)
            sent = self.call(alias, "POST", f"/api/v1/campaigns/{cid}/offers", {"msisdns": [msisdn]})
            if sent.get("sent") != 1:
                self.fail(alias, f"campaign {cid} was not offered: {sent}")
            if sent.get("scheduled"):
                self.fail(alias, f"campaign {cid}'s SMS is held for the sending window until "
                                 f"{sent.get('send_at')}: play it within OFFER_SEND_WINDOW, or against "
                                 "a service with OFFER_SEND_WINDOW=always")
        for campaign, state in (body.get("consents") or {}).items():
            self.consent(alias, msisdn, self.names.values.get(campaign, campaign), state)
        if body.get("opted_out"):  # stopped offers, as a subscriber does: STOP by SMS
            status = self.client.sms(msisdn, "STOP")
            if status != 200:
                self.fail(alias, f"/sms/inbound answered {status}{auth_hint('/sms', status)}")

    def consent(self, alias: str, msisdn: str, cid: str, state: str) -> None:
        """The offer of ``cid`` consented to (and withdrawn) as a subscriber does it, by SMS."""
        code = self.call(alias, "GET", f"/api/v1/campaigns/{cid}").get("code")
        texts = [f"YA {code} {NIK}"] + (["STOP", "MULAI"] if state == "withdrawn" else [])
        for text in texts:
            status = self.client.sms(msisdn, text)
            if status != 200:
                self.fail(alias, f"/sms/inbound answered {status}{auth_hint('/sms', status)}")
        log = self.call(alias, "GET", f"/api/v1/subscribers/{msisdn}/consents").get("entries", [])
        kinds = [e.get("type") for e in log if e.get("campaign") in (cid, None)]
        want = ["consent", "optout", "withdrawal", "optin"] if state == "withdrawn" else ["consent"]
        if kinds[-len(want):] != want:
            self.fail(alias, f"the consent to {cid} was not recorded {state} (consent log: {kinds})")

    def retire(self) -> None:
        """Take this file's rewards off the catalog (best effort: the hour runs out anyway)."""
        now = self.clock()
        for code, body in self.rewards.items():
            try:
                if body.get("active_from") and formats.parse_iso(body["active_from"]) >= now:
                    continue
                self.client.api("PUT", f"/api/v1/rewards/{code}", dict(body, active_until=formats.iso(now)))
            except Exception:  # noqa: BLE001 - retiring never hides the file's own outcome
                pass

