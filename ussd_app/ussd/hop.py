"""One USSD hop: session in, engine step, session out."""
from __future__ import annotations

from ussd_app.ussd import sessions
from ussd_app.core import texts
from ussd_app.ussd.types import Reply, Services, UssdRequest
from ussd_app.ussd.screens import Ctx
from ussd_app.ussd.sessions import Session


def hop(services: Services, req: UssdRequest) -> tuple[Reply, str | None, str | None]:
    """Answer one hop; returns the reply and the state before and after."""
    r, config, engine = services.r, services.config, services.engine
    now = services.clock()
    session, account = sessions.load(r, services.accounts, req.session_id, req.msisdn, now)
    if session is None:
        session = Session(id=req.session_id, msisdn=req.msisdn, state=engine.main,
                          lang=account.lang or texts.DEFAULT)
        before = None
        ctx = _ctx(services, session, req, now, account)
        reply = engine.start(ctx)
        # A dial with digits (*700*1#) arrives with inputs typed in advance:
        # each is a step of its own, with a fresh context (what one screen
        # cached or rejected must not colour the next).
        for typed in (req.text.split("*") if req.text else []):
            if reply.end:
                break
            ctx = _ctx(services, session, req, now, ctx.cache.get("account"))
            reply = engine.step(ctx, typed)
    else:
        if session.msisdn != req.msisdn:
            return Reply(texts.t(session.lang, "error.session_owner"), end=True), None, None
        before = session.state
        last = session.last_text or ""
        if req.text == last or not req.text or last.startswith(req.text + "*"):
            # A gateway retry (of this hop, or a stale earlier one): act on nothing again.
            return Reply(session.last_reply, session.last_end), before, before
        if session.last_end:
            return Reply(texts.t(session.lang, "error.session_ended"), end=True), before, before
        ctx = _ctx(services, session, req, now, account)
        reply = engine.step(ctx, sessions.new_input(session.last_text, req.text))
    session.last_text, session.last_reply, session.last_end = req.text, reply.text, reply.end
    session.hops += 1
    sessions.save(r, session, config.USSD_SESSION_TTL)
    return reply, before, session.state


def _ctx(services: Services, session: Session, req: UssdRequest, now: float, account) -> Ctx:
    return Ctx(r=services.r, config=services.config, session=session, services=services,
               now=now, hop_key=f"{req.session_id}:{req.text}", cache={"account": account})
