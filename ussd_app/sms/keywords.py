"""Inbound SMS: the keyword router. Every message gets an answer."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ussd_app.offers import consents, nik
from ussd_app.core import formats, keys, subscribers, texts
from ussd_app.loyalty import points, redemptions, rewards
from ussd_app.core.inbound import InboundSms

SEPARATORS = re.compile(r"[\s#*.]+")
SEEN_TTL = 2 * 24 * 3600


@dataclass
class Inbound:
    """One inbound SMS as the handlers see it."""
    services: object
    sms: InboundSms
    words: list[str]
    lang: str

    @property
    def msisdn(self) -> str:
        return self.sms.sender

    def t(self, key: str, **values) -> str:
        return texts.t(self.lang, key, **values)

    def reply(self, key: str, sender: str | None = None, **values) -> None:
        self.services.sms.send(self.msisdn, self.t(key, **values), sender)


Handler = Callable[[Inbound], None]
HANDLERS: dict[str, Handler] = {}


def keyword(*names: str):
    def register(func: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = func
        return func
    return register


def handle(services, sms: InboundSms) -> None:
    """Act on one inbound SMS once, however often the gateway posts it."""
    r = services.r
    seen = keys.sms_seen(sms.sender, sms.message_id)
    if not r.set(seen, 1, nx=True, ex=SEEN_TTL):
        return
    words = [w for w in SEPARATORS.split(sms.text.strip()) if w]
    try:
        lang = subscribers.language(r, sms.sender) or texts.DEFAULT
        inbound = Inbound(services, sms, words, lang)
        handler = HANDLERS.get(words[0].upper(), unknown) if words else unknown
        with services.jobs.after():  # jobs run at once (the demo): after the reply, as a worker would
            handler(inbound)
    except Exception:
        r.delete(seen)  # let the gateway's retry be handled
        raise


def unknown(msg: Inbound) -> None:
    msg.reply("sms.unknown")


def _contact(msg: Inbound) -> str:
    return msg.services.config.SUPPORT_CONTACT


def _enrolled(msg: Inbound) -> bool:
    profile = subscribers.get(msg.services.r, msg.msisdn)
    if not profile.enrolled:
        msg.reply("sms.not_enrolled", contact=_contact(msg))
        return False
    if profile.status == "blocked":
        msg.reply("sms.blocked", contact=_contact(msg))
        return False
    return True


@keyword("POIN")
def balance(msg: Inbound) -> None:
    if not _enrolled(msg):
        return
    view = points.view(msg.services.r, msg.msisdn, msg.services.clock())
    if view.balance == 0:
        return msg.reply("sms.balance_empty")
    nxt = view.next_expiry
    expiry = (msg.t("sms.expiry", points=formats.points(nxt.points, msg.lang), date=formats.wib(nxt.expires_at))
              if nxt else msg.t("sms.no_expiry"))
    msg.reply("sms.balance", balance=formats.points(view.balance, msg.lang), expiry=expiry)


@keyword("HANGUS")
def expiring(msg: Inbound) -> None:
    if not _enrolled(msg):
        return
    nxt = points.view(msg.services.r, msg.msisdn, msg.services.clock()).next_expiry
    if nxt is None:
        return msg.reply("sms.hangus_none")
    msg.reply("sms.hangus", points=formats.points(nxt.points, msg.lang), date=formats.wib(nxt.expires_at))


@keyword("INFO", "BANTUAN", "HELP")
def help_(msg: Inbound) -> None:
    msg.reply("sms.help", contact=_contact(msg))


# -- redeeming by SMS: TUKAR <code>, then YA ------------------------------------
@keyword("TUKAR")
def redeem_start(msg: Inbound) -> None:
    r = msg.services.r
    if len(msg.words) < 2:
        return msg.reply("sms.tukar_usage", example="PULSA10")
    reward = rewards.get(r, msg.words[1]) if rewards.CODE.fullmatch(msg.words[1].upper()) else None
    if reward is None:  # never echoed: what was typed may be anything, a NIK too
        return msg.reply("sms.tukar_unknown")
    if not reward.active(msg.services.clock()):
        return msg.reply("sms.tukar_inactive", code=reward.code)
    # Too few points: refuse at once, as the menu does (YA would only refuse later).
    balance = points.view(r, msg.msisdn, msg.services.clock()).balance
    if balance < reward.points:
        return msg.reply("sms.tukar_refused", reason=redemptions.refusal_text(
            msg.lang, redemptions.Outcome("short", balance), reward))
    _quote(msg, reward, "sms.tukar_confirm")


def _quote(msg: Inbound, reward: rewards.Reward, key: str) -> None:
    """Quote ``reward`` (its terms held for YA) with the text ``key``, or say
    it is out of stock (before any point moves)."""
    if reward.left is not None and reward.left < 1:
        redemptions.drop_quote(msg.services.r, msg.msisdn)
        return msg.reply("sms.tukar_refused", reason=msg.t("rewards.refused.out_of_stock"))
    held = redemptions.quote(msg.services.r, msg.msisdn, reward)
    msg.reply(key, reward=reward.label(msg.lang), points=formats.points(held.total, msg.lang))


def redeem_confirm(msg: Inbound) -> bool:
    """A bare YA confirms a pending TUKAR on its quoted terms; False when none is pending."""
    r = msg.services.r
    held = redemptions.quoted(r, msg.msisdn)
    if held is None:
        return False
    reward = rewards.get(r, held.reward)
    outcome = redemptions.redeem(msg.services, msg.msisdn, reward, held, "sms")
    if outcome.status == "changed":  # the reward changed since TUKAR: quote the new terms
        if reward.active(msg.services.clock()):
            _quote(msg, rewards.get(r, held.reward), "sms.tukar_changed")
            return True
        outcome = redemptions.Outcome("inactive")
    redemptions.drop_quote(r, msg.msisdn, held.id)
    if outcome.accepted:
        msg.reply("sms.tukar_processing", reward=reward.label(msg.lang))
    else:
        msg.reply("sms.tukar_refused", reason=redemptions.refusal_text(msg.lang, outcome, reward))
    return True


@keyword("YA")
def yes(msg: Inbound) -> None:
    """YA alone confirms a pending TUKAR; YA with more words is a consent."""
    if len(msg.words) > 1:
        return consent_by_sms(msg)
    if not redeem_confirm(msg):
        offer_hint(msg)


def offer_hint(msg: Inbound) -> None:
    """YA alone with nothing to confirm: how to accept an open offer, if one is held."""
    offers, camps = _open_offers(msg)
    now = msg.services.clock()
    open_ids = sorted((c for c, o in offers.items() if o["status"] == "open" and camps.get(c)
                       and camps[c].open(now)), key=lambda c: offers[c]["code"])
    if not open_ids:
        return msg.reply("sms.ya_nothing")
    if len(open_ids) > 1:
        codes = [offers[c]["code"] for c in open_ids]
        return msg.reply("sms.which_offer", codes=", ".join(codes), example=codes[0])
    campaign = camps[open_ids[0]]
    msg.reply("sms.ya_offer", institution=campaign.institution["name"], code=offers[campaign.id]["code"])


# -- financial offers: YA <NIK>, YA <code> <NIK>, TIDAK, STOP, MULAI -------------
TAKES_CONSENT = ("open", "withdrawn")  # a withdrawn consent may be given afresh

def _open_offers(msg: Inbound) -> tuple[dict, dict]:
    """(every offer held: campaign id -> offer, their campaigns)."""
    held = consents.holdings(msg.services.r, msg.msisdn, msg.services.kept)
    return held.offers, held.campaigns


def consent_by_sms(msg: Inbound) -> None:
    services, r = msg.services, msg.services.r
    args = msg.words[1:]
    tried = consents.attempt(r, msg.msisdn, services.config.CONSENT_ATTEMPTS_PER_HOUR, services.kept)
    if tried.over:
        return msg.reply("sms.consent_rate_limited")
    if len(args) not in (1, 2):
        return msg.reply("sms.consent_format")
    code, typed_nik = (args[0].upper(), args[1]) if len(args) == 2 else (None, args[0])
    why = nik.problem(typed_nik)
    if why:
        return msg.reply(f"sms.nik_{why}")
    offers, camps = tried.holdings.offers, tried.holdings.campaigns
    if not offers:
        return msg.reply("sms.no_offer")
    now = services.clock()
    if code:
        # A code names one live campaign; an ended one that used it before comes last.
        chosen = sorted((cid for cid, o in offers.items() if o["code"] == code),
                        key=lambda cid: not (cid in camps and camps[cid].open(now)))
        if not chosen:  # the typed code is never echoed (it may be a NIK): only the known ones
            return msg.reply("sms.unknown_offer_code",
                             codes=", ".join(sorted({o["code"] for o in offers.values()})))
    else:
        chosen = [cid for cid, o in offers.items()
                  if o["status"] in TAKES_CONSENT and cid in camps and camps[cid].open(now)]
        if len(chosen) > 1:
            codes = sorted(offers[c]["code"] for c in chosen)
            return msg.reply("sms.which_offer", codes=", ".join(codes), example=codes[0])
        if not chosen:
            chosen = sorted(offers, key=lambda c: offers[c]["offered_at"])[-1:]
    campaign = camps[chosen[0]]
    proof = consents.Proof("sms", msg.sms.message_id, offers[campaign.id].get("text", ""),
                           services.vault.encrypt(msg.sms.text), msg.lang)
    status = consents.give(services, msg.msisdn, campaign, services.vault.encrypt(typed_nik), proof,
                           offers[campaign.id], tried.credit_score)
    inst = campaign.institution["name"]
    if status == "ok":
        return  # the confirmation went out with the consent
    if status == "already":
        held = consents.holdings(r, msg.msisdn, services.kept).offers.get(campaign.id)
        return _agreed(msg, campaign, consents.standing(r, msg.msisdn, held))
    if status == "expired":
        return msg.reply("sms.offer_expired", institution=inst)
    if status == "opted_out":
        return msg.reply("sms.opted_out_consent")
    msg.reply("sms.offer_closed", institution=inst)


def _agreed(msg: Inbound, campaign, consent: dict | None) -> None:
    """The subscriber already agreed to ``campaign``: whether its institution
    has received the data yet, and so what STOP would still do."""
    inst = campaign.institution["name"]
    if consent is None:  # withdrawn since the consent answered 'already'
        return msg.reply("sms.offer_closed", institution=inst)
    if consent.get("received_at"):
        return msg.reply("sms.agreed_received", institution=inst,
                         support=campaign.institution.get("support") or _contact(msg))
    msg.reply("sms.agreed_pending", institution=inst)


@keyword("TIDAK")
def decline(msg: Inbound) -> None:
    offers, camps = _open_offers(msg)
    now = msg.services.clock()
    code = msg.words[1].upper() if len(msg.words) > 1 else None
    open_ids = [c for c, o in offers.items() if o["status"] == "open" and (code is None or o["code"] == code)]
    if not open_ids:
        agreed = sorted((c for c, o in offers.items() if o["status"] == "consented" and c in camps
                         and (code is None or o["code"] == code)), key=lambda c: offers[c]["offered_at"])
        if agreed:  # nothing left to decline: say where the consent stands
            standing = consents.standing(msg.services.r, msg.msisdn, offers[agreed[-1]])
            if standing:
                return _agreed(msg, camps[agreed[-1]], standing)
        return msg.reply("sms.no_offer")
    if len(open_ids) > 1:
        return msg.reply("sms.which_offer_decline", codes=", ".join(sorted(offers[c]["code"] for c in open_ids)))
    campaign = camps[open_ids[0]]
    consents.decline(msg.services.r, msg.msisdn, campaign, "sms", msg.sms.message_id, now)
    msg.reply("sms.declined", institution=campaign.institution["name"])


@keyword("STOP", "BERHENTI", "UNREG", "OFF")
def opt_out(msg: Inbound) -> None:
    # the confirmation SMS goes out with the opt-out (the same from the menu)
    consents.opt_out(msg.services, msg.msisdn, "sms", msg.sms.message_id,
                     msg.services.vault.encrypt(msg.sms.text), msg.lang)


@keyword("MULAI", "DAFTAR")
def opt_in(msg: Inbound) -> None:
    consents.opt_in(msg.services.r, msg.msisdn, "sms", msg.sms.message_id, msg.services.clock())
    msg.reply("sms.opted_in")
