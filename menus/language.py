"""Journey 5: language, remembered per subscriber across sessions."""
from ussd_app.core import subscribers
from ussd_app.ussd.screens import Ctx, Option, Screen


def _choose(lang: str):
    def enter(ctx: Ctx) -> None:
        ctx.session.lang = lang
        subscribers.set_language(ctx.r, ctx.msisdn, lang)
    return enter


SCREENS = [
    Screen("language", body="language.title", options=(
        Option("1", "language.id", "language_id"),
        Option("2", "language.en", "language_en"),
    )),
    Screen("language_id", body="language.saved", enter=_choose("id")),
    Screen("language_en", body="language.saved", enter=_choose("en")),
]
