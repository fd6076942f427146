"""Walk the menu graph: every reachable screen, rendered for real, checked
against the screen limit and the GSM-7 alphabet (``ussd-app menus check``)."""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from . import gsm7, texts, ussd
from .engine import NEXT
from .gateways.types import UssdRequest


EXPANSIONS = 12


@dataclass(frozen=True)
class Seen:
    lang: str
    path: tuple[str, ...]
    state: str
    text: str
    end: bool


def _inputs(engine, state: str, shown: str) -> list[str]:
    screen = engine.screens[state]
    out = [o.key for o in screen.options]
    if screen.items:
        n = sum(1 for line in shown.splitlines() if line.split(" ", 1)[0].isdigit()
                and line.split(" ", 1)[0] not in out and line.split(" ", 1)[0] not in ("0", "00", NEXT))
        out += [str(i) for i in range(1, n + 1)]
    if f"\n{NEXT} " in shown:
        out.append(NEXT)
    out += list(screen.examples)
    out.append("x")  # an invalid input: shows the error line
    return out


def walk(services, msisdn: str, max_paths: int = 3000) -> Iterator[Seen]:
    """Every distinct screen reachable by typing, in both languages, breadth first.

    Each path is dialled as a fresh session with its inputs typed in advance, so
    the walk acts as a subscriber would (it may redeem or consent on its data).
    """
    engine = services.engine
    for lang in texts.LANGUAGES:
        shown, expanded = set(), {}
        prefix = ("5", "1" if lang == "id" else "2", "00")
        queue = deque([prefix])
        count = 0
        while queue and count < max_paths:
            path = queue.popleft()
            count += 1
            sid = f"walk-{lang}-{count}"
            reply, _, state = ussd.hop(services, UssdRequest(
                sid, services.config.USSD_SERVICE_CODE, msisdn, "*".join(path)))
            if (state, reply.text) in shown:
                continue
            shown.add((state, reply.text))
            yield Seen(lang, path[len(prefix):], state, reply.text, reply.end)
            # A screen is expanded once per distinct text it showed (other list
            # entries, other refusals), up to a few times per screen.
            if reply.end or path[-1] == "x" or expanded.get(state, 0) >= EXPANSIONS:
                continue
            expanded[state] = expanded.get(state, 0) + 1
            for typed in _inputs(engine, state, reply.text):
                queue.append(path + (typed,))


def problems(services, seen: Seen) -> list[str]:
    """Why a screen shown on the walk cannot go to a phone."""
    return gsm7.problems(seen.text, services.config.USSD_MAX_CHARS)


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
