"""Campaigns of partner institutions: definition and eligibility."""
from __future__ import annotations

import json
import re
import string
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import redis

from ussd_app.core import formats, gsm7, keys, store, texts
from ussd_app.core.errors import BadRequest

ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
CODE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
RESERVED_CODES = {"YA", "TIDAK", "STOP", "BERHENTI", "UNREG", "OFF", "MULAI", "DAFTAR", "POIN",
                  "HANGUS", "INFO", "BANTUAN", "TUKAR", "HELP"}
CONSENT_TEXT_MAX = 110  # leaves room for the options on the disclosure screen
TERMS_MAX = 40  # the offer's detail screen holds them with the longest name, product and code
MESSAGE_MAX = 300
NAME_MAX = 30  # institution name and product: a list line holds both
SUPPORT_MAX = 60
VERSION_MAX = 20
SMS_MAX = 160  # every service SMS is one GSM-7 segment


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


def _line(value, name: str, limit: int, required: bool = True) -> str:
    """A text a subscriber sees as (part of) one line: GSM-7, no line break or
    control character, at most ``limit`` septets; BadRequest names ``name``."""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{name} must be a text of at most {limit} characters")
    why = gsm7.text_problem(value.strip(), limit)
    if why:
        raise BadRequest(f"{name} {why}")
    return value.strip()


def _texts(body: dict, name: str, limit: int, lines: bool = False) -> dict:
    """A text per language (``id`` required); ``lines``: line breaks allowed (an SMS)."""
    value = body.get(name)
    if isinstance(value, str):
        value = {"id": value}
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"].strip():
        raise BadRequest(f"{name} must have an Indonesian text in {name}.id")
    out = {}
    for lang, text in value.items():
        if lang not in ("id", "en") or not isinstance(text, str) or not text.strip():
            raise BadRequest(f"{name} may only have texts in id and en")
        why = gsm7.text_problem(text.strip(), limit, lines=lines)
        if why:
            raise BadRequest(f"{name}.{lang} {why}")
        out[lang] = text.strip()
    return out


def _time(body: dict, name: str, now: float) -> float:
    try:
        return formats.parse_near(body.get(name), now)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time within {formats.NEAR_YEARS} years of now, "
                         "e.g. 2026-12-31T23:59:00+07:00") from None


def _rule(name: str, rule) -> dict:
    if not isinstance(rule, dict) or not rule or not set(rule) <= {"min", "max", "equals", "in"}:
        raise BadRequest(f"eligibility rule {name} must use min, max, equals or in")
    for bound in ("min", "max"):
        if bound in rule and (not isinstance(rule[bound], (int, float)) or isinstance(rule[bound], bool)):
            raise BadRequest(f"eligibility rule {name}.{bound} must be a number")
    if "in" in rule and not isinstance(rule["in"], list):
        raise BadRequest(f"eligibility rule {name}.in must be a list")
    return rule


def _webhook(raw, vault, https_only: bool) -> dict:
    """The institution's lead webhook: its URL, and its secret encrypted (``vault``)."""
    if not isinstance(raw, dict) or set(raw) != {"url", "secret"}:
        raise BadRequest("institution.webhook must be an object with url and secret")
    url, secret = raw["url"], raw["secret"]
    parts = urlsplit(url) if isinstance(url, str) and len(url) <= 500 else None
    schemes = ("https",) if https_only else ("https", "http")
    if parts is None or parts.scheme not in schemes or not parts.hostname or "@" in parts.netloc:
        raise BadRequest("institution.webhook.url must be an " + " or ".join(schemes)
                         + " URL of at most 500 characters, without credentials")
    if not isinstance(secret, str) or not 16 <= len(secret) <= 256:
        raise BadRequest("institution.webhook.secret must be a string of 16-256 characters")
    if vault is None:
        raise BadRequest("institution.webhook cannot be set here")
    return {"url": url, "secret_enc": vault.encrypt(secret)}


def validate(body: dict, sender_ids: list[str], now: float | None = None, vault=None,
             https_only: bool = False, default_support: str = "") -> Campaign:
    """A campaign from a POST body; BadRequest names the wrong field.

    Every text a subscriber sees (institution name and support, product,
    message, consent text, terms) is GSM-7 without control characters or line breaks
    (the SMS message may break lines), within its limit; dates lie within
    ``formats.NEAR_YEARS`` of ``now`` (default: the current time). A webhook's
    secret is encrypted with ``vault``; ``https_only`` refuses an http webhook
    (production). The SMS that name the campaign fit one segment each, with
    its support contact or else ``default_support`` (:func:`sms_problem`)."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    now = time.time() if now is None else now
    cid = body.get("id")
    if not isinstance(cid, str) or not ID.fullmatch(cid):
        raise BadRequest("id must be 1-40 lowercase letters, digits or -")
    inst = body.get("institution")
    if not isinstance(inst, dict) or not isinstance(inst.get("id"), str) or not ID.fullmatch(inst["id"]):
        raise BadRequest("institution.id must be 1-40 lowercase letters, digits or -")
    inst_name = _line(inst.get("name"), "institution.name", NAME_MAX)
    support = _line(inst.get("support") or "", "institution.support", SUPPORT_MAX, required=False)
    webhook = _webhook(inst["webhook"], vault, https_only) if "webhook" in inst else None
    product = _line(body.get("product"), "product", NAME_MAX)
    if not isinstance(body.get("sender_id"), str) or body["sender_id"] not in sender_ids:
        raise BadRequest("sender_id must be one of " + ", ".join(sender_ids))
    code = body.get("code")
    if not isinstance(code, str) or not CODE.fullmatch(code.upper()) or code.upper() in RESERVED_CODES:
        raise BadRequest("code must be 2-10 letters or digits, starting with a letter, not a keyword")
    version = body.get("consent_version")
    if isinstance(version, bool) or not isinstance(version, (str, int)) or not str(version).strip():
        raise BadRequest("consent_version is required")
    version = _line(str(version), "consent_version", VERSION_MAX)
    eligibility = body.get("eligibility") or {}
    if not isinstance(eligibility, dict) or not set(eligibility) <= {"credit_score", "attributes"}:
        raise BadRequest("eligibility may hold credit_score and attributes")
    rules = {}
    if "credit_score" in eligibility:
        rules["credit_score"] = _rule("credit_score", eligibility["credit_score"])
    attrs = eligibility.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise BadRequest("eligibility.attributes must be an object")
    rules["attributes"] = {k: _rule(k, v) for k, v in attrs.items()}
    campaign = Campaign(
        id=cid, institution={"id": inst["id"], "name": inst_name, "support": support,
                             **({"webhook": webhook} if webhook else {})},
        product=product, sender_id=body["sender_id"], code=code.upper(),
        message=_texts(body, "message", MESSAGE_MAX, lines=True),
        consent_text=_texts(body, "consent_text", CONSENT_TEXT_MAX),
        terms=_texts(body, "terms", TERMS_MAX) if body.get("terms") is not None else {},
        consent_version=version, valid_from=_time(body, "valid_from", now),
        valid_until=_time(body, "valid_until", now), eligibility=rules)
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
            if n > SMS_MAX:
                return (f"institution.name, product and institution.support are too long together: "
                        f"the SMS {key} ({lang}) would take {n} characters, more than one SMS ({SMS_MAX})")
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
def put(r: redis.Redis, campaign: Campaign) -> None:
    pipe = r.pipeline(transaction=False)
    pipe.hset(keys.campaign(campaign.id), "def", json.dumps(asdict(campaign), separators=(",", ":")))
    pipe.sadd(keys.CAMPAIGNS, campaign.id)
    pipe.hset(keys.OFFER_CODES, campaign.code, campaign.id)
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
