"""Journey 1: check points (balance and what expires next)."""
from ussd_app.core import formats
from ussd_app.ussd.screens import Ctx, Screen


def balance(ctx: Ctx) -> str:
    view = ctx.account()
    if view.status is None:
        return ctx.t("points.not_enrolled")
    if view.status == "blocked":
        return ctx.t("points.blocked")
    if view.balance == 0:
        return ctx.t("points.empty")
    text = ctx.t("points.balance", balance=formats.points(view.balance, ctx.lang))
    nxt = view.next_expiry
    if nxt is None:
        return text + "\n" + ctx.t("points.no_expiry")
    return text + "\n" + ctx.t("points.next_expiry", points=formats.points(nxt.points, ctx.lang),
                               date=formats.wib(nxt.expires_at))


SCREENS = [Screen("points", body=balance)]
