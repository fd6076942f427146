"""Inbound SMS: the keyword router. Every message gets an answer."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .. import formats, keys, points, redemptions, rewards, subscribers, texts
from ..gateways.types import InboundSms

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

    def reply(self, key: str, **values) -> None:
        self.services.sms.send(self.msisdn, self.t(key, **values))


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
    if not r.set(keys.sms_seen(sms.sender, sms.message_id), 1, nx=True, ex=SEEN_TTL):
        return
    words = [w for w in SEPARATORS.split(sms.text.strip()) if w]
    lang = subscribers.language(r, sms.sender) or texts.DEFAULT
    inbound = Inbound(services, sms, words, lang)
    handler = HANDLERS.get(words[0].upper(), unknown) if words else unknown
    handler(inbound)


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
PENDING_TTL = 300


@keyword("TUKAR")
def redeem_start(msg: Inbound) -> None:
    r = msg.services.r
    if len(msg.words) < 2:
        return msg.reply("sms.tukar_usage", example="PULSA10")
    reward = rewards.get(r, msg.words[1])
    if reward is None or not reward.active(msg.services.clock()):
        return msg.reply("sms.tukar_unknown", code=msg.words[1].upper()[:24])
    pipe = r.pipeline(transaction=True)
    pipe.delete(keys.sms_pending(msg.msisdn))
    pipe.hset(keys.sms_pending(msg.msisdn), mapping={"action": "redeem", "reward": reward.code,
                                                     "id": msg.sms.message_id})
    pipe.expire(keys.sms_pending(msg.msisdn), PENDING_TTL)
    pipe.execute()
    msg.reply("sms.tukar_confirm", reward=reward.label(msg.lang),
              points=formats.points(reward.points, msg.lang))


def redeem_confirm(msg: Inbound) -> bool:
    """A bare YA confirms a pending TUKAR; False when none is pending."""
    r = msg.services.r
    pending = r.hgetall(keys.sms_pending(msg.msisdn))
    if pending.get("action") != "redeem":
        return False
    reward = rewards.get(r, pending["reward"])
    outcome = (redemptions.redeem(msg.services, msg.msisdn, reward, 1, f"sms:{pending['id']}", "sms")
               if reward else redemptions.Outcome("inactive"))
    r.delete(keys.sms_pending(msg.msisdn))
    if outcome.accepted:
        msg.reply("sms.tukar_processing", reward=reward.label(msg.lang))
    else:
        msg.reply("sms.tukar_refused", reason=refusal_text(msg, outcome, reward))
    return True


def refusal_text(msg: Inbound, outcome, reward) -> str:
    if outcome.status == "short":
        return msg.t("rewards.refused.short", short=formats.points(reward.points - outcome.balance, msg.lang))
    if outcome.status == "limit":
        return msg.t("rewards.refused.limit", limit=reward.monthly_limit)
    return msg.t(f"rewards.refused.{outcome.status}")


@keyword("YA")
def yes(msg: Inbound) -> None:
    if len(msg.words) == 1 and redeem_confirm(msg):
        return
    msg.reply("sms.ya_nothing")
