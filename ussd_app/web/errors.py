"""Every error becomes a response here, in the form its caller understands.

One handler for the whole app, routing errors (404, 405) included, picks a
*renderer* by the request's path: the longest registered prefix wins, on
whole path segments (``/ussd`` covers ``/ussd`` and ``/ussd/x``, never
``/ussdx``). Without one, the answer is the API's JSON ``{"error": "..."}``.

A renderer is ``render(status, message) -> Response``; it is called for
every status, 500 included (``message`` is then a generic text: the
exception itself is logged here, never shown). A gateway dialect registers
its own form once, from its blueprint::

    errors.renders(bp, "/ussd/hubtel", hubtel_error)

or on an app: ``errors.register(app, prefix, renderer)``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from ussd_app.core import errors as ours

Renderer = Callable[[int, str], Response]
log = logging.getLogger("ussd_app.web")
EXTENSION = "ussd_error_renderers"


def json_error(status: int, message: str) -> Response:
    """The API's shape: ``{"error": "one line"}``."""
    resp = jsonify(error=message)
    resp.status_code = status
    return resp


def _renderers(app: Flask) -> dict[str, Renderer]:
    return app.extensions.setdefault(EXTENSION, {})


def register(app: Flask, prefix: str, renderer: Renderer) -> None:
    """Render errors of requests under ``prefix`` with ``renderer``."""
    _renderers(app)[prefix.rstrip("/") or "/"] = renderer


def renders(bp: Blueprint, prefix: str, renderer: Renderer) -> None:
    """:func:`register` on every app ``bp`` is registered on."""
    bp.record_once(lambda state: register(state.app, prefix, renderer))


def renderer_for(app: Flask, path: str) -> Renderer:
    found = _renderers(app)
    while True:
        if path in found:
            return found[path]
        if path in ("", "/"):
            return json_error
        path = path.rsplit("/", 1)[0]


def describe(e: BaseException) -> tuple[int, str]:
    """The status and the one-line message an exception answers with."""
    status = getattr(e, "status", None)
    if type(e).__module__ == ours.__name__ and isinstance(status, int):  # BadRequest, NotFound...
        return status, str(e)
    if isinstance(e, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return 400, f"body is larger than {limit} bytes" if limit else "body is too large"
    if isinstance(e, MethodNotAllowed):
        allowed = ", ".join(sorted(m for m in e.valid_methods or () if m not in ("HEAD", "OPTIONS")))
        return 405, f"method not allowed here (allowed: {allowed})" if allowed else "method not allowed"
    if isinstance(e, HTTPException):
        if e.code == 404:
            return 404, "no such endpoint"
        return e.code or 500, (e.description or e.name).split(".")[0].lower()
    return 500, "internal error"


def handle(e: Exception) -> Response:
    status, message = describe(e)
    if status >= 500:
        log.error("request failed: %s %s", request.method,
                  request.url_rule.rule if request.url_rule else "-", exc_info=e)
    resp = renderer_for(current_app, request.path)(status, message)
    if isinstance(e, MethodNotAllowed) and e.valid_methods:
        resp.headers["Allow"] = ", ".join(e.valid_methods)
    return resp


def install(app: Flask) -> None:
    """The one error handler of ``app``."""
    _renderers(app)
    app.register_error_handler(Exception, handle)
