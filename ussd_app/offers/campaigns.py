"""Campaigns of partner institutions: definition and eligibility."""
from __future__ import annotations

import json
import re
import string
import time
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import msgspec
import redis
from msgspec import UNSET, UnsetType

from ussd_app.core import bodies, formats, gsm7, keys, store, texts
from ussd_app.core.bodies import Meta
from ussd_app.core.errors import BadRequest, Conflict
from ussd_app.core.store import Script

ID = re.compile(r"\A[a-z0-9][a-z0-9-]{0,39}\Z")
CODE_RULE = "2-10 letters or digits, starting with a letter, not a keyword"
RESERVED_CODES = {"YA", "TIDAK", "STOP", "BERHENTI", "UNREG", "OFF", "MULAI", "DAFTAR", "POIN",
                  "HANGUS", "INFO", "BANTUAN", "TUKAR", "HELP"}
CONSENT_TEXT_MAX = 110  # leaves room for the options on the disclosure screen
TERMS_MAX = 40  # the offer's detail screen holds them with the longest name, product and code
MESSAGE_MAX = 300
NAME_MAX = 30  # institution name and product: a list line holds both
SUPPORT_MAX = 60
VERSION_MAX = 20


@dataclass(frozen=True)
class Campaign:
    id: str
    institution: dict  # id, name, support, webhook {url, secret_enc} (optional)
    product: str
    sender_id: str
    code: str
    message: dict  # lang -> text
    consent_text: dict  # lang -> text
    consent_version: str
    valid_from: float
    valid_until: float
    eligibility: dict = field(default_factory=dict)
    terms: dict = field(default_factory=dict)  # lang -> the product's terms in one short line (optional)

    def text(self, what: str, lang: str) -> str:
        texts = getattr(self, what)
        return texts.get(lang) or texts.get("id", "")

    def open(self, now: float) -> bool:
        return self.valid_from <= now < self.valid_until

    def public(self) -> dict:
        """As the API shows it: the webhook's secret never."""
        out = asdict(self)
        out["valid_from"], out["valid_until"] = formats.iso(self.valid_from), formats.iso(self.valid_until)
        if "webhook" in self.institution:
            out["institution"]["webhook"] = {"url": self.institution["webhook"]["url"]}
        return out


Slug = Annotated[str, Meta(pattern=ID.pattern, description="1-40 lowercase letters, digits or -")]
Number = Annotated[int | float, Meta(description="a number")]


class Message(bodies.Texts):
    LIMIT, LINES = MESSAGE_MAX, True  # an SMS: it may break lines


class ConsentText(bodies.Texts):
    LIMIT = CONSENT_TEXT_MAX


class Terms(bodies.Texts):
    LIMIT = TERMS_MAX  # one short line on the offer's detail screen


class Webhook(bodies.Body, forbid_unknown_fields=True):
    """The institution's lead webhook (its secret is encrypted before it is stored)."""
    url: Annotated[str, Meta(max_length=500, description="an https or http URL of at most 500 characters, "
                                                         "without credentials")]
    secret: Annotated[str, Meta(min_length=16, max_length=256, description="a string of 16-256 characters")]


class Institution(bodies.Body):
    DESCRIPTION: ClassVar[str] = "an object with id, name, and optionally support and webhook"
    id: Slug
    name: Annotated[str, bodies.text(NAME_MAX)]
    support: Annotated[str, bodies.text(SUPPORT_MAX, required=False)] | None = ""
    webhook: Annotated[Webhook, Meta(description="an object with url and secret")] | UnsetType = UNSET


class Rule(bodies.Body, forbid_unknown_fields=True):
    """An eligibility rule: at least one of min, max, equals, in."""
    DESCRIPTION: ClassVar[str] = "a rule: an object of min, max, equals or in"
    min: Number | UnsetType = UNSET
    max: Number | UnsetType = UNSET
    equals: Any = UNSET
    in_: Annotated[list, Meta(description="a list")] | UnsetType = msgspec.field(default=UNSET, name="in")

    def __post_init__(self):
        if all(v is UNSET for v in (self.min, self.max, self.equals, self.in_)):
            raise ValueError("must use min, max, equals or in")


class Eligibility(bodies.Body, forbid_unknown_fields=True):
    DESCRIPTION: ClassVar[str] = "an object of credit_score and attributes rules"
    credit_score: Rule | UnsetType = UNSET
    attributes: Annotated[dict[str, Any], Meta(description="an object of rules")] | None = None


class CampaignBody(bodies.Body):
    """A POST body (other keys are ignored)."""
    id: Slug
    institution: Institution
    product: Annotated[str, bodies.text(NAME_MAX)]
    code: Annotated[str, Meta(pattern=r"\A[A-Za-z][A-Za-z0-9]{1,9}\Z", description=CODE_RULE)]
    message: Message
    consent_text: ConsentText
    consent_version: Annotated[str | int, Meta(description=f"a text of at most {VERSION_MAX} characters")]
    valid_from: bodies.IsoTime
    valid_until: bodies.IsoTime
    sender_id: str = ""  # one of OFFER_SENDER_IDS: checked by validate
    eligibility: Eligibility | None = None
    terms: Terms | None = None

    def __post_init__(self):
        super().__post_init__()
        self.code = self.code.upper()
        if self.code in RESERVED_CODES:
            raise ValueError(f"code must be {CODE_RULE}")
        version = str(self.consent_version).strip()
        if not version:
            raise ValueError("consent_version is required")
        why = gsm7.text_problem(version, VERSION_MAX)
        if why:
            raise ValueError(f"consent_version {why}")
        self.consent_version = version


def _rules(eligibility: Eligibility | None) -> dict:
    """The rules as stored: ``{"credit_score": {...}, "attributes": {name: {...}}}``."""
    rules = {}
    if eligibility is None:
        return {"attributes": {}}
    if eligibility.credit_score is not UNSET:
        rules["credit_score"] = msgspec.to_builtins(eligibility.credit_score)
    rules["attributes"] = {}
    for name, rule in (eligibility.attributes or {}).items():
        where = "eligibility.attributes." + (name if re.fullmatch(r"\w{1,40}", name, re.ASCII)
                                             else "[" + json.dumps(name)[:42] + "]")
        rules["attributes"][name] = msgspec.to_builtins(bodies.decode(rule, Rule, where=where))
    return rules


def _webhook(got: Webhook, vault, https_only: bool) -> dict:
    """The institution's lead webhook: its URL, and its secret encrypted (``vault``)."""
    parts = urlsplit(got.url)
    schemes = ("https",) if https_only else ("https", "http")
    if parts.scheme not in schemes or not parts.hostname or "@" in parts.netloc:
        raise BadRequest("institution.webhook.url must be an " + " or ".join(schemes)
                         + " URL of at most 500 characters, without credentials")
    if vault is None:
        raise BadRequest("institution.webhook cannot be set here")
    return {"url": got.url, "secret_enc": vault.encrypt(got.secret)}


def validate(body: dict, sender_ids: list[str], now: float | None = None, vault=None,
             https_only: bool = False, default_support: str = "") -> Campaign:
    """A campaign from a POST body (:class:`CampaignBody`); BadRequest names the wrong field.

    Every text a subscriber sees (institution name and support, product,
    message, consent text, terms) is GSM-7 without control characters or line breaks
    (the SMS message may break lines), within its limit; dates lie within
    ``formats.NEAR_YEARS`` of ``now`` (default: the current time). A webhook's
    secret is encrypted with ``vault``; ``https_only`` refuses an http webhook
    (production). The SMS that name the campaign fit one segment each, with
    its support contact or else ``default_support`` (:func:`sms_problem`)."""
    now = time.time() if now is None else now
    if isinstance(body, dict):
        body = {**body, **{k: bodies.texts(body[k]) for k in ("message", "consent_text", "terms")
                           if body.get(k) is not None}}
    got = bodies.decode(body, CampaignBody)
    if got.sender_id not in sender_ids:
        raise BadRequest("sender_id must be one of " + ", ".join(sender_ids))
    inst = got.institution
    webhook = _webhook(inst.webhook, vault, https_only) if inst.webhook is not UNSET else None
    campaign = Campaign(
        id=got.id, institution={"id": inst.id, "name": inst.name, "support": inst.support,
                                **({"webhook": webhook} if webhook else {})},
        product=got.product, sender_id=got.sender_id, code=got.code,
        message=got.message.as_dict(), consent_text=got.consent_text.as_dict(),
        terms=got.terms.as_dict() if got.terms is not None else {},
        consent_version=got.consent_version,
        valid_from=bodies.near_time(got.valid_from, "valid_from", now),
        valid_until=bodies.near_time(got.valid_until, "valid_until", now), eligibility=_rules(got.eligibility))
    if campaign.valid_until <= campaign.valid_from:
        raise BadRequest("valid_until must be after valid_from")
    too_long = sms_problem(campaign, default_support)
    if too_long:
        raise BadRequest(too_long)
    return campaign


def sms_problem(campaign: Campaign, default_support: str = "") -> str | None:
    """Why a service SMS naming this campaign (its institution, product,
    support contact, code) would not fit one segment, or None: the consent
    confirmation and the other replies, in every language."""
    values = {"institution": campaign.institution["name"], "product": campaign.product,
              "support": campaign.institution.get("support") or default_support, "code": campaign.code}
    for lang in texts.LANGUAGES:
        for key, template in texts.catalog(lang).items():
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            if not key.startswith("sms.") or not names & {"institution", "product", "support"} \
                    or not names <= set(values):
                continue
            n = gsm7.length(template.format(**values))
            if n > gsm7.SMS_SEPTETS:  # every service SMS is one segment
                return (f"institution.name, product and institution.support are too long together: "
                        f"the SMS {key} ({lang}) would take {n} characters, more than one SMS ({gsm7.SMS_SEPTETS})")
    return None


def _matches(value, rule: dict) -> bool:
    if value is None:
        return False
    if "equals" in rule and value != rule["equals"]:
        return False
    if "in" in rule and value not in rule["in"]:
        return False
    try:
        if "min" in rule and value < rule["min"]:
            return False
        if "max" in rule and value > rule["max"]:
            return False
    except TypeError:
        return False
    return True


def eligible(campaign: Campaign, credit_score: int | None, attributes: dict) -> bool:
    rules = campaign.eligibility
    if "credit_score" in rules and not _matches(credit_score, rules["credit_score"]):
        return False
    return all(_matches(attributes.get(k), rule) for k, rule in rules.get("attributes", {}).items())


# -- storage ---------------------------------------------------------------------
# KEYS[1] the code's key  ARGV[1] campaign id  ARGV[2] its valid_until  ARGV[3] now (epoch seconds)
# The code is this campaign's unless another campaign holds it and has not ended
# by ``now``: then that campaign's id is returned and nothing changes. An ended
# campaign takes no code. The key expires when its holder ends (Redis's clock).
CLAIM_CODE = Script("""
local held = redis.call('GET', KEYS[1])
local id, untl
if held then id, untl = string.match(held, '^(%S+) (%S+)$') end
if tonumber(ARGV[2]) <= tonumber(ARGV[3]) then
  if id == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return false
end
if id and id ~= ARGV[1] and tonumber(untl) > tonumber(ARGV[3]) then return id end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return false
""")


def put(r: redis.Redis, campaign: Campaign, now: float | None = None) -> None:
    """Store ``campaign``, once its offer code is its own: Conflict (409) when
    another campaign that has not ended by ``now`` (default: the current time)
    holds the code, so ``YA <code> <NIK>`` names one institution. Checked and
    taken in one script: of two stored at once, one has the code."""
    now = time.time() if now is None else now
    # Campaigns stored before codes were claimed hold theirs without a key: looked for too.
    holder = next((c.id for c in every(r) if c.code == campaign.code and c.id != campaign.id
                   and c.valid_until > now), None) if campaign.valid_until > now else None
    holder = holder or CLAIM_CODE(r, [keys.offer_code(campaign.code)],
                                  [campaign.id, repr(campaign.valid_until), repr(now)])
    if holder is not None:
        raise Conflict(f"code {campaign.code} is used by campaign {holder} until it ends")
    pipe = r.pipeline(transaction=False)
    pipe.hset(keys.campaign(campaign.id), "def", json.dumps(asdict(campaign), separators=(",", ":")))
    pipe.sadd(keys.CAMPAIGNS, campaign.id)
    store.revise(pipe, keys.CAMPAIGNS_REVISION)
    pipe.execute()


def exists(r: redis.Redis, campaign_id: str) -> bool:
    return bool(r.exists(keys.campaign(campaign_id)))


def load(r: redis.Redis, ids) -> dict[str, Campaign]:
    ids = list(ids)
    if not ids:
        return {}
    pipe = r.pipeline(transaction=False)
    for cid in ids:
        pipe.hget(keys.campaign(cid), "def")
    return {cid: Campaign(**json.loads(raw)) for cid, raw in zip(ids, pipe.execute()) if raw}


def kept(r: redis.Redis, ids, revision: str | None, copies: store.Kept) -> dict[str, Campaign]:
    """Like :func:`load`, from this process's copies while the campaigns' ``revision``
    (read by the caller, with its own reads) stands: the offer screens then
    read no campaign at all."""
    revision = store.revision(r, keys.CAMPAIGNS_REVISION, revision)
    known = copies.get("campaigns", revision, {})
    missing = [cid for cid in ids if cid not in known]
    if missing:
        known = copies.put("campaigns", revision, {**known, **load(r, missing)})
    return {cid: known[cid] for cid in ids if cid in known}


def get(r: redis.Redis, campaign_id: str) -> Campaign | None:
    return load(r, [campaign_id]).get(campaign_id)


def every(r: redis.Redis) -> list[Campaign]:
    return sorted(load(r, r.smembers(keys.CAMPAIGNS)).values(), key=lambda c: c.valid_from)
