"""What a subscriber sees: the menu graph, one module per journey, and the
texts in ``texts/<lang>.yaml``."""
from __future__ import annotations

from ussd_app.ussd.screens import Screen

from . import help, language, main, offers, points, rewards

MAIN = main.MAIN


def screens() -> dict[str, Screen]:
    """Every screen of every journey, by name."""
    out: dict[str, Screen] = {}
    for module in (main, points, rewards, offers, help, language):
        for screen in module.SCREENS:
            if screen.name in out:
                raise ValueError(f"screen {screen.name!r} is defined twice")
            out[screen.name] = screen
    return out
