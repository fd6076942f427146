"""A request id for every request: the caller's ``X-Request-Id`` (a plain
token of at most 128 characters) or a new one; it is in every log line of the
request, in the jobs it enqueues (rq job meta) and in the answer's header.

A WSGI wrapper rather than Flask's before/after hooks: those cost a hop ~45k
instructions (their dispatch and werkzeug's header checks), this a few thousand.
"""
from __future__ import annotations

from ussd_app.core import logs

HEADER = "X-Request-Id"


class RequestIds:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        rid = logs.new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = logs.request_id.set(rid)

        def start(status, headers, exc_info=None):
            headers.append((HEADER, rid))
            return start_response(status, headers, exc_info)
        try:
            return self.app(environ, start)
        finally:
            logs.request_id.reset(token)


def install(app) -> None:
    app.wsgi_app = RequestIds(app.wsgi_app)
