"""Routes the gateways call: one per USSD dialect (``POST /ussd`` for Africa's
Talking, ``POST /ussd/<dialect>`` for the others, made from
``gateways.DIALECTS``), ``POST /ussd/events`` and ``POST /sms/inbound``.

Every answer to a dialect's route, errors included, is in that dialect's own
form and content type."""
from __future__ import annotations

import hmac
import json
import logging
import re
import time
from urllib.parse import unquote_plus

from flask import Blueprint, Response, request

from ussd_app.core import cluster, metrics, subscribers, texts
from ussd_app.core import msisdn as msisdns
from ussd_app.core.errors import BadRequest, Unauthorized
from ussd_app.core.msisdn import mask
from ussd_app.gateways import DIALECTS, africastalking, wire
from ussd_app.sms import keywords
from ussd_app.ussd import hop as ussd
from ussd_app.ussd.types import Hop, Reply
from ussd_app.web import errors, services

bp = Blueprint("gateway", __name__)
log = logging.getLogger("ussd_app.hops")

URLENCODED = "application/x-www-form-urlencoded"
MAX_BODY = 8192  # a hop or an SMS notification is a few hundred bytes at most
BY_PATH = {d.PATH: d for d in DIALECTS.values()}
_LENGTH = re.compile(r"[0-9]{1,9}")


@bp.before_request
def check_token():
    token = services().config.GATEWAY_TOKEN
    if token:
        given = request.headers.get("X-Gateway-Token") or request.args.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("missing or wrong gateway token")


def form() -> dict[str, str]:
    """The request's form fields (the first value of each).

    A gateway's urlencoded body is a few dozen bytes: it is read and decoded
    here directly, at a third of the instructions of werkzeug's general form
    parser (bench/hop_cost.py); anything else (multipart, no length) goes
    through ``request.form``.
    """
    env = request.environ
    length = env.get("CONTENT_LENGTH")
    mimetype = request.mimetype
    if mimetype not in (URLENCODED, "multipart/form-data"):
        raise BadRequest("body must be form-encoded (application/x-www-form-urlencoded)")
    if mimetype != URLENCODED or not length:
        return request.form.to_dict()
    fields = {}
    for pair in body(length).decode("utf-8", "replace").split("&"):
        name, _, value = pair.partition("=")
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name:
            fields.setdefault(name, value)
    return fields


def body(length: str | None = None) -> bytes:
    """The raw body, at most MAX_BODY bytes."""
    length = request.environ.get("CONTENT_LENGTH") if length is None else length
    if not length or not _LENGTH.fullmatch(length) or int(length) > MAX_BODY:
        raise BadRequest(f"body must be at most {MAX_BODY} bytes with a valid Content-Length")
    return request.environ["wsgi.input"].read(int(length))


def _answer(dialect, text: str, status: int) -> Response:
    return Response(text, status, content_type=dialect.CONTENT_TYPE)


def _lang(dialect, fields) -> str:
    """The language of the subscriber a request names, where it names a known
    one (Indonesian otherwise: a refused request may name nobody)."""
    try:
        phone = msisdns.normalize(str(fields.get(dialect.MSISDN) or ""), dialect.MSISDN)
        return subscribers.language(services().r, phone) or texts.DEFAULT
    except BadRequest:
        return texts.DEFAULT
    except Exception:  # Redis away: the apology is still owed, in the default language
        log.warning("no language for a refused request", exc_info=True)
        return texts.DEFAULT


def _refuse(dialect, status: int, message: str, fields, lang: str = texts.DEFAULT) -> Response:
    """A request we cannot take, in the dialect's form: what the phone shows is
    an apology in the subscriber's language; the technical ``message`` goes to
    the log and the dialect's error field."""
    log.info(json.dumps({"event": "ussd_refused", "dialect": dialect.NAME, "status": status,
                         "error": message}))
    shown = texts.t(lang, "error.not_processed", code=services().config.USSD_SERVICE_CODE)
    return _answer(dialect, dialect.error(message, fields, shown), status)


def _dialect_error(dialect):
    """Errors outside a hop's view (a wrong token, a route's 404/405, a body too
    large) in the dialect's own form; never a 5xx on a phone, which would end
    the session with the network's generic error: it ends politely."""
    def render(status: int, message: str) -> Response:
        if status >= 500:
            busy = Reply(texts.t(texts.DEFAULT, "error.unavailable"), end=True)
            return _answer(dialect, dialect.render(busy, None), 200)
        return _refuse(dialect, status, message, None)
    return render


def sms_error(status: int, message: str) -> Response:
    """Africa's Talking SMS callbacks: plain text; a 5xx makes the gateway retry."""
    return Response(message, status, mimetype="text/plain")


for _dialect in DIALECTS.values():
    errors.renders(bp, _dialect.PATH, _dialect_error(_dialect))
errors.renders(bp, "/sms", sms_error)


def _route(dialect):
    """The view of one dialect's route: parse, answer, render; every error in
    the dialect's own form (never a stack trace on a phone: a failed hop ends
    politely, and is logged)."""
    def view():
        started = time.perf_counter()
        fields = None
        code = services().config.USSD_SERVICE_CODE
        try:
            fields = form() if dialect.FORMAT == "form" else dialect.read(body())
            h = dialect.parse(fields, code)
        except BadRequest as e:
            return _refuse(dialect, 400, str(e), fields, _lang(dialect, fields) if fields else texts.DEFAULT)
        except wire.Declined as e:
            return _decline(dialect, e, fields, code)
        try:
            with cluster.within(cluster.FAILOVER_WAIT):
                result = ussd.hop(services(), h)
        except Exception:
            log.exception("hop failed")
            metrics.hop_failed(dialect.NAME)
            busy = Reply(texts.t(texts.DEFAULT, "error.unavailable"), end=True)
            return _answer(dialect, dialect.render(busy, fields), 200)
        hopped(h, result, started)
        return _answer(dialect, dialect.render(result.reply, fields), 200)
    return view


def _decline(dialect, e: wire.Declined, fields, code: str) -> Response:
    """A request the gateway documents that we do not serve (another service
    code, a Hubtel ``Query``, a TruRoute charge report): a polite end in the
    dialect's form, the subscriber's language, and a log line."""
    phone = str(fields.get(dialect.MSISDN) or "")
    log.warning(json.dumps({"event": "ussd_declined", "dialect": dialect.NAME, "why": e.why,
                            "msisdn": mask(phone)}))
    if e.hop is not None:  # it closes the session it names
        try:
            with cluster.within(cluster.FAILOVER_WAIT):
                ussd.hop(services(), e.hop)
        except Exception:
            log.exception("could not close a declined session")
    polite = Reply(texts.t(_lang(dialect, fields), e.key, code=code), end=True)
    return _answer(dialect, dialect.render(polite, fields), 200)


def hopped(h: Hop, result: ussd.Result, started: float) -> None:
    """The one place a hop's dialect, screens and outcome are all known: its
    metrics and its log line."""
    metrics.hop(h.dialect, result.after, result.reply.end, started)
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps({"event": "ussd_hop", "dialect": h.dialect, "session": h.session_id,
                             "msisdn": mask(h.msisdn), "before": result.before,
                             "after": result.after, "outcome": result.outcome,
                             "end": result.reply.end,
                             "ms": round((time.perf_counter() - started) * 1000, 2)}))


for _dialect in DIALECTS.values():
    bp.add_url_rule(_dialect.PATH, f"ussd_{_dialect.NAME}", _route(_dialect), methods=["POST"])


@bp.post(africastalking.EVENTS_PATH)
def ussd_events():
    """Africa's Talking's end-of-session notification, recorded against the session."""
    started = time.perf_counter()
    h = africastalking.parse_event(form())
    with cluster.within(cluster.FAILOVER_WAIT):
        result = ussd.hop(services(), h)
    hopped(h, result, started)
    return Response("OK", 200, mimetype="text/plain")


@bp.post("/sms/inbound")
def sms_inbound():
    sms = africastalking.parse_sms(form())
    with cluster.within(cluster.FAILOVER_WAIT):
        keywords.handle(services(), sms)
    log.info(json.dumps({"event": "sms_inbound", "id": sms.message_id, "from": mask(sms.sender)}))
    return Response("", 200, mimetype="text/plain")
