"""Journey 4: help (the programme, earning, expiry, support)."""
from ussd_app.ussd.screens import Ctx, Option, Screen


def contact(ctx: Ctx) -> str:
    return ctx.t("help.contact_text", contact=ctx.config.SUPPORT_CONTACT)


def expiry(ctx: Ctx) -> str:
    """The expiry rule points get by default (POINTS_EXPIRY_POLICY), as the
    earning API and the demo apply it; a credit with its own date is the exception."""
    if ctx.config.POINTS_EXPIRY_POLICY == "rolling":
        return ctx.t("help.expiry_rolling", days=ctx.config.POINTS_EXPIRY_DAYS)
    return ctx.t("help.expiry_calendar")


SCREENS = [
    Screen("help", body="help.title", options=(
        Option("1", "help.about", "help_about"),
        Option("2", "help.earn", "help_earn"),
        Option("3", "help.expiry", "help_expiry"),
        Option("4", "help.contact", "help_contact"),
    )),
    Screen("help_about", body="help.about_text"),
    Screen("help_earn", body="help.earn_text"),
    Screen("help_expiry", body=expiry),
    Screen("help_contact", body=contact),
]
