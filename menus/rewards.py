"""Journey 2: redeem a reward (category -> reward -> quantity -> confirm)."""
import hashlib

from ussd_app.core import digits, formats, texts
from ussd_app.loyalty import redemptions, rewards
from ussd_app.ussd.screens import Ctx, InputError, Item, Option, Screen


def category_name(lang: str, slug: str) -> str:
    return texts.catalog(lang).get(f"rewards.category.{slug}") or slug.title()


def _active(ctx: Ctx) -> list[rewards.Reward]:
    if "rewards" not in ctx.cache:
        ctx.cache["rewards"] = rewards.active(ctx.r, ctx.now, ctx.services.kept)
    return ctx.cache["rewards"]


def _account_refusal(ctx: Ctx) -> str | None:
    status = ctx.account().status
    if status is None:
        return ctx.t("rewards.refused.not_enrolled")
    if status == "blocked":
        return ctx.t("rewards.refused.blocked")
    return None


def categories_body(ctx: Ctx) -> str:
    refusal = _account_refusal(ctx)
    if refusal:
        return refusal
    return ctx.t("rewards.categories") if _active(ctx) else ctx.t("rewards.none")


def categories(ctx: Ctx) -> list[Item]:
    if _account_refusal(ctx):
        return []
    slugs = list(dict.fromkeys(w.category for w in _active(ctx)))
    return [Item(s, category_name(ctx.lang, s)) for s in slugs]


def reward_items(ctx: Ctx) -> list[Item]:
    return [Item(w.code, f"{w.label(ctx.lang)} {formats.points(w.points, ctx.lang)}p")
            for w in _active(ctx) if w.category == ctx.data.get("rewards")]


def chosen(ctx: Ctx) -> rewards.Reward | None:
    if "reward" not in ctx.cache:
        ctx.cache["reward"] = rewards.get(ctx.r, ctx.data.get("reward_list", ""))
    return ctx.cache["reward"]


def refusal(ctx: Ctx, qty: int = 1) -> str | None:
    """Why the caller cannot redeem ``qty`` of the chosen reward now, or None."""
    reward = chosen(ctx)
    account = _account_refusal(ctx)
    if account:
        return account
    if reward is None or not reward.active(ctx.now):
        return ctx.t("rewards.refused.inactive")
    if reward.stock is not None and reward.stock < qty:
        return ctx.t("rewards.refused.out_of_stock")
    if reward.monthly_limit is not None:
        used = redemptions.monthly_used(ctx.r, ctx.msisdn, reward.code, ctx.now)
        if used + qty > reward.monthly_limit:
            return ctx.t("rewards.refused.limit", limit=reward.monthly_limit)
    short = reward.points * qty - ctx.account().balance
    if short > 0:
        return ctx.t("rewards.refused.short", short=formats.points(short, ctx.lang))
    return None


def reward_body(ctx: Ctx) -> str:
    reward = chosen(ctx)
    if reward is None:
        return ctx.t("rewards.refused.inactive")
    balance = ctx.account().balance
    lines = [reward.label(ctx.lang),
             ctx.t("rewards.price", points=formats.points(reward.points, ctx.lang)),
             ctx.t("rewards.balance", balance=formats.points(balance, ctx.lang))]
    why = refusal(ctx)
    if why:
        lines.append(why)
    else:
        lines.append(ctx.t("rewards.after", balance=formats.points(balance - reward.points, ctx.lang)))
    return "\n".join(lines)


def _can(multi: bool):
    def when(ctx: Ctx) -> bool:
        reward = chosen(ctx)
        return refusal(ctx) is None and (reward.max_per_transaction > 1) == multi
    return when


def reset_quantity(ctx: Ctx) -> None:
    ctx.data["reward_qty"] = 1
    ctx.data.pop("redeemed", None)


def quantity_body(ctx: Ctx) -> str:
    return ctx.t("rewards.quantity", max=chosen(ctx).max_per_transaction)


def parse_quantity(ctx: Ctx, text: str) -> int:
    reward = chosen(ctx)
    qty = digits.number(text, 1, reward.max_per_transaction)
    if qty is None:
        raise InputError("rewards.bad_quantity", max=reward.max_per_transaction)
    why = refusal(ctx, qty)
    if why:
        raise InputError("rewards.quantity_refused", reason=why)
    return qty


def confirm_body(ctx: Ctx) -> str:
    reward, qty = chosen(ctx), ctx.data.get("reward_qty", 1)
    return ctx.t("rewards.confirm", qty=qty, name=reward.label(ctx.lang),
                 points=formats.points(reward.points * qty, ctx.lang))


def redeem(ctx: Ctx) -> None:
    # The hop key holds the gateway's whole text history, a NIK typed earlier in
    # the session too; the idempotency key is kept (and shown in the ledger): a digest.
    key = "hop-" + hashlib.sha256(ctx.hop_key.encode()).hexdigest()[:32]
    outcome = redemptions.redeem(ctx.services, ctx.msisdn, chosen(ctx), ctx.data.get("reward_qty", 1),
                                 key, "ussd")
    ctx.forget_account()
    ctx.data["redeemed"] = [outcome.status, outcome.balance]


def done_body(ctx: Ctx) -> str:
    outcome = redemptions.Outcome(*ctx.data["redeemed"])
    if outcome.accepted:
        return ctx.t("rewards.done", name=chosen(ctx).label(ctx.lang),
                     balance=formats.points(outcome.balance, ctx.lang))
    return redemptions.refusal_text(ctx.lang, outcome, chosen(ctx), ctx.data.get("reward_qty", 1))


SCREENS = [
    Screen("rewards", body=categories_body, items=categories, item_to="reward_list"),
    Screen("reward_list", body=lambda ctx: category_name(ctx.lang, ctx.data["rewards"]),
           items=reward_items, item_to="reward"),
    Screen("reward", body=reward_body, enter=reset_quantity, options=(
        Option("1", "rewards.redeem", "reward_qty", when=_can(multi=True)),
        Option("1", "rewards.redeem", "reward_confirm", when=_can(multi=False)),
    )),
    Screen("reward_qty", body=quantity_body, parse=parse_quantity, parse_to="reward_confirm",
           examples=("1", "2")),
    Screen("reward_confirm", body=confirm_body, options=(Option("1", "rewards.accept", "reward_done"),)),
    Screen("reward_done", body=done_body, enter=redeem, in_history=False,
           end=lambda ctx: ctx.data["redeemed"][0] in ("ok", "dup")),
]
