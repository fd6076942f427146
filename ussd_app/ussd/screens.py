"""The vocabulary menus are written in: screens, options, list items, the
context a screen sees. The engine (:mod:`ussd_app.ussd.engine`) runs them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from ussd_app.core import store, texts
from ussd_app.core.config import Config
from ussd_app.ussd.sessions import Session
from ussd_app.ussd.types import Account, Services


AHEAD = "ahead"  # Ctx.cache: what was read with the session (Services.ahead), by name


class InputError(Exception):
    """Typed input a screen does not accept; ``args[0]`` is a text key,
    ``values`` fill it."""

    def __init__(self, key: str, **values):
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass
class Ctx:
    """What a screen's callbacks see during one hop."""
    r: redis.Redis
    config: Config
    session: Session
    services: Services
    now: float
    hop_key: str = ""
    error: InputError | None = None
    cache: dict = field(default_factory=dict)

    @property
    def msisdn(self) -> str:
        return self.session.msisdn

    @property
    def data(self) -> dict:
        return self.session.data

    @property
    def lang(self) -> str:
        return self.session.lang

    def t(self, key: str, **values) -> str:
        return texts.t(self.session.lang, key, **values)

    def account(self) -> Account:
        """The caller's account: status, language and, as the composition root
        reads it, points (read with the session at the start of the hop;
        :meth:`forget_account` after changing it)."""
        if "account" not in self.cache:
            accounts = self.services.accounts
            replies = store.roundtrip(self.r, *accounts.commands(self.msisdn, self.now))
            self.cache["account"] = accounts.parse(replies)
        return self.cache["account"]

    def ahead(self, name: str) -> Any:
        """The reply to ``name`` as read with the session this hop (see
        ``Services.ahead``), or None: read it yourself. Each is given once, and
        none once an answer has acted (the engine drops them before a
        consequence: what changes after it is read afresh)."""
        read = self.cache.get(AHEAD)
        return read.pop(name, None) if read else None

    def forget_account(self) -> None:
        self.cache.pop("account", None)


@dataclass(frozen=True)
class Option:
    """A fixed choice. ``act`` is its consequence (a debit, a consent, an
    opt-in or opt-out, a setting): it runs only as the transition of this
    answer, and only when the screen still shows what it showed."""
    key: str
    label: str  # text key
    to: str
    when: Callable[[Ctx], bool] | None = None
    act: Callable[[Ctx], None] | None = None


@dataclass(frozen=True)
class Item:
    """One entry of a list screen: the value stored when chosen, and its line."""
    value: Any
    label: str


@dataclass(frozen=True)
class Screen:
    """One state of the menu graph.

    ``body`` gives the text above the options (a text key, or a function of the
    context). ``options`` are fixed choices; ``items`` a list that pages, whose
    chosen value is stored in ``ctx.data[name]`` before going to ``item_to``;
    ``parse`` accepts free input (raising InputError), stored likewise, going to
    ``parse_to``, where ``parse_act`` is that answer's consequence.
    ``prepare`` reads what the screen shows whenever it is entered (forward,
    back, resumed): it never spends, consents or changes anything a subscriber
    would call a consequence; those are ``Option.act`` and ``parse_act``.
    ``resume``: whether a dropped session left here is offered again (a screen
    on the way to an action), or the name of the screen it resumes on.
    ``end`` makes the reply final.
    """
    name: str
    body: str | Callable[[Ctx], str]
    options: tuple[Option, ...] = ()
    items: Callable[[Ctx], list[Item]] | None = None
    item_to: str | None = None
    parse: Callable[[Ctx, str], Any] | None = None
    parse_to: str | None = None
    parse_act: Callable[[Ctx], None] | None = None
    prepare: Callable[[Ctx], None] | None = None
    resume: bool | str = False
    end: bool | Callable[[Ctx], bool] = False
    in_history: bool = True
    examples: tuple[str, ...] = ()
    """Inputs ``parse`` accepts, typed by the screen walk."""

    def text(self, ctx: Ctx) -> str:
        return self.body(ctx) if callable(self.body) else ctx.t(self.body)

    def is_end(self, ctx: Ctx) -> bool:
        return self.end(ctx) if callable(self.end) else self.end
