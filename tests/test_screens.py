"""Every reachable screen, in both languages, fits the limit and GSM-7."""
from click.testing import CliRunner

from ussd_app import cli, demo
from ussd_app.ussd import walk


def test_every_screen_is_shown_and_fits_in_both_languages(services):
    report = walk.check(services, demo.seed, demo.WALKED)
    assert report.problems == []
    assert report.states == set(services.engine.screens)
    assert report.screens > 100


def test_graph_has_no_unreachable_screens(services):
    assert walk.unreachable(services.engine) == set()
    assert walk.dead_ends(services.engine) == set()


def test_menus_check_command_passes():
    result = CliRunner().invoke(cli.main, ["menus", "check"])
    assert result.exit_code == 0, result.output
    assert "0 problems" in result.output


def test_menus_check_fails_on_a_too_small_limit(monkeypatch):
    monkeypatch.setenv("USSD_MAX_CHARS", "60")
    result = CliRunner().invoke(cli.main, ["menus", "check"])
    assert result.exit_code == 1
    assert "over the limit of 60" in result.output


def test_gsm7_counts_extension_characters_twice():
    from ussd_app.core import gsm7
    assert gsm7.length("a{b}") == 6
    assert gsm7.problems("\u201cquoted\u201d", 160) == ["characters outside GSM-7: '\u201c\u201d'"]


def test_menus_check_names_a_missing_text_in_each_language(services):
    import dataclasses

    import menus
    from ussd_app.ussd.engine import Engine

    screens = menus.screens()
    screens["help_earn"] = dataclasses.replace(screens["help_earn"], body="help.no_such_text")
    problems = walk.missing_texts(Engine(screens, menus.MAIN))
    assert problems == ["[id] help_earn: no text 'help.no_such_text' in menus/texts/id.yaml",
                        "[en] help_earn: no text 'help.no_such_text' in menus/texts/en.yaml"]
    assert walk.missing_texts(services.engine) == []


def test_the_walk_reports_a_screen_that_raises_and_goes_on(services, monkeypatch):
    import dataclasses

    import menus
    from ussd_app.ussd.engine import Engine

    def boom(ctx):
        raise KeyError("main.gone")

    screens = menus.screens()
    screens[menus.MAIN] = dataclasses.replace(screens[menus.MAIN], body=boom)
    monkeypatch.setattr(services, "engine", Engine(screens, menus.MAIN))
    seen = next(walk.walk(services, "+6281234567890", lambda: None))
    assert walk.problems_of(services, seen) == ["the hop raised KeyError('main.gone')"]
