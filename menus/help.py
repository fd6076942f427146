"""Journey 4: help (the programme, earning, expiry, support)."""
from ussd_app.ussd.screens import Ctx, Option, Screen


def contact(ctx: Ctx) -> str:
    return ctx.t("help.contact_text", contact=ctx.config.SUPPORT_CONTACT)


SCREENS = [
    Screen("help", body="help.title", options=(
        Option("1", "help.about", "help_about"),
        Option("2", "help.earn", "help_earn"),
        Option("3", "help.expiry", "help_expiry"),
        Option("4", "help.contact", "help_contact"),
    )),
    Screen("help_about", body="help.about_text"),
    Screen("help_earn", body="help.earn_text"),
    Screen("help_expiry", body="help.expiry_text"),
    Screen("help_contact", body=contact),
]
