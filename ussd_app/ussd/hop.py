"""One USSD hop: session in, engine steps, session out, the funnel told.

Every gateway dialect hands a neutral :class:`~ussd_app.ussd.types.Hop`; this
module knows no dialect's text. What is a retry: a second ``new`` hop of a
live session, the same (or an earlier) ``seq``, the gateway's hop identity,
or, for a gateway that sends the history, no input it has not seen. A gateway
with neither (latest input only) never retries by itself, so the same key
twice is two steps. A retry is answered with the stored reply and acts on nothing.
"""
from __future__ import annotations

import logging
import re
from typing import NamedTuple

from ussd_app.core import texts
from ussd_app.ussd import funnel, sessions
from ussd_app.ussd.funnel import Move
from ussd_app.ussd.screens import AHEAD, Ctx
from ussd_app.ussd.sessions import Pointer, Session
from ussd_app.ussd.types import COMPLETED, FAILED, Hop, Reply, Services

log = logging.getLogger(__name__)

RESUME = "resume"  # the offer to resume a dropped session: the machinery's own screen
CONTINUE, RESTART = "1", "2"
_NUMBER = re.compile(r"[0-9]{1,18}")


class Result(NamedTuple):
    """A hop's reply and what it did: the screen before and after, and an
    outcome (``new``, ``next``, ``same``, ``retry``, ``ended``, ``unknown``,
    or how the session closed: ``completed``, ``released``, ``timeout``, ``error``)."""
    reply: Reply
    before: str | None
    after: str | None
    outcome: str


def lifetime(config) -> int:
    """How long a session's document is kept after its last hop (it may be resumed)."""
    return max(config.USSD_SESSION_TTL, config.USSD_RESUME_SECONDS)


def hop(services: Services, h: Hop) -> Result:
    """Answer one hop."""
    now = services.clock()
    ahead = services.ahead
    session, account, pointer, read = sessions.load(
        services.r, services.accounts, h.msisdn, h.session_id, now,
        resume=services.config.USSD_RESUME_SECONDS > 0, ahead=ahead.strings(h.msisdn) if ahead else ())
    read = ahead.parse(account, read) if ahead else {}
    if h.end:
        return _close(services, session, h, now)
    if session is None:
        if h.new is False:  # the gateway goes on with a session we no longer hold
            return Result(Reply(texts.t(account.lang or texts.DEFAULT, "error.session_ended"), end=True),
                          None, None, "unknown")
        return _start(services, h, now, account, pointer, read)
    if session.state not in services.engine.screens and session.state != RESUME:
        # A screen a new release no longer has (a session live across a
        # deploy): its subscriber goes on from the main menu.
        session.state, session.history, session.page = services.engine.main, [], 0
    before = session.state
    typed = _new_inputs(services, session, h)
    if typed is None:
        return Result(Reply(session.last_reply or "", session.last_end), before, before, "retry")
    if session.closed or session.last_end:
        return Result(Reply(texts.t(session.lang, "error.session_ended"), end=True), before, before, "ended")
    dwell = now - session.entered
    entered: list[str] = []  # the screens this hop enters, in order
    ctx = _ctx(services, session, now, account, read)
    try:
        reply = None
        if session.state == RESUME:
            reply, typed = _resume_choice(services, ctx, entered, typed)
        for text in typed:
            if reply is not None and reply.end:
                break
            ctx = _ctx(services, session, now, ctx.cache.get("account"), ctx.cache.get(AHEAD))
            reply = _step(services, ctx, entered, text)
        if reply is None:  # nothing typed: the screen again
            reply = services.engine.render(ctx)
        return _finish(services, session, now, reply, before, dwell, entered)
    except Exception:
        _fail(services, session, now, before, dwell)
        raise


def _new_inputs(services: Services, session: Session, h: Hop) -> tuple[str, ...] | None:
    """The inputs this hop adds, or None for a retry."""
    if h.new:
        return None  # the first hop again
    if h.seq is not None:
        last = session.seq
        if last is not None and (h.seq == last or (_NUMBER.fullmatch(h.seq) and _NUMBER.fullmatch(last)
                                                   and int(h.seq) < int(last))):
            return None
        session.seq = h.seq
    if not h.history:
        return h.inputs
    n, mark = len(h.inputs), services.vault.digest("\x1f".join(h.inputs))
    if n == 0 or mark == session.mark or n < session.seen:
        return None  # the same history, or an earlier one
    # More inputs than seen: the new ones. As many, but others: a gateway that
    # sends only the latest input through a history dialect; take the last.
    typed = h.inputs[session.seen:] if n > session.seen else h.inputs[-1:]
    session.seen, session.mark = n, mark
    return typed


def _start(services: Services, h: Hop, now: float, account, pointer: Pointer | None, read: dict) -> Result:
    config, engine = services.config, services.engine
    session = Session(id=h.session_id, msisdn=h.msisdn, state=engine.main,
                      lang=account.lang or texts.DEFAULT, dialect=h.dialect, entered=now, seq=h.seq)
    if h.history:
        session.seen, session.mark = len(h.inputs), services.vault.digest("\x1f".join(h.inputs))
    redial = pointer is not None and pointer.session_id != h.session_id
    # The session the pointer names has dropped: its screen counts a timeout,
    # once (unless an end signal or the sweep counted it).
    dropped = (pointer.dialect, pointer.state, pointer.session_id) if redial else None
    ctx = _ctx(services, session, now, account, read)
    try:
        if redial and not h.inputs and now - pointer.at <= config.USSD_RESUME_SECONDS:
            session.state, session.resume = RESUME, pointer.session_id
            entered = [RESUME]
            reply = resume_offer(session.lang)
        else:
            reply = engine.start(ctx)
            entered = [engine.main]
            # A dial with digits (*700*1#) arrives with inputs typed in advance:
            # each is a step of its own, with a fresh context (what one screen
            # cached or rejected must not colour the next).
            for typed in h.inputs:
                if reply.end:
                    break
                ctx = _ctx(services, session, now, ctx.cache.get("account"), ctx.cache.get(AHEAD))
                reply = _step(services, ctx, entered, typed)
        result = _finish(services, session, now, reply, None, 0.0, entered, dropped)
    except Exception:
        _fail(services, session, now, None, 0.0)
        raise
    return Result(result.reply, None, result.after,
                  "new" if result.outcome in ("next", "same") else result.outcome)


def resume_offer(lang: str, error: str | None = None) -> Reply:
    """The offer a plain redial gets after a dropped session."""
    lines = [texts.t(lang, "resume.title"), f"{CONTINUE} {texts.t(lang, 'resume.continue')}",
             f"{RESTART} {texts.t(lang, 'resume.restart')}"]
    if error:
        lines.insert(0, texts.t(lang, error))
    return Reply("\n".join(lines))


def _resume_choice(services: Services, ctx: Ctx, entered: list[str], typed: tuple[str, ...]
                   ) -> tuple[Reply, tuple[str, ...]]:
    """The answer to the resume offer, and the inputs left after it."""
    session, engine = ctx.session, services.engine
    if not typed:
        return resume_offer(session.lang), ()
    choice, rest = typed[0], typed[1:]
    if choice not in (CONTINUE, RESTART, "00"):
        return resume_offer(session.lang, "error.invalid_choice"), ()
    dropped = sessions.get(ctx.r, session.msisdn, session.resume) if choice == CONTINUE else None
    session.resume = None
    if dropped is not None and not dropped.last_end and engine.resumable(dropped.state):
        # Where the subscriber left, with its history (0 goes back), entered
        # again on current data: shown only (a confirmation quotes today's
        # terms and waits for its answer; nothing is spent or consented here).
        session.state, session.history, session.page = dropped.state, dropped.history, dropped.page
        session.data, session.lang = dropped.data, dropped.lang
        reply = engine.reenter(ctx)
    else:
        reply = engine.start(ctx)
    session.entered = ctx.now
    entered.append(session.state)
    return reply, rest


def _step(services: Services, ctx: Ctx, entered: list[str], text: str) -> Reply:
    session = ctx.session
    was = session.state
    reply = services.engine.step(ctx, text)
    if session.state != was:
        entered.append(session.state)
        session.entered = ctx.now
    return reply


def _finish(services: Services, session: Session, now: float, reply: Reply, before: str | None,
            dwell: float, entered: list[str], dropped: tuple | None = None) -> Result:
    if reply.end:
        session.closed = COMPLETED
    session.last_reply, session.last_end = reply.text, reply.end
    session.hops += 1
    session.at = now
    _save(services, session, now, Move(session.dialect, session.msisdn, session.id, before, dwell,
                                       tuple(entered), session.closed, dropped))
    outcome = COMPLETED if reply.end else ("next" if session.state != before else "same")
    return Result(reply, before, session.state, outcome)


def _resumable(services: Services, session: Session) -> bool:
    """Left on the way to an action (a list to choose from, a detail, a
    confirmation, a NIK entry) and did not end: a plain redial may come back to it."""
    return (services.engine.resumable(session.state) and not session.last_end
            and session.closed in (None, funnel.TIMEOUT, funnel.RELEASED))


def _save(services: Services, session: Session, now: float, move: Move) -> None:
    """The session written, and moved among the funnel's open ones, in one
    round trip; then the funnel counts what the hop did."""
    config, counts = services.config, services.funnel
    pointer = (Pointer(int(now), session.dialect, session.state, session.id)
               if config.USSD_RESUME_SECONDS > 0 and _resumable(services, session) else None)
    moves = counts.commands(move, now)
    replies = sessions.save(services.r, session, lifetime(config), pointer, config.USSD_RESUME_SECONDS,
                            also=moves)
    counts.count(move, now, moves, replies)


def _close(services: Services, session: Session | None, h: Hop, now: float) -> Result:
    """The gateway closes the session (released, timed out, failed, or its
    end-of-session notification): counted once, kept for a resume."""
    if session is None:
        return Result(Reply("", end=True), None, None, h.end)
    if h.event is not None:
        session.event = h.event
    # Counted once: by the first signal that closes it (a second, or one
    # after the session completed, only keeps its event).
    before = session.state if session.closed is None else None
    if before is not None:
        session.closed = h.end
        session.at = now
    _save(services, session, now, Move(session.dialect, session.msisdn, session.id, before,
                                       now - session.entered, (), session.closed))
    return Result(Reply("", end=True), session.state, session.state, h.end)


def _fail(services: Services, session: Session, now: float, before: str | None, dwell: float) -> None:
    """A hop that raised: its session ends (the phone is told so) and the
    screen it was on (a new session: the main menu, entered) counts an
    ``error``, where Redis still answers."""
    try:
        screen = before or services.engine.main
        session.state, session.closed, session.at = screen, FAILED, now
        session.last_reply, session.last_end = texts.t(session.lang, "error.unavailable"), True
        _save(services, session, now, Move(session.dialect, session.msisdn, session.id, before, dwell,
                                           () if before else (screen,), FAILED))
    except Exception:  # the hop's own failure is what the caller reports
        log.debug("could not record a failed hop", exc_info=True)


def _ctx(services: Services, session: Session, now: float, account, read: dict | None) -> Ctx:
    # A hop's acts are keyed by the session and its hop count, never by what
    # was typed (a latest-input gateway sends the same text for two steps).
    # What was read with the session goes from step to step until taken (or
    # dropped by an act): Ctx.ahead.
    cache = {"account": account}
    if read:
        cache[AHEAD] = read
    return Ctx(r=services.r, config=services.config, session=session, services=services,
               now=now, hop_key=f"{session.dialect}:{session.id}:{session.hops}", cache=cache)
