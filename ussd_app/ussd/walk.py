"""Walk the menu graph: every reachable screen, rendered for real, checked
against the screen limit and the GSM-7 alphabet (``ussd-app menus check``)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ussd_app.core import digits, gsm7, texts
from ussd_app.ussd import hop as ussd
from ussd_app.ussd.engine import NEXT
from ussd_app.ussd.types import Hop


EXPANSIONS = 12


@dataclass(frozen=True)
class Seen:
    lang: str
    path: tuple[str, ...]
    state: str
    text: str
    end: bool
    error: str | None = None  # the hop raised (a text key missing, a callback's bug)


def _inputs(engine, state: str, shown: str) -> list[str]:
    """What to type on a screen: list entries first, then options (the ones that
    end or undo things, like stop or decline, come later in each screen), then
    the screen's example inputs, then an invalid input."""
    screen = engine.screens[state]
    keys = [o.key for o in screen.options]
    out = []
    if screen.items:
        n = sum(1 for line in shown.splitlines() if digits.only(line.split(" ", 1)[0])
                and line.split(" ", 1)[0] not in keys + ["0", "00", NEXT])
        out += [str(i) for i in range(1, n + 1)]
    out += list(dict.fromkeys(keys))
    if f"\n{NEXT} " in shown:
        out.append(NEXT)
    out += list(screen.examples)
    out.append("x")  # an invalid input: shows the error line
    return out


def walk(services, msisdn: str, reset, max_paths: int = 3000) -> Iterator[Seen]:
    """Every distinct screen reachable by typing, in both languages.

    Each path is dialled as a fresh session with its inputs typed in advance,
    after ``reset()`` has laid the data anew: the walk acts as a subscriber
    would (it redeems, consents, stops offers), and no path sees another's acts.
    """
    engine = services.engine
    for lang in texts.LANGUAGES:
        shown, expanded = set(), {}
        prefix = ("5", "1" if lang == "id" else "2", "00")
        stack = [prefix]
        count = 0
        while stack and count < max_paths:
            path = stack.pop()
            count += 1
            sid = f"walk-{lang}-{count}"
            reset()
            try:
                result = ussd.hop(services, Hop(sid, msisdn, services.config.USSD_SERVICE_CODE,
                                                inputs=path, history=True))
            except Exception as e:  # a lint reports what breaks a screen, and walks on
                yield Seen(lang, path[len(prefix):], "", "", True, f"the hop raised {e!r}")
                continue
            reply, state = result.reply, result.after
            if (state, reply.text) in shown:
                continue
            shown.add((state, reply.text))
            yield Seen(lang, path[len(prefix):], state, reply.text, reply.end)
            # A screen is expanded once per distinct text it showed (other list
            # entries, other refusals), up to a few times per screen.
            if reply.end or path[-1] == "x" or expanded.get(state, 0) >= EXPANSIONS:
                continue
            expanded[state] = expanded.get(state, 0) + 1
            for typed in reversed(_inputs(engine, state, reply.text)):
                stack.append(path + (typed,))


def problems_of(services, seen: Seen) -> list[str]:
    """Why a screen shown on the walk cannot go to a phone."""
    if seen.error:
        return [seen.error]
    return gsm7.problems(seen.text, services.config.USSD_MAX_CHARS)


def missing_texts(engine) -> list[str]:
    """Text keys a screen's body or an option names that a language lacks, and
    keys one language has and another not (a missing English text would show the
    Indonesian one)."""
    out = []
    catalogs = {lang: texts.catalog(lang) for lang in texts.LANGUAGES}
    for name, screen in sorted(engine.screens.items()):
        named = ([screen.body] if isinstance(screen.body, str) else []) + [o.label for o in screen.options]
        for key in named:
            out += [f"[{lang}] {name}: no text {key!r} in menus/texts/{lang}.yaml"
                    for lang, catalog in catalogs.items() if key not in catalog]
    every = set().union(*catalogs.values())
    for lang, catalog in catalogs.items():
        out += [f"[{lang}] no text {key!r} in menus/texts/{lang}.yaml (the other language has it)"
                for key in sorted(every - set(catalog))]
    return out


def unreachable(engine) -> set[str]:
    """Screens no path of inputs leads to from the main menu."""
    edges = engine.edges()
    seen, todo = {engine.main}, [engine.main]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return set(engine.screens) - seen


def dead_ends(engine) -> set[str]:
    """Non-final screens a subscriber cannot leave: no options and no navigation."""
    edges = engine.edges()
    return {name for name, s in engine.screens.items()
            if name == engine.main and not edges[name] and s.end is False}


@dataclass
class Report:
    screens: int
    states: set
    problems: list[str]


def check(services, seed, msisdns: list[str]) -> Report:
    """Walk every screen of each of ``msisdns`` on throwaway data laid by
    ``seed(services)`` before each path; list what is wrong.

    Only for a Redis holding nothing else: every path starts from a flushed
    database with that data.
    """
    raw = services.raw
    raw.flushdb()
    seed(services)
    pipe = raw.pipeline(transaction=False)
    names = raw.keys("*")
    for name in names:
        pipe.dump(name)
    snapshot = list(zip(names, pipe.execute()))

    def reset():
        pipe = raw.pipeline(transaction=False)
        pipe.flushdb()
        for name, value in snapshot:
            pipe.restore(name, 0, value)
        pipe.execute()

    problems = [f"unreachable screen: {n}" for n in sorted(unreachable(services.engine))]
    problems += [f"dead end: {n}" for n in sorted(dead_ends(services.engine))]
    problems += missing_texts(services.engine)
    count, states = 0, set()
    for msisdn in msisdns:
        for seen in walk(services, msisdn, reset):
            count += 1
            if seen.state:
                states.add(seen.state)
            problems += [f"[{seen.lang}] {seen.state or '?'} via {'*'.join(seen.path) or 'dial'}: {p}"
                         for p in problems_of(services, seen)]
    missed = set(services.engine.screens) - states
    problems += [f"never shown on the walk: {n}" for n in sorted(missed)]
    return Report(count, states, list(dict.fromkeys(problems)))  # each once, whoever met it
