"""Scenario files, checked before anything runs.

A file is read into YAML nodes first (they keep their line numbers), checked
against the schema below, and only then turned into plain values. Every
problem names the file and the line: an unknown step or key, a wrong type,
a check where it means nothing (``expect`` on an ``sms`` step), an invalid
regular expression, a ``${name}`` that ``given:`` does not declare.

    name: redeem a voucher              # optional
    dialect: africastalking             # optional
    given:                              # data created through the API, names of its own
      subscribers: {ani: {credit_score: 700, points: 3000, offers: [kta]}}
      rewards: {KOPI: {name: "Kopi ${run}", category: voucher, points: 500, ...}}
      campaigns: {kta: {institution: {id: bank-s, name: Bank S}, code: KTA, ...}}
    steps:
      - dial: ani                       # or {msisdn: ani, code: "*700*2#"}
        expect: "Tukar hadiah"
      - choose: "Kopi ${run}"           # the numbered line holding this text
      - input: 1
        end: true
        expect_sms: "Kode voucher"
      - sms: "TUKAR ${KOPI}"
      - api: GET /api/v1/subscribers/${ani}/points
        expect: '"balance": 2500'
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ussd_app.gateways import DIALECTS

from ussd_app.core.errors import BadRequest
from ussd_app.core.msisdn import normalize

ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
REWARD_ALIAS = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,16}$")  # room for the run's suffix in 24
CAMPAIGN_ALIAS = re.compile(r"^[a-z0-9][a-z0-9-]{0,32}$")  # room for the suffix in 40
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
RELATIVE_TIME = re.compile(r"^([+-])([0-9]{1,5})([dhm])$")
API_CALL = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$")
DIAL_CODE = re.compile(r"^[*#0-9]+$")
RUN = "run"  # ${run}: this run's suffix

SCREEN_CHECKS = {"expect", "expect_regex", "end", "expect_sms"}
STEPS: dict[str, set[str]] = {
    "dial": SCREEN_CHECKS,
    "input": SCREEN_CHECKS,
    "choose": SCREEN_CHECKS,
    "sms": {"expect_sms"},
    "api": {"json", "status", "expect", "expect_regex", "expect_sms"},
    "hangup": {"expect_sms"},
    "timeout": {"expect_sms"},
}
ALL_KEYS = set(STEPS) | {k for ks in STEPS.values() for k in ks}
WHY_NOT = {
    ("sms", "expect"): "an SMS has no screen: check its answer with expect_sms",
    ("sms", "expect_regex"): "an SMS has no screen: check its answer with expect_sms",
    ("sms", "end"): "an SMS has no screen to end",
    ("hangup", "expect"): "after a hang-up there is no screen",
    ("timeout", "expect"): "after a time-out there is no screen",
}

TOP = {"name", "dialect", "given", "steps"}
GIVEN = {"subscribers", "rewards", "campaigns", "vouchers"}
VOUCHERS_MAX = 100  # fresh codes a file may add to one existing reward's pool
SUBSCRIBER = {"enrolled": "bool", "credit_score": "int|null", "status": "str", "attributes": "map",
              "language": "str", "points": "int|seq", "offers": "seq", "consents": "map",
              "opted_out": "bool"}
CONSENT_STATES = ("consented", "withdrawn")
EARNING = {"points": "int", "expires_at": "str"}
REWARD = {"name": "str|map", "category": "str", "points": "int", "stock": "int|null",
          "fulfilment": "str", "partner": "str", "max_per_transaction": "int",
          "monthly_limit": "int|null", "active_from": "str", "active_until": "str",
          "generate_codes": "bool", "vouchers": "seq"}
CAMPAIGN = {"institution": "map", "product": "str", "sender_id": "str", "code": "str",
            "message": "str|map", "consent_text": "str|map", "consent_version": "str|int",
            "valid_from": "str", "valid_until": "str", "eligibility": "map"}
INSTITUTION = {"id": "str", "name": "str", "support": "str", "webhook": "map"}
SMS = {"text": "str", "from": "str"}
DIAL = {"msisdn": "str", "code": "str"}
EXPECT_SMS = {"to": "str", "contains": "str", "matches": "str"}


class ScenarioError(Exception):
    """A file that cannot run; ``problems`` are (line, message), line 0 when none."""

    def __init__(self, path: str, problems: list[tuple[int, str]]):
        self.path, self.problems = path, problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}:{line}: {msg}" if line else f"{self.path}: {msg}"
                for line, msg in self.problems]


@dataclass
class Step:
    kind: str
    value: Any
    line: int
    checks: dict = field(default_factory=dict)


@dataclass
class Scenario:
    path: str
    name: str
    steps: list[Step]
    given: dict = field(default_factory=dict)
    dialect: str | None = None
    lines: dict = field(default_factory=dict)
    """Where each name of ``given:`` is declared (for errors while creating it)."""


# -- reading ------------------------------------------------------------------------
def load_file(path: str | Path, dialects=None) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(str(path), [(0, f"cannot read: {e}")]) from None
    return load_text(text, str(path), dialects)


def load_text(text: str, path: str = "<scenario>", dialects=None) -> Scenario:
    """The scenario in ``text``, checked; ScenarioError lists every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError(path, [(mark.line + 1 if mark else 0, f"not valid YAML: {problem}")]) from None
    if node is None:
        raise ScenarioError(path, [(0, "empty file: a scenario needs steps")])
    checker = _Checker(tuple(DIALECTS if dialects is None else dialects))
    checker.top(node)
    if checker.problems:
        raise ScenarioError(path, sorted(checker.problems))
    data = _construct(node)
    steps = [Step(kind, data["steps"][i][kind], line,
                  {k: v for k, v in data["steps"][i].items() if k != kind})
             for i, (kind, line) in enumerate(checker.steps)]
    for step in steps:
        if step.kind == "input" and step.value is not None:
            step.value = str(step.value)
    return Scenario(path=path, name=str(data.get("name") or Path(path).stem), steps=steps,
                    given=data.get("given") or {}, dialect=data.get("dialect"), lines=checker.lines)


def from_data(data: dict, path: str = "<scenario>", dialects=None) -> Scenario:
    """A scenario from plain values (as a test writes one), checked the same way."""
    return load_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), path, dialects)


def _construct(node):
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


# -- checking -----------------------------------------------------------------------
def _kind(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "map"
    if isinstance(node, yaml.SequenceNode):
        return "seq"
    return {"tag:yaml.org,2002:str": "str", "tag:yaml.org,2002:int": "int",
            "tag:yaml.org,2002:bool": "bool", "tag:yaml.org,2002:null": "null",
            "tag:yaml.org,2002:float": "float"}.get(node.tag, node.tag)


NAMES = {"str": "text", "int": "whole number", "bool": "true or false", "null": "nothing",
         "map": "mapping (key: value)", "seq": "list", "float": "number"}


def _entries(pair) -> list:
    """The (key, value) nodes of a mapping found by ``_Checker.mapping``, if it is one."""
    if pair is None or not isinstance(pair[1], yaml.MappingNode):
        return []
    return pair[1].value


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiosh" and word != "hangup" else "a ") + word


def _line(node) -> int:
    return node.start_mark.line + 1


def _suggest(word: str, known) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class _Checker:
    def __init__(self, dialects: tuple[str, ...]):
        self.dialects = dialects
        self.problems: list[tuple[int, str]] = []
        self.steps: list[tuple[str, int]] = []
        self.names: dict[str, str] = {RUN: "run"}  # name -> what it names
        self.lines: dict[str, int] = {}  # name -> its line
        self.scalars: list[yaml.ScalarNode] = []  # strings that may hold ${name}

    def bad(self, node, msg: str) -> None:
        self.problems.append((_line(node), msg))

    def is_(self, node, kinds: str, what: str) -> bool:
        if _kind(node) in kinds.split("|"):
            return True
        want = " or ".join(NAMES[k] for k in kinds.split("|"))
        self.bad(node, f"{what} must be a {want}, not a {NAMES.get(_kind(node), _kind(node))}")
        return False

    def mapping(self, node, what: str, schema: dict | None = None) -> dict:
        """key -> (key node, value node), after checking keys against ``schema``."""
        if not self.is_(node, "map", what):
            return {}
        out = {}
        for k, v in node.value:
            if _kind(k) != "str":
                self.bad(k, f"{what}: keys must be text")
                continue
            if k.value in out:
                self.bad(k, f"{what}: {k.value} appears twice")
            out[k.value] = (k, v)
            if schema is not None:
                if k.value not in schema:
                    self.bad(k, f"{what}: unknown key {k.value}{_suggest(k.value, schema)}"
                                f" (known: {', '.join(schema)})")
                else:
                    self.is_(v, schema[k.value], f"{what}.{k.value}")
        return out

    def strings(self, node) -> None:
        """Remember every text under ``node`` for the ${name} check."""
        if isinstance(node, yaml.ScalarNode):
            if _kind(node) == "str":
                self.scalars.append(node)
        elif isinstance(node, yaml.SequenceNode):
            for n in node.value:
                self.strings(n)
        elif isinstance(node, yaml.MappingNode):
            for _, n in node.value:
                self.strings(n)

    def name(self, key, pattern: re.Pattern, what: str, rule: str) -> None:
        if not pattern.match(key.value):
            self.bad(key, f"{what} name {key.value!r} must be {rule}")
        elif key.value in self.names:
            self.bad(key, f"{key.value} is already the name of a {self.names[key.value]}")
        else:
            self.names[key.value] = what
            self.lines[key.value] = _line(key)

    # -- the file ----------------------------------------------------------------------
    def top(self, node) -> None:
        if not isinstance(node, yaml.MappingNode):
            self.bad(node, "a scenario is a mapping with steps: (and optionally name:, dialect:, given:)")
            return
        keys = self.mapping(node, "scenario", {"name": "str", "dialect": "str", "given": "map",
                                               "steps": "seq"})
        if "dialect" in keys and _kind(keys["dialect"][1]) == "str":
            d = keys["dialect"][1]
            if d.value not in self.dialects:
                self.bad(d, f"unknown dialect {d.value} (known: {', '.join(self.dialects)})")
        if "given" in keys:
            self.given(keys["given"][1])
        if "steps" not in keys:
            self.bad(node, "a scenario needs steps:")
        elif _kind(keys["steps"][1]) == "seq":
            steps = keys["steps"][1]
            if not steps.value:
                self.bad(steps, "steps: is empty")
            self.step_list(steps.value)
        for s in self.scalars:
            for ref in PLACEHOLDER.findall(s.value):
                if ref not in self.names:
                    self.bad(s, f"${{{ref}}} is not a name given: declares"
                                f"{_suggest(ref, self.names)}")

    def given(self, node) -> None:
        parts = self.mapping(node, "given", {k: "map" for k in GIVEN})
        for k, v in _entries(parts.get("rewards")):
            self.name(k, REWARD_ALIAS, "reward", "1-17 capital letters, digits, - or _")
            self.reward(v, k.value)
        for k, v in _entries(parts.get("campaigns")):
            self.name(k, CAMPAIGN_ALIAS, "campaign", "1-33 lowercase letters, digits or -")
            self.names[f"{k.value}.code"] = "campaign's offer code"
            self.campaign(v, k.value)
        for k, v in _entries(parts.get("subscribers")):
            self.name(k, ALIAS, "subscriber", "a letter, then letters, digits, - or _")
            self.subscriber(v, k.value)
        for k, v in _entries(parts.get("vouchers")):
            what = f"vouchers.{k.value}"
            if self.is_(v, "int", what) and not 1 <= int(v.value) <= VOUCHERS_MAX:
                self.bad(v, f"{what} must be from 1 to {VOUCHERS_MAX} (fresh codes for that reward's pool)")

    def subscriber(self, node, alias: str) -> None:
        if _kind(node) == "null":
            return
        fields = self.mapping(node, f"subscribers.{alias}", SUBSCRIBER)
        self.strings(node)
        pts = fields.get("points", (None, None))[1]
        if pts is not None and _kind(pts) == "seq":
            for e in pts.value:
                earning = self.mapping(e, f"subscribers.{alias}.points[]", EARNING)
                if "points" not in earning:
                    self.bad(e, f"subscribers.{alias}.points[] needs points:")
                if "expires_at" in earning:
                    self.time(earning["expires_at"][1])
        offers = fields.get("offers", (None, None))[1]
        offered = set()
        for o in (offers.value if offers is not None and _kind(offers) == "seq" else []):
            if self.is_(o, "str", f"subscribers.{alias}.offers[]"):
                offered.add(o.value)
        held = fields.get("consents", (None, None))[1]
        for campaign, state in (held.value if held is not None and _kind(held) == "map" else []):
            what = f"subscribers.{alias}.consents.{campaign.value}"
            if campaign.value not in offered:
                self.bad(campaign, f"{what}: a consent needs the offer: list {campaign.value} under offers")
            if self.is_(state, "str", what) and state.value not in CONSENT_STATES:
                self.bad(state, f"{what} must be {' or '.join(CONSENT_STATES)}")

    def reward(self, node, alias: str) -> None:
        fields = self.mapping(node, f"rewards.{alias}", REWARD)
        self.strings(node)
        for missing in ("name", "category", "points", "fulfilment"):
            if fields and missing not in fields:
                self.bad(node, f"rewards.{alias} needs {missing}:")
        for t in ("active_from", "active_until"):
            if t in fields:
                self.time(fields[t][1])
        vouchers = fields.get("vouchers", (None, None))[1]
        for v in (vouchers.value if vouchers is not None and _kind(vouchers) == "seq" else []):
            self.is_(v, "str", f"rewards.{alias}.vouchers[]")

    def campaign(self, node, alias: str) -> None:
        fields = self.mapping(node, f"campaigns.{alias}", CAMPAIGN)
        self.strings(node)
        for missing in ("institution", "product", "sender_id", "code", "message", "consent_text",
                        "consent_version"):
            if fields and missing not in fields:
                self.bad(node, f"campaigns.{alias} needs {missing}:")
        if "institution" in fields and _kind(fields["institution"][1]) == "map":
            inst = self.mapping(fields["institution"][1], f"campaigns.{alias}.institution", INSTITUTION)
            if "id" in inst and _kind(inst["id"][1]) == "str":
                key = inst["id"][1]
                if self.names.get(key.value) != "institution":
                    self.name(key, CAMPAIGN_ALIAS, "institution", "1-33 lowercase letters, digits or -")
        for t in ("valid_from", "valid_until"):
            if t in fields:
                self.time(fields[t][1])

    def time(self, node) -> None:
        if _kind(node) != "str":
            return
        if RELATIVE_TIME.match(node.value):
            return
        from datetime import datetime

        try:
            datetime.fromisoformat(node.value)
        except ValueError:
            self.bad(node, f"{node.value!r} is neither an ISO 8601 time nor a time from now "
                           "such as +30d, -1d, +2h or +90m")

    # -- steps ---------------------------------------------------------------------------
    def step_list(self, nodes) -> None:
        self.dialled = False
        self.in_session = False
        for node in nodes:
            self.step(node)

    def step(self, node) -> None:
        if not self.is_(node, "map", "a step"):
            self.steps.append(("?", _line(node)))
            return
        keys = self.mapping(node, "step")
        actions = [k for k in keys if k in STEPS]
        unknown = [k for k in keys if k not in ALL_KEYS]
        for k in unknown:
            what = f"key {k} in {_a(actions[0])} step" if actions else f"step {k}"
            self.bad(keys[k][0], f"unknown {what}{_suggest(k, ALL_KEYS)}")
        if len(actions) != 1:
            if len(actions) > 1:
                self.bad(node, f"a step does one thing; this one has {', '.join(actions)}")
            elif not unknown:
                self.bad(node, f"a step needs one of {', '.join(STEPS)}")
            self.steps.append(("?", _line(node)))
            return
        kind = actions[0]
        self.steps.append((kind, _line(node)))
        for k, (knode, _) in keys.items():
            if k != kind and k in ALL_KEYS and k not in STEPS[kind]:
                why = WHY_NOT.get((kind, k)) or f"it means nothing on {_a(kind)} step"
                self.bad(knode, f"{k}: {why} ({_a(kind)} step takes {', '.join(sorted(STEPS[kind]))})")
        getattr(self, f"step_{kind}")(keys[kind][1])
        self.checks(kind, keys)
        self.strings(node)

    def msisdn(self, node, what: str) -> None:
        value = node.value
        if PLACEHOLDER.fullmatch(value) or self.names.get(value) == "subscriber":
            return
        try:
            normalize(value)
        except BadRequest:
            self.bad(node, f"{what} {value!r} is neither a subscriber of given: nor a phone number")

    def step_dial(self, node) -> None:
        if _kind(node) == "str":
            self.msisdn(node, "dial")
        elif self.is_(node, "str|map", "dial"):
            fields = self.mapping(node, "dial", DIAL)
            if "msisdn" in fields and _kind(fields["msisdn"][1]) == "str":
                self.msisdn(fields["msisdn"][1], "dial.msisdn")
            elif not self.dialled:
                self.bad(node, "the first dial needs a number: dial: <msisdn or name>")
            code = fields.get("code", (None, None))[1]
            if code is not None and _kind(code) == "str" and not DIAL_CODE.match(code.value):
                self.bad(code, f"dial.code {code.value!r} is not a USSD code such as *700# or *700*2#")
        self.dialled = self.in_session = True

    def _needs_session(self, node, kind: str) -> None:
        if not self.in_session:
            self.bad(node, f"{kind} before any dial: dial first")

    def step_input(self, node) -> None:
        self._needs_session(node, "input")
        self.is_(node, "str|int", "input")

    def step_choose(self, node) -> None:
        self._needs_session(node, "choose")
        if self.is_(node, "str", "choose") and not node.value.strip():
            self.bad(node, "choose needs the text of the line to pick")

    def step_sms(self, node) -> None:
        if not self.is_(node, "str|map", "sms"):
            return
        fields = {} if _kind(node) == "str" else self.mapping(node, "sms", SMS)
        if _kind(node) == "map" and "text" not in fields:
            self.bad(node, "sms needs text:")
        if "from" in fields and _kind(fields["from"][1]) == "str":
            self.msisdn(fields["from"][1], "sms.from")
        elif not self.dialled:
            self.bad(node, "an sms step before any dial needs from: (whose phone sends it)")

    def step_api(self, node) -> None:
        if self.is_(node, "str", "api") and not API_CALL.match(node.value):
            self.bad(node, f"api {node.value!r} must read METHOD /path, e.g. GET /api/v1/rewards")

    def step_hangup(self, node) -> None:
        self._end_step(node, "hangup")

    def step_timeout(self, node) -> None:
        self._end_step(node, "timeout")

    def _end_step(self, node, kind: str) -> None:
        if _kind(node) not in ("null", "bool") or (_kind(node) == "bool" and
                                                   node.value not in ("true", "True", "yes")):
            self.bad(node, f"{kind} takes no value (write {kind}: true)")
        self._needs_session(node, kind)
        self.in_session = False

    def checks(self, kind: str, keys: dict) -> None:
        if "expect" in keys:
            v = keys["expect"][1]
            if self.is_(v, "str|seq", "expect") and _kind(v) == "seq":
                for item in v.value:
                    self.is_(item, "str", "expect[]")
        if "expect_regex" in keys:
            v = keys["expect_regex"][1]
            if self.is_(v, "str|seq", "expect_regex"):
                for item in (v.value if _kind(v) == "seq" else [v]):
                    if self.is_(item, "str", "expect_regex[]"):
                        self.regex(item)
        if "end" in keys:
            self.is_(keys["end"][1], "bool", "end")
        if "status" in keys and self.is_(keys["status"][1], "int", "status"):
            if not 100 <= int(keys["status"][1].value) <= 599:
                self.bad(keys["status"][1], "status must be an HTTP status, 100 to 599")
        if "expect_sms" in keys:
            v = keys["expect_sms"][1]
            if self.is_(v, "str|map|seq", "expect_sms"):
                for item in (v.value if _kind(v) == "seq" else [v]):
                    if not self.is_(item, "str|map", "expect_sms[]") or _kind(item) == "str":
                        continue
                    fields = self.mapping(item, "expect_sms", EXPECT_SMS)
                    if not {"contains", "matches"} & set(fields):
                        self.bad(item, "expect_sms needs contains: or matches:")
                    if "to" in fields and _kind(fields["to"][1]) == "str":
                        self.msisdn(fields["to"][1], "expect_sms.to")
                    if "matches" in fields and _kind(fields["matches"][1]) == "str":
                        self.regex(fields["matches"][1])

    def regex(self, node) -> None:
        try:
            re.compile(PLACEHOLDER.sub("x", node.value))
        except re.error as e:
            self.bad(node, f"invalid regular expression {node.value!r}: {e}")
