"""Journey 5: language, remembered per subscriber across sessions."""
from ussd_app.core import subscribers
from ussd_app.ussd.screens import Ctx, Option, Screen


def _choose(lang: str):
    def choose(ctx: Ctx) -> None:
        ctx.session.lang = lang
        subscribers.set_language(ctx.r, ctx.msisdn, lang)
    return choose


SCREENS = [
    Screen("language", body="language.title", options=(
        Option("1", "language.id", "language_saved", act=_choose("id")),
        Option("2", "language.en", "language_saved", act=_choose("en")),
    )),
    Screen("language_saved", body="language.saved"),
]
