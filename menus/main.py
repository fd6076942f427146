"""The main menu: points, rewards, offers, help, language, in this order."""
from ussd_app.ussd.screens import Option, Screen

MAIN = "main"

SCREENS = [
    Screen(MAIN, body="main.title", options=(
        Option("1", "main.points", "points"),
        Option("2", "main.rewards", "rewards"),
        Option("3", "main.offers", "offers"),
        Option("4", "main.help", "help"),
        Option("5", "main.language", "language"),
    )),
]
