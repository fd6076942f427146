"""Routes the gateways call: one per USSD dialect (``POST /ussd`` for Africa's
Talking, ``POST /ussd/<dialect>`` for the others, made from
``gateways.DIALECTS``), ``POST /ussd/events`` and ``POST /sms/inbound``.

Every answer to a dialect's route, errors included, is in that dialect's own
form and content type. A hop (a POST to a dialect's path) is answered by
:class:`Front`, a WSGI layer in front of Flask, from the request's environ
(:func:`answer`): Flask's request and app contexts, routing, hooks and
Response cost a hop more than a tenth of its CPU (bench/hop_cost.py). Flask
keeps a rule per dialect path, whose view gives the same :func:`answer`, for
its routing errors (a GET is a 405 in the dialect's form)."""
from __future__ import annotations

import hmac
import io
import json
import logging
import re
import time
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import parse_qs, unquote_plus

from flask import Blueprint, Response, request
from werkzeug.formparser import parse_form_data

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
TOKEN_REFUSED = "missing or wrong gateway token"


class Answer(NamedTuple):
    """What a gateway is answered: status, content type, text."""
    status: int
    content_type: str
    text: str


def _token_ok(token: str, environ: dict) -> bool:
    """Whether the request carries the gateways' token (header or ``?token=``)."""
    given = environ.get("HTTP_X_GATEWAY_TOKEN")
    if not given:
        given = (parse_qs(environ.get("QUERY_STRING", "")).get("token") or [""])[0]
    return hmac.compare_digest(given.encode(), token.encode())


@bp.before_request
def check_token():
    token = services().config.GATEWAY_TOKEN
    if token and not _token_ok(token, request.environ):
        raise Unauthorized(TOKEN_REFUSED)


def form(environ: dict) -> dict[str, str]:
    """The form fields of the request in ``environ`` (the first value of each).

    A gateway's urlencoded body is a few dozen bytes: it is read and decoded
    here directly, at a third of the instructions of werkzeug's general form
    parser (bench/hop_cost.py); a multipart body goes through werkzeug's.
    """
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if mimetype not in (URLENCODED, "multipart/form-data"):
        raise BadRequest("body must be form-encoded (application/x-www-form-urlencoded)")
    raw = body(environ)
    if mimetype != URLENCODED:
        return parse_form_data({**environ, "wsgi.input": io.BytesIO(raw),
                                "CONTENT_LENGTH": str(len(raw))})[1].to_dict()
    fields = {}
    for pair in raw.decode("utf-8", "replace").split("&"):
        name, _, value = pair.partition("=")
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name:
            fields.setdefault(name, value)
    return fields


def body(environ: dict) -> bytes:
    """The raw body of the request in ``environ``, at most MAX_BODY bytes."""
    length = environ.get("CONTENT_LENGTH")
    if not length or not _LENGTH.fullmatch(length) or int(length) > MAX_BODY:
        raise BadRequest(f"body must be at most {MAX_BODY} bytes with a valid Content-Length")
    return environ["wsgi.input"].read(int(length))


def _answer(dialect, text: str, status: int) -> Answer:
    return Answer(status, dialect.CONTENT_TYPE, text)


def _response(answer: Answer) -> Response:
    return Response(answer.text, answer.status, content_type=answer.content_type)


def _lang(s, dialect, fields) -> str:
    """The language of the subscriber a request names, where it names a known
    one (Indonesian otherwise: a refused request may name nobody)."""
    try:
        phone = msisdns.normalize(str(fields.get(dialect.MSISDN) or ""), dialect.MSISDN)
        return subscribers.language(s.r, phone) or texts.DEFAULT
    except BadRequest:
        return texts.DEFAULT
    except Exception:  # Redis away: the apology is still owed, in the default language
        log.warning("no language for a refused request", exc_info=True)
        return texts.DEFAULT


def _refuse(s, dialect, status: int, message: str, fields, lang: str = texts.DEFAULT) -> Answer:
    """A request we cannot take, in the dialect's form: what the phone shows is
    an apology in the subscriber's language; the technical ``message`` goes to
    the log and the dialect's error field."""
    log.info(json.dumps({"event": "ussd_refused", "dialect": dialect.NAME, "status": status,
                         "error": message}))
    shown = texts.t(lang, "error.not_processed", code=s.config.USSD_SERVICE_CODE)
    return _answer(dialect, dialect.error(message, fields, shown), status)


def _failed(s, dialect, status: int, message: str) -> Answer:
    """Errors outside a hop's parsing and answering (a wrong token, a route's
    404/405, a body too large, a failure of our own) in the dialect's own
    form; never a 5xx on a phone, which would end the session with the
    network's generic error: it ends politely."""
    if status >= 500:
        busy = Reply(texts.t(texts.DEFAULT, "error.unavailable"), end=True)
        return _answer(dialect, dialect.render(busy, None), 200)
    return _refuse(s, dialect, status, message, None)


def _dialect_error(dialect):
    """:func:`_failed` as the app's error handler renders it (web.errors)."""
    return lambda status, message: _response(_failed(services(), dialect, status, message))


def sms_error(status: int, message: str) -> Response:
    """Africa's Talking SMS callbacks: plain text; a 5xx makes the gateway retry."""
    return Response(message, status, mimetype="text/plain")


for _dialect in DIALECTS.values():
    errors.renders(bp, _dialect.PATH, _dialect_error(_dialect))
errors.renders(bp, "/sms", sms_error)


def answer(s, dialect, environ: dict) -> Answer:
    """One hop of ``dialect``'s gateway, the request in ``environ``: check,
    parse, answer, render; every error in the dialect's own form (never a
    stack trace on a phone: a failed hop ends politely, and is logged)."""
    started = time.perf_counter()
    token = s.config.GATEWAY_TOKEN
    if token and not _token_ok(token, environ):
        return _failed(s, dialect, 401, TOKEN_REFUSED)
    fields = None
    code = s.config.USSD_SERVICE_CODE
    try:
        fields = form(environ) if dialect.FORMAT == "form" else dialect.read(body(environ))
        h = dialect.parse(fields, code)
    except BadRequest as e:
        return _refuse(s, dialect, 400, str(e), fields, _lang(s, dialect, fields) if fields else texts.DEFAULT)
    except wire.Declined as e:
        return _decline(s, dialect, e, fields, code)
    try:
        with cluster.within(cluster.FAILOVER_WAIT):
            result = ussd.hop(s, h)
    except Exception:
        log.exception("hop failed")
        metrics.hop_failed(dialect.NAME)
        busy = Reply(texts.t(texts.DEFAULT, "error.unavailable"), end=True)
        return _answer(dialect, dialect.render(busy, fields), 200)
    hopped(h, result, started)
    return _answer(dialect, dialect.render(result.reply, fields), 200)


_STATUS = {code: f"{code} {HTTPStatus(code).phrase}" for code in (200, 400, 401, 413)}


class Front:
    """``Front(wsgi_app, services)``: a WSGI app that answers the POSTs to a
    dialect's path itself (:func:`answer`) and hands every other request to
    ``wsgi_app`` (the Flask app). A failure outside a hop's own handling is
    logged and answered politely, in the dialect's form, as Flask's one error
    handler would (web.errors)."""

    def __init__(self, app, s):
        self.app, self.services = app, s

    def __call__(self, environ, start_response):
        dialect = BY_PATH.get(environ.get("PATH_INFO"))
        if dialect is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            out = answer(self.services, dialect, environ)
        except Exception:
            log.exception("hop failed outside its handling: POST %s", dialect.PATH)
            out = _failed(self.services, dialect, 500, "internal error")
        data = out.text.encode()
        status = _STATUS.get(out.status) or f"{out.status} {HTTPStatus(out.status).phrase}"
        start_response(status, [("Content-Type", out.content_type), ("Content-Length", str(len(data)))])
        return [data]


def install(app) -> None:
    """Put :class:`Front` before ``app``'s Flask handling."""
    app.wsgi_app = Front(app.wsgi_app, app.extensions["ussd"])


def _route(dialect):
    """Flask's view of a dialect's route (reached where :class:`Front` is not
    in front of it): the same :func:`answer`."""
    return lambda: _response(answer(services(), dialect, request.environ))


def _decline(s, dialect, e: wire.Declined, fields, code: str) -> Answer:
    """A request the gateway documents that we do not serve (another service
    code, a Hubtel ``Query``, a TruRoute charge report): a polite end in the
    dialect's form, the subscriber's language, and a log line."""
    phone = str(fields.get(dialect.MSISDN) or "")
    log.warning(json.dumps({"event": "ussd_declined", "dialect": dialect.NAME, "why": e.why,
                            "msisdn": mask(phone)}))
    if e.hop is not None:  # it closes the session it names
        try:
            with cluster.within(cluster.FAILOVER_WAIT):
                ussd.hop(s, e.hop)
        except Exception:
            log.exception("could not close a declined session")
    polite = Reply(texts.t(_lang(s, dialect, fields), e.key, code=code), end=True)
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
    h = africastalking.parse_event(form(request.environ))
    with cluster.within(cluster.FAILOVER_WAIT):
        result = ussd.hop(services(), h)
    hopped(h, result, started)
    return Response("OK", 200, mimetype="text/plain")


@bp.post("/sms/inbound")
def sms_inbound():
    sms = africastalking.parse_sms(form(request.environ))
    with cluster.within(cluster.FAILOVER_WAIT):
        keywords.handle(services(), sms)
    log.info(json.dumps({"event": "sms_inbound", "id": sms.message_id, "from": mask(sms.sender)}))
    return Response("", 200, mimetype="text/plain")
