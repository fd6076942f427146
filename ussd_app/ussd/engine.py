"""The menu engine: one `transitions` machine per process drives every session.

Per hop the session's state rides on a tiny model object and the shared
machine's ``input`` event is triggered on it (no Machine, no add_model per
request: bench/hop_cost.py measures it, docs/benchmark.md). Navigation keys common to every
screen (``0`` back, ``00`` main menu, ``98`` next page, ``99`` previous page)
are handled here, before the menu graph sees the input.

A consequence (``Option.act``, ``Screen.parse_act``) is a callback of the
transition its answer triggers, never of entering a screen; that transition
also asks that the screen still shows what it showed when the answer was
typed (a fingerprint of the screen kept in the session). When the state
behind it changed (an SMS ``STOP``, an operator's change) the answer acts on
nothing and the fresh screen is shown with a line saying so. Entering a screen
by any way (forward, back, home, a resume) runs only its ``prepare``.
"""
from __future__ import annotations

import logging
import zlib

from transitions import Machine, State

from ussd_app.ussd.types import Reply
from ussd_app.ussd.screens import AHEAD, Ctx, InputError, Screen
from ussd_app.core import digits, gsm7

# transitions logs every callback at INFO and every unmatched input at WARNING;
# an unmatched input is ordinary here (the engine answers it), so keep it quiet.
logging.getLogger("transitions").setLevel(logging.ERROR)
log = logging.getLogger(__name__)

BACK, MAIN, NEXT, PREV = "0", "00", "98", "99"
NAV_KEYS = (BACK, MAIN, NEXT, PREV)
UNSHOWN = "_unshown"  # session data: the screen last shown as an apology (takes navigation only)
SHOWN = "_shown"  # session data: the fingerprint of the screen last shown
CHANGED = "changed"  # ctx.cache: an answer found its screen changed since it was shown
LAID = "laid"  # ctx.cache: (state, head, tail, pages) of a list pick's page, for its as-shown check


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
        if screen.prepare:
            on_enter.append(lambda ev, prepare=screen.prepare: prepare(ev.kwargs["ctx"]))
        return State(screen.name, on_enter=on_enter)

    def _transitions(self) -> list[dict]:
        """Every answer's transition. An answer that acts (or picks from a
        list, whose numbers mean what the shown page said) holds only while
        the screen is as shown; its act runs as the transition's callback."""
        table, as_shown = [], _as_shown(self)
        for s in self.screens.values():
            for opt in s.options:
                table.append(dict(trigger="input", source=s.name, dest=opt.to,
                                  conditions=[_option_matches(opt)] + ([as_shown] if opt.act else []),
                                  before=[_act(opt.act)] if opt.act else []))
            if s.items:
                table.append(dict(trigger="input", source=s.name, dest=s.item_to,
                                  conditions=[_item_matches(self), as_shown],
                                  before=[_store_item(s)]))
            if s.parse:
                table.append(dict(trigger="input", source=s.name, dest=s.parse_to,
                                  conditions=[_parse_ok(s)] + ([as_shown] if s.parse_act else []),
                                  before=[_store_parsed(s)] + ([_act(s.parse_act)] if s.parse_act else [])))
        return table

    def acts(self) -> list[tuple[str, str]]:
        """(screen, answer) of every transition that carries a consequence."""
        out = [(s.name, o.key) for s in self.screens.values() for o in s.options if o.act]
        return out + [(s.name, "<input>") for s in self.screens.values() if s.parse_act]

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

    def resumable(self, state: str) -> bool:
        """A dropped session left on ``state`` is offered again to a redial."""
        screen = self.screens.get(state)
        return screen is not None and bool(screen.resume)

    def reenter(self, ctx: Ctx) -> Reply:
        """A resumed session: the screen it left on (or the one that screen
        resumes on: a result screen's confirmation) entered again, which only
        shows it, on today's data (a confirmation quotes today's terms and
        waits for its answer)."""
        s = ctx.session
        resume = self.screens[s.state].resume
        if isinstance(resume, str):
            if s.history and s.history[-1] == resume:
                s.history.pop()
            s.state, s.page = resume, 0
        screen = self.screens[s.state]
        if screen.prepare:
            screen.prepare(ctx)
        return self.render(ctx)

    def step(self, ctx: Ctx, text: str) -> Reply:
        s = ctx.session
        error = None
        if text == MAIN:
            s.history.clear()
            self._go(ctx, self.main)
        elif text == BACK and s.state != self.main:
            self._go(ctx, s.history.pop() if s.history else self.main)
        elif s.data.get(UNSHOWN) == s.state:  # its options were not shown: none is taken
            error = InputError("error.invalid_choice")
        elif text == NEXT and s.page + 1 < len(self.layout(ctx)[1]):
            s.page += 1
        elif text == PREV and s.page > 0:
            s.page -= 1
        else:
            before = s.state
            model = _Model(before)
            if self._input.trigger(model, ctx=ctx, text=text):
                if model.state != before:
                    if self.screens[before].in_history:
                        s.history.append(before)
                    s.page = 0
                s.state = model.state
            elif ctx.error is not None:
                error = ctx.error
            elif ctx.cache.get(CHANGED) or (SHOWN in s.data and not self.still_shown(ctx)):
                error = InputError("error.screen_changed")  # acts on nothing: the fresh screen
            else:
                error = InputError("error.invalid_choice")
        return self.render(ctx, error)

    def _go(self, ctx: Ctx, state: str) -> None:
        """Back or home: the screen is entered again, which only prepares it."""
        session = ctx.session
        if state != session.state:
            session.page = 0
        session.state = state
        prepare = self.screens[state].prepare
        if prepare:
            prepare(ctx)

    # -- rendering ----------------------------------------------------------
    def render(self, ctx: Ctx, error: InputError | None = None) -> Reply:
        screen = self.screens[ctx.session.state]
        head = screen.text(ctx)
        if not gsm7.is_text(head):
            return self._unshowable(ctx, screen, error)
        ctx.data.pop(UNSHOWN, None)
        if screen.is_end(ctx):
            ctx.data.pop(SHOWN, None)
            return Reply(head, end=True)
        shown = self._compose(ctx, head)
        ctx.data[SHOWN] = fingerprint(shown)
        if error is None:
            return Reply(shown, end=False)
        problem = ctx.t(error.key, **error.values)
        text = self._compose(ctx, problem + "\n" + head)
        if gsm7.length(text) > ctx.config.USSD_MAX_CHARS:
            text = self._compose(ctx, problem)  # the error line takes the text's place
        return Reply(text, end=False)

    def still_shown(self, ctx: Ctx) -> bool:
        """The session's screen, composed now, is the one last shown (a list
        pick's: as :meth:`page_numbers` just laid it out)."""
        laid = ctx.cache.pop(LAID, None)
        if laid is not None and laid[0] == ctx.session.state:
            _, head, tail, pages = laid
        else:
            head = self.screens[ctx.session.state].text(ctx)
            tail, pages = self.layout(ctx, head)
        return gsm7.is_text(head) and ctx.data.get(SHOWN) == fingerprint(self._compose(ctx, head, tail, pages))

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
        ctx.data.pop(SHOWN, None)
        return Reply(text if screen.name == self.main else f"{text}\n{ctx.t('nav.footer')}", end=False)

    def _compose(self, ctx: Ctx, head: str, tail: list[str] | None = None,
                 pages: list[list[str]] | None = None) -> str:
        if pages is None:
            tail, pages = self.layout(ctx, head)
        page = min(ctx.session.page, len(pages) - 1)
        lines = [head, *pages[page]]
        if page + 1 < len(pages):
            lines.append(f"{NEXT} {ctx.t('nav.next')}")
        if page > 0:
            lines.append(f"{PREV} {ctx.t('nav.prev')}")
        lines.extend(tail)
        return "\n".join(lines)

    def layout(self, ctx: Ctx, head: str | None = None) -> tuple[list[str], list[list[str]]]:
        """The fixed lines under the list, and the list's lines split in pages."""
        screen = self.screens[ctx.session.state]
        if head is None:
            head = _showable(ctx, screen.text(ctx))
        tail = [f"{o.key} {ctx.t(o.label)}" for o in screen.options
                if o.when is None or o.when(ctx)]
        if ctx.session.state != self.main:
            tail.append(ctx.t("nav.footer"))
        items = [f"{item_number(i)} {it.label}" for i, it in enumerate(items_of(screen, ctx))]
        return tail, paginate(head, items, tail, [f"{NEXT} {ctx.t('nav.next')}",
                                                  f"{PREV} {ctx.t('nav.prev')}"],
                              ctx.config.USSD_MAX_CHARS)

    def page_numbers(self, ctx: Ctx) -> range:
        """The item numbers the current page shows (a number selects only those).
        The layout is kept for the pick's next condition, that the screen is as
        shown (:meth:`still_shown`): a pick lays its page out once."""
        head = self.screens[ctx.session.state].text(ctx)
        tail, pages = self.layout(ctx, _showable(ctx, head))
        ctx.cache[LAID] = (ctx.session.state, head, tail, pages)
        page = min(ctx.session.page, len(pages) - 1)
        first = sum(len(p) for p in pages[:page])
        return range(first, first + len(pages[page]))


def _showable(ctx: Ctx, head: str) -> str:
    """A screen's text, or the apology where it cannot go to a phone (its page laid out around that)."""
    return head if gsm7.is_text(head) else ctx.t("error.unshowable")


def item_number(index: int) -> int:
    """The number a list's ``index``-th item (from 0) is shown under: 1, 2, ...,
    97, then 100 on: never a navigation key (``98`` next, ``99`` previous)."""
    n = index + 1
    return n + 2 if n >= int(NEXT) else n


def item_index(typed: str) -> int | None:
    """The list index a typed item number names (None: not an item number)."""
    n = digits.number(typed, 1, 10**6)
    if n is None or n in (int(NEXT), int(PREV)):
        return None
    return n - 1 if n < int(NEXT) else n - 3


def fingerprint(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def paginate(head: str, items: list[str], tail: list[str], more: list[str], limit: int) -> list[list[str]]:
    """Split ``items`` into pages that fit ``limit`` with the head and tail
    lines (and, where the list pages, the ``more`` lines: next, previous)."""
    if not items:
        return [[]]

    def size(lines):
        return sum(gsm7.length(line) + 1 for line in lines)

    fixed = gsm7.length(head) + size(tail)
    if fixed + size(items) <= limit:
        return [items]
    return pack(items, lambda line: size([line]), limit - fixed - size(more))


def pack(things: list, size, room: float) -> list[list]:
    """``things`` in order, in as few runs as fit ``room`` each (by ``size``):
    a list's pages, a graph's rows."""
    runs, run, used = [], [], 0
    for thing in things:
        n = size(thing)
        if run and used + n > room:
            runs.append(run)
            run, used = [], 0
        run.append(thing)
        used += n
    runs.append(run)
    return runs


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


def _item_matches(engine: Engine):
    def matches(ev):
        ctx, text = _kw(ev)
        index = item_index(text)
        return index is not None and index in engine.page_numbers(ctx)
    return matches


def _store_item(screen: Screen):
    def store(ev):
        ctx, text = _kw(ev)
        ctx.data[screen.name] = items_of(screen, ctx)[item_index(text)].value
    return store


def _as_shown(engine: Engine):
    """The answer's screen is still what the subscriber saw (else: noted, no transition)."""
    def shown(ev):
        ctx, _ = _kw(ev)
        if engine.still_shown(ctx):
            return True
        ctx.cache[CHANGED] = True
        return False
    return shown


def _act(act):
    def run(ev):
        ctx = ev.kwargs["ctx"]
        ctx.cache.pop(AHEAD, None)  # what was read before a consequence is not shown after it
        act(ctx)
    return run


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
