"""The menu engine: one `transitions` machine per process drives every session.

Per hop the session's state rides on a tiny model object and the shared
machine's ``input`` event is triggered on it (no Machine, no add_model per
request: bench/hop_cost.py measures it, docs/benchmark.md). Navigation keys
common to every screen (``0`` back, ``00`` main menu, ``98`` next page) are
handled here, before the menu graph sees the input.
"""
from __future__ import annotations

import logging

from transitions import Machine, State

from ussd_app.ussd.types import Reply
from ussd_app.ussd.screens import Ctx, InputError, Screen
from ussd_app.core import digits, gsm7

# transitions logs every callback at INFO and every unmatched input at WARNING;
# an unmatched input is ordinary here (the engine answers it), so keep it quiet.
logging.getLogger("transitions").setLevel(logging.ERROR)
log = logging.getLogger(__name__)

BACK, MAIN, NEXT = "0", "00", "98"
NAV_KEYS = (BACK, MAIN, NEXT)
UNSHOWN = "_unshown"  # session data: the screen last shown as an apology (takes navigation only)


class _Model:
    """What the shared machine moves: just a state name."""
    __slots__ = ("state",)

    def __init__(self, state: str):
        self.state = state


def _kw(ev):
    return ev.kwargs["ctx"], ev.kwargs["text"]


class Engine:
    def __init__(self, screens: dict[str, Screen], main: str):
        self.screens = screens
        self.main = main
        self.machine = Machine(model=None, states=[self._state(s) for s in screens.values()],
                               transitions=self._transitions(), initial=main,
                               auto_transitions=False, ignore_invalid_triggers=True,
                               send_event=True)
        self._input = self.machine.events["input"]

    # -- building the graph (once) ------------------------------------------
    @staticmethod
    def _state(screen: Screen) -> State:
        on_enter = []
        if screen.enter:
            on_enter.append(lambda ev, enter=screen.enter: enter(ev.kwargs["ctx"]))
        return State(screen.name, on_enter=on_enter)

    def _transitions(self) -> list[dict]:
        table = []
        for s in self.screens.values():
            for opt in s.options:
                table.append(dict(trigger="input", source=s.name, dest=opt.to,
                                  conditions=[_option_matches(opt)]))
            if s.items:
                table.append(dict(trigger="input", source=s.name, dest=s.item_to,
                                  conditions=[_item_matches(s)], before=[_store_item(s)]))
            if s.parse:
                table.append(dict(trigger="input", source=s.name, dest=s.parse_to,
                                  conditions=[_parse_ok(s)], before=[_store_parsed(s)]))
        return table

    def edges(self) -> dict[str, set[str]]:
        """Screen -> screens reachable in one input (for the lint and the walk)."""
        out = {name: set() for name in self.screens}
        for dest_list in self.machine.events["input"].transitions.values():
            for tr in dest_list:
                out[tr.source].add(tr.dest)
        return out

    # -- one hop ------------------------------------------------------------
    def start(self, ctx: Ctx) -> Reply:
        ctx.session.state = self.main
        return self.render(ctx)

    def reenter(self, ctx: Ctx) -> Reply:
        """The session's screen entered again (a resumed session): its ``enter``
        runs as on arrival, so what it holds is read afresh (a confirmation
        quotes today's terms), then it is shown."""
        screen = self.screens[ctx.session.state]
        if screen.enter:
            screen.enter(ctx)
        return self.render(ctx)

    def step(self, ctx: Ctx, text: str) -> Reply:
        s = ctx.session
        error = None
        if text == MAIN:
            s.history.clear()
            self._go(s, self.main)
        elif text == BACK and s.state != self.main:
            self._go(s, s.history.pop() if s.history else self.main)
        elif s.data.get(UNSHOWN) == s.state:  # its options were not shown: none is taken
            error = InputError("error.invalid_choice")
        elif text == NEXT and s.page + 1 < len(self.layout(ctx)[1]):
            s.page += 1
        else:
            before = s.state
            model = _Model(before)
            if self._input.trigger(model, ctx=ctx, text=text):
                if model.state != before and self.screens[before].in_history:
                    s.history.append(before)
                self._go(s, model.state)
            else:
                error = ctx.error or InputError("error.invalid_choice")
        return self.render(ctx, error)

    @staticmethod
    def _go(session, state: str) -> None:
        if state != session.state:
            session.page = 0
        session.state = state

    # -- rendering ----------------------------------------------------------
    def render(self, ctx: Ctx, error: InputError | None = None) -> Reply:
        screen = self.screens[ctx.session.state]
        head = screen.text(ctx)
        if not gsm7.is_text(head):
            return self._unshowable(ctx, screen, error)
        ctx.data.pop(UNSHOWN, None)
        if screen.is_end(ctx):
            return Reply(head, end=True)
        if error is None:
            return Reply(self._compose(ctx, head), end=False)
        problem = ctx.t(error.key, **error.values)
        text = self._compose(ctx, problem + "\n" + head)
        if gsm7.length(text) > ctx.config.USSD_MAX_CHARS:
            text = self._compose(ctx, problem)  # the error line takes the text's place
        return Reply(text, end=False)

    def _unshowable(self, ctx: Ctx, screen: Screen, error: InputError | None) -> Reply:
        """Stored data (a reward's name, a campaign's product) made the screen's
        own text unshowable (outside GSM-7, control characters): a plain
        apology instead, and a log line; its options are neither shown nor
        taken, navigation still works."""
        log.warning("screen %s cannot show its text (stored data outside GSM-7?)", screen.name)
        text = ctx.t("error.unshowable")
        if error is not None:
            text = ctx.t(error.key, **error.values) + "\n" + text
        if screen.is_end(ctx):
            return Reply(text, end=True)
        ctx.data[UNSHOWN] = screen.name
        return Reply(text if screen.name == self.main else f"{text}\n{ctx.t('nav.footer')}", end=False)

    def _compose(self, ctx: Ctx, head: str) -> str:
        tail, pages = self.layout(ctx, head)
        page = min(ctx.session.page, len(pages) - 1)
        lines = [head, *pages[page]]
        if page + 1 < len(pages):
            lines.append(f"{NEXT} {ctx.t('nav.next')}")
        lines.extend(tail)
        return "\n".join(lines)

    def layout(self, ctx: Ctx, head: str | None = None) -> tuple[list[str], list[list[str]]]:
        """The fixed lines under the list, and the list's lines split in pages."""
        screen = self.screens[ctx.session.state]
        if head is None:
            head = screen.text(ctx)
            head = head if gsm7.is_text(head) else ctx.t("error.unshowable")
        tail = [f"{o.key} {ctx.t(o.label)}" for o in screen.options
                if o.when is None or o.when(ctx)]
        if ctx.session.state != self.main:
            tail.append(ctx.t("nav.footer"))
        items = [f"{i} {it.label}" for i, it in enumerate(items_of(screen, ctx), 1)]
        return tail, paginate(head, items, tail, f"{NEXT} {ctx.t('nav.next')}",
                              ctx.config.USSD_MAX_CHARS)


def paginate(head: str, items: list[str], tail: list[str], more: str, limit: int) -> list[list[str]]:
    """Split ``items`` into pages that fit ``limit`` with the head and tail lines."""
    if not items:
        return [[]]

    def size(lines):
        return sum(gsm7.length(line) + 1 for line in lines)

    fixed = gsm7.length(head) + size(tail)
    if fixed + size(items) <= limit:
        return [items]
    room = limit - fixed - size([more])
    pages, page, used = [], [], 0
    for line in items:
        n = size([line])
        if page and used + n > room:
            pages.append(page)
            page, used = [], 0
        page.append(line)
        used += n
    pages.append(page)
    return pages


def items_of(screen: Screen, ctx: Ctx) -> list:
    """The screen's list, without the entries that cannot go to a phone.

    A label comes from stored data (a reward's name, a campaign's product): one
    outside GSM-7 or holding a line break or control character would take the
    whole screen down, or draw a fake option; it is left out (and logged), and
    the numbering and the choice both follow the list that is shown.
    """
    if screen.items is None:
        return []
    key = ("items", screen.name)
    if key not in ctx.cache:
        shown = []
        for item in screen.items(ctx):
            if gsm7.is_line(item.label):
                shown.append(item)
            else:
                log.warning("list entry left out of screen %s: its label cannot be shown (%r)",
                            screen.name, item.value)
        ctx.cache[key] = shown
    return ctx.cache[key]


def _option_matches(opt):
    def matches(ev):
        ctx, text = _kw(ev)
        return text == opt.key and (opt.when is None or opt.when(ctx))
    return matches


def _item_matches(screen):
    def matches(ev):
        ctx, text = _kw(ev)
        return digits.number(text, 1, len(items_of(screen, ctx))) is not None
    return matches


def _store_item(screen):
    def store(ev):
        ctx, text = _kw(ev)
        ctx.data[screen.name] = items_of(screen, ctx)[digits.number(text, 1, 10**6) - 1].value
    return store


def _parse_ok(screen):
    def ok(ev):
        ctx, text = _kw(ev)
        try:
            ctx.cache[("parsed", screen.name)] = screen.parse(ctx, text)
        except InputError as e:
            ctx.error = e
            return False
        return True
    return ok


def _store_parsed(screen):
    def store(ev):
        ctx, _ = _kw(ev)
        ctx.data[screen.name] = ctx.cache[("parsed", screen.name)]
    return store
