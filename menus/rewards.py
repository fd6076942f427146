"""Journey 2: redeem a reward (category -> reward -> quantity -> confirm)."""

from ussd_app.core import digits, formats, texts
from ussd_app.loyalty import redemptions, rewards
from ussd_app.ussd.screens import Ctx, InputError, Item, Option, Screen


def category_name(lang: str, slug: str) -> str:
    return texts.catalog(lang).get(f"rewards.category.{slug}") or slug.title()


def _catalog(ctx: Ctx) -> list[rewards.Reward]:
    """Every reward's definition, as this process keeps them (no units left)."""
    if "catalog" not in ctx.cache:
        ctx.cache["catalog"] = rewards.definitions(ctx.r, ctx.services.kept, ctx.ahead("rewards"))
    return ctx.cache["catalog"]


def _active(ctx: Ctx) -> list[rewards.Reward]:
    return [w for w in _catalog(ctx) if w.active(ctx.now)]


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


def terms(ctx: Ctx) -> rewards.Reward | None:
    """The chosen reward's definition without its units left (the process's
    copy: no round trip), for what shows or charges a quote's terms; the
    units left are :func:`chosen`'s (read live)."""
    code = ctx.data.get("reward_list", "").upper()
    return next((w for w in _catalog(ctx) if w.code == code), None)


def forget_reward(ctx: Ctx) -> None:
    """The reward changed: its terms and units left are read again."""
    ctx.cache.pop("reward", None)
    ctx.cache.pop("catalog", None)


def refusal(ctx: Ctx, qty: int = 1) -> str | None:
    """Why the caller cannot redeem ``qty`` of the chosen reward now, or None."""
    reward = chosen(ctx)
    account = _account_refusal(ctx)
    if account:
        return account
    if reward is None or not reward.active(ctx.now):
        return ctx.t("rewards.refused.inactive")
    if reward.left is not None and reward.left < qty:
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
    ctx.data.pop("quote", None)


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


# -- the confirmation: its terms are a quote, and the quote is what is charged ----
def make_quote(ctx: Ctx) -> redemptions.Quote | None:
    """Quote the chosen reward as it stands, under a fresh id (the redemption's
    idempotency key): the confirmation shows these terms, the redemption charges them."""
    reward = chosen(ctx)
    if reward is None:
        ctx.data.pop("quote", None)
        return None
    quote = redemptions.new_quote(reward, min(ctx.data.get("reward_qty", 1), reward.max_per_transaction))
    ctx.data["reward_qty"] = quote.quantity
    ctx.data["quote"] = quote.as_dict()
    return quote


def quote_of(ctx: Ctx) -> redemptions.Quote | None:
    """The terms on the confirmation screen (quoted now if none are held)."""
    held = ctx.data.get("quote")
    return redemptions.Quote.from_dict(held) if held else make_quote(ctx)


def prepare_confirm(ctx: Ctx) -> None:
    ctx.data.pop("redeemed", None)
    make_quote(ctx)


def confirm_text(ctx: Ctx, quote: redemptions.Quote) -> str:
    return ctx.t("rewards.confirm", qty=quote.quantity, name=terms(ctx).label(ctx.lang),
                 points=formats.points(quote.total, ctx.lang))


def confirm_body(ctx: Ctx) -> str:
    """The quoted terms, as quoted (shown again, e.g. after an invalid input,
    they are not quoted afresh: new terms are shown only by a confirmation
    that found them changed, so a screen never re-quotes where the error line
    takes the place of its text)."""
    quote = quote_of(ctx)
    if quote is None:
        return ctx.t("rewards.refused.inactive")
    return confirm_text(ctx, quote)


def redeem(ctx: Ctx) -> None:
    quote = quote_of(ctx)
    if quote is None:
        ctx.data["redeemed"] = ["inactive", 0]
        return
    outcome = redemptions.redeem(ctx.services, ctx.msisdn, terms(ctx), quote, "ussd")
    ctx.forget_account()
    if outcome.status == "changed":  # the reward changed since the screen: show the new terms
        forget_reward(ctx)
        make_quote(ctx)
    elif not outcome.accepted:
        ctx.data.pop("quote", None)  # refused: a next try is quoted afresh
    ctx.data["redeemed"] = [outcome.status, outcome.balance]


def _changed(ctx: Ctx) -> bool:
    """The reward changed under the confirmation and can be redeemed on its new terms."""
    return (ctx.data.get("redeemed", [None])[0] == "changed" and chosen(ctx) is not None
            and refusal(ctx, ctx.data.get("reward_qty", 1)) is None)


def done_body(ctx: Ctx) -> str:
    outcome = redemptions.Outcome(*ctx.data["redeemed"])
    if outcome.accepted:
        return ctx.t("rewards.done", name=terms(ctx).label(ctx.lang),
                     balance=formats.points(outcome.balance, ctx.lang))
    if outcome.status == "changed":
        reward = chosen(ctx)
        if reward is None or not reward.active(ctx.now):
            return ctx.t("rewards.refused.inactive")
        why = refusal(ctx, ctx.data.get("reward_qty", 1))
        return ctx.t("rewards.changed") + "\n" + (why or confirm_text(ctx, quote_of(ctx)))
    return redemptions.refusal_text(ctx.lang, outcome, chosen(ctx), ctx.data.get("reward_qty", 1))


SCREENS = [
    Screen("rewards", body=categories_body, items=categories, item_to="reward_list", resume=True),
    Screen("reward_list", body=lambda ctx: category_name(ctx.lang, ctx.data["rewards"]),
           items=reward_items, item_to="reward", resume=True),
    Screen("reward", body=reward_body, prepare=reset_quantity, resume=True, options=(
        Option("1", "rewards.redeem", "reward_qty", when=_can(multi=True)),
        Option("1", "rewards.redeem", "reward_confirm", when=_can(multi=False)),
    )),
    Screen("reward_qty", body=quantity_body, parse=parse_quantity, parse_to="reward_confirm",
           examples=("1", "2"), resume=True),
    # The debit is the act of this screen's "1", on the terms it shows.
    Screen("reward_confirm", body=confirm_body, prepare=prepare_confirm, resume=True,
           options=(Option("1", "rewards.accept", "reward_done", act=redeem),)),
    # The outcome. Terms changed under the confirmation: this screen shows the
    # new ones, and its "1" confirms them. A resume comes back to the
    # confirmation, quoted afresh, and waits for its "1".
    Screen("reward_done", body=done_body, in_history=False, resume="reward_confirm",
           options=(Option("1", "rewards.accept", "reward_done", when=_changed, act=redeem),),
           end=lambda ctx: ctx.data["redeemed"][0] in ("ok", "dup")),
]
